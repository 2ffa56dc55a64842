/**
 * The route access table (services/access.ts ROUTE_ACCESS) against the running app (OWASP API5
 * broken function level authorization, API9 inventory): every declared route answers, public
 * ones without credentials, and every protected one refuses no credentials (401) and the valid
 * credentials of each role it does not admit (403), storing nothing.
 */
import assert from 'node:assert/strict';
import { ROUTE_ACCESS, type Role, type RouteKey } from '../../../collector/services/access.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { enrolledAgent, expectNothingStored, humanToken } from './security-support.ts';
import { request, type TestAgent } from './test-agent.ts';

describe('collector security: the route access table', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;
  let agent: TestAgent;
  let tokens: { [R in Exclude<Role, 'agent'>]: string };

  before(async () => {
    collector = await startCollectorInProcess();
    agent = await enrolledAgent(collector, 'AS-ROUTE');
    tokens = { admin: (await humanToken(collector, 'admin')).token, auditor: (await humanToken(collector, 'auditor')).token };
  });
  after(async () => {
    await collector?.stop();
  });

  function call(route: RouteKey, authorization?: string) {
    const [method, pattern] = route.split(' ') as [string, string];
    const path = pattern.replace('/records/:id', '/records/0192f7b4-0000-7000-8000-00000000abcd').replace(':id', agent.id);
    const headers: { [name: string]: string } = { 'content-type': 'application/json' };
    if (authorization) headers.authorization = authorization;
    return request(`${collector.url}${path}`, { method, headers, ...(method === 'POST' ? { body: '{}' } : {}) });
  }

  async function credentialOf(role: Role): Promise<string> {
    return `Bearer ${role === 'agent' ? await agent.token() : tokens[role]}`;
  }

  it('lists every route of the API once, each either public or with at least one role', () => {
    const routes = Object.keys(ROUTE_ACCESS);
    assert.equal(new Set(routes).size, routes.length);
    for (const [route, access] of Object.entries(ROUTE_ACCESS)) {
      assert.match(route, /^(GET|POST) \//);
      assert.ok(access === 'public' || access.length > 0, route);
    }
  });

  it('answers every public route without credentials, and refuses every protected route without credentials with 401', async () => {
    await expectNothingStored(collector, async () => {
      for (const route of Object.keys(ROUTE_ACCESS) as RouteKey[]) {
        const answer = await call(route);
        if (ROUTE_ACCESS[route] === 'public') assert.ok(![401, 403, 404, 405].includes(answer.status), `${route}: ${answer.status} ${answer.text}`);
        else assertProblem(answer, 401, 'auth.invalid_token');
      }
    });
  });

  it('refuses the valid credentials of every role a protected route does not admit with 403', async () => {
    let checked = 0;
    await expectNothingStored(collector, async () => {
      for (const route of Object.keys(ROUTE_ACCESS) as RouteKey[]) {
        const access = ROUTE_ACCESS[route];
        if (access === 'public') continue;
        for (const role of ['agent', 'auditor', 'admin'] as const) {
          if ((access as readonly Role[]).includes(role)) continue;
          assertProblem(await call(route, await credentialOf(role)), 403, 'auth.forbidden');
          checked++;
        }
      }
    });
    assert.ok(checked >= 6, `checked ${checked} pairs`);
  });
});
