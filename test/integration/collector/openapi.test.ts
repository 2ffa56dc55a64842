/**
 * `GET /api/v1/openapi.json` against the running app: it is served publicly, it is the
 * document the code builds, and its operations are exactly the routes the express app serves
 * (read from the app's router stack) and the lines of ROUTE_ACCESS: a route added to the app
 * without a line there and an entry in the document fails here. Each operation is then called:
 * none is the app's "no such resource", and every answer conforms to the document (request()
 * checks each one).
 */
import assert from 'node:assert/strict';
import type { Express } from 'express';
import { createApp } from '../../../collector/app.ts';
import { buildOpenApiDocument, operationOf } from '../../../collector/resources/openapi/document.ts';
import { ROUTE_ACCESS } from '../../../collector/services/access.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { request } from './test-agent.ts';

interface Layer {
  route?: { path: unknown; methods: { [method: string]: boolean } };
  handle?: { stack?: Layer[] };
  rawPath?: unknown;
}

/**
 * Every `METHOD /path` the app routes (express 5 / router 2: route layers, and routers mounted
 * with `use`, whose mount path is the layer's rawPath), and the paths routed for every method
 * (`router.all`: the 405 answers).
 */
function servedRoutes(app: Express): { routes: string[]; anyMethod: string[] } {
  const routes: string[] = [];
  const anyMethod: string[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        assert.equal(typeof layer.route.path, 'string', 'a route with a pattern that is not a string: teach this walk to read it');
        const path = prefix + (layer.route.path as string);
        for (const method of Object.keys(layer.route.methods)) {
          if (method === '_all') anyMethod.push(path);
          else routes.push(`${method.toUpperCase()} ${path}`);
        }
      } else if (Array.isArray(layer.handle?.stack)) {
        assert.equal(typeof layer.rawPath, 'string', 'a router mounted on a pattern that is not a string');
        walk(layer.handle.stack, prefix + (layer.rawPath === '/' ? '' : (layer.rawPath as string)));
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return { routes, anyMethod };
}

const NO_SUCH_RESOURCE = /^there is no resource at /;

describe('collector: the OpenAPI document against the app', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;
  const document = buildOpenApiDocument();
  const documented = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
  const asDocumented = (route: string) => {
    const { method, path } = operationOf(route);
    return `${method.toUpperCase()} ${path}`;
  };

  before(async () => {
    collector = await startCollectorInProcess();
  });
  after(async () => {
    await collector?.stop();
  });

  it('serves the document without credentials, as built, versioned as the package', async () => {
    const answer = await request(`${collector.url}/api/v1/openapi.json`, { method: 'GET' });
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(answer.headers.get('cache-control'), 'no-cache');
    assert.deepEqual(answer.body, JSON.parse(JSON.stringify(document)));
    assert.equal((answer.body as { info: { version: string } }).info.version, packageVersion());
    assertProblem(await request(`${collector.url}/api/v1/openapi.json`, { method: 'POST' }), 405, 'method.not_allowed');
  });

  it('documents exactly the routes the app serves and ROUTE_ACCESS lists, both ways', () => {
    const { routes, anyMethod } = servedRoutes(createApp(collector.container));
    assert.ok(routes.length >= 15, `the walk found only ${routes.length} routes`);
    assert.equal(new Set(routes).size, routes.length, 'a route is served twice');
    // Every route the app serves has its line in ROUTE_ACCESS, and every line is served.
    assert.deepEqual([...routes].sort(), Object.keys(ROUTE_ACCESS).sort());
    // The document: exactly what the app serves.
    assert.deepEqual([...documented].sort(), routes.map(asDocumented).sort());
    // A path answered 405 for other methods is a documented path.
    for (const path of anyMethod) assert.ok(Object.hasOwn(document.paths, operationOf(`GET ${path}`).path), `${path} answers every method but is not documented`);
  });

  it('answers every documented operation (none is "no such resource"), as the document says, and other methods with 405 or 404', async () => {
    const fill = (path: string) => path.replace('{id}', path.startsWith('/api/v1/agents/') ? 'AS-OPENAPI-001' : '0192f7b4-0000-7000-8000-00000000abcd');
    let called = 0;
    for (const route of documented) {
      const [method, path] = route.split(' ') as [string, string];
      const init = { method, headers: { 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) };
      const answer = await request(`${collector.url}${fill(path)}`, init);
      const unrouted = answer.status === 404 && NO_SUCH_RESOURCE.test((JSON.parse(answer.text) as { detail?: string }).detail ?? '');
      assert.equal(unrouted, false, `${route}: ${answer.status} ${answer.text}`);
      called++;
    }
    assert.equal(called, documented.length);
    for (const path of Object.keys(document.paths)) {
      const answer = await request(`${collector.url}${fill(path)}`, { method: 'DELETE' });
      assert.ok([404, 405].includes(answer.status), `DELETE ${path}: ${answer.status}`);
    }
  });
});
