/**
 * Agent JWT attacks (OWASP API2 broken authentication): every forged, stale,
 * misdirected or replayed token is 401 `auth.invalid_token` and stores nothing; header fields
 * that name keys (`jwk`, `jku`, `x5u`) are never used to find one.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { SignJWT, decodeJwt, exportJWK } from 'jose';
import { AGENT_JWT_TYP } from '../../../shared/protocol.ts';
import { newId } from '../../../shared/ids.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { enrolledAgent, expectNothingStored } from './security-support.ts';
import type { TestAgent } from './test-agent.ts';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('collector security: agent token attacks', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;
  let agent: TestAgent;

  before(async () => {
    collector = await startCollectorInProcess();
    agent = await enrolledAgent(collector, 'AS-JWT');
  });
  after(async () => {
    await collector?.stop();
  });

  function claims(overrides: { [key: string]: unknown } = {}) {
    const now = Math.floor(Date.now() / 1000);
    return { iss: agent.id, sub: agent.id, aud: collector.origin, iat: now, exp: now + 120, jti: newId(), ...overrides };
  }

  async function refused(token: string, detail?: RegExp): Promise<void> {
    await expectNothingStored(collector, async () => {
      const problem = assertProblem(await agent.send(agent.batch([agent.next()]), { token }), 401, 'auth.invalid_token');
      if (detail) assert.match(problem.detail, detail);
    });
    agent.seq -= 1; // the record was not stored; build it again next time
    agent.prev = (agent as TestAgent & { lastPrev: string }).lastPrev;
  }

  beforeEach(() => {
    (agent as TestAgent & { lastPrev: string }).lastPrev = agent.prev;
  });

  it('refuses an expired token with 401 auth.invalid_token', async () => {
    await refused(await agent.token({ nowSeconds: Math.floor(Date.now() / 1000) - 600 }));
  });

  it('refuses a token for another audience with 401 auth.invalid_token', async () => {
    await refused(await agent.token({ audience: 'evil.example/collector' }));
  });

  it('refuses an unsigned alg "none" token with 401 auth.invalid_token', async () => {
    const token = `${b64({ alg: 'none', typ: AGENT_JWT_TYP, kid: agent.key.kid })}.${b64(claims())}.`;
    await refused(token, /EdDSA/);
  });

  it('refuses an HS256 token whose HMAC key is the agent public key (algorithm confusion) with 401 auth.invalid_token', async () => {
    const header = b64({ alg: 'HS256', typ: AGENT_JWT_TYP, kid: agent.key.kid });
    const body = b64(claims());
    for (const secret of [Buffer.from(agent.key.publicJwk.x, 'base64url'), Buffer.from(JSON.stringify(agent.key.publicJwk)), Buffer.from(agent.key.publicJwk.x)]) {
      const sig = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
      await refused(`${header}.${body}.${sig}`, /EdDSA/);
    }
  });

  it('refuses a token with one changed signature character or one changed claim with 401 auth.invalid_token', async () => {
    const token = await agent.token();
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    await refused(`${h}.${p}.${flipped}`);
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { [key: string]: unknown };
    await refused(`${h}.${b64({ ...payload, exp: (payload.exp as number) + 60 })}.${s}`);
  });

  it('refuses a replayed token (the same jti twice) with 401 auth.invalid_token', async () => {
    const token = await agent.token();
    await agent.sendOk(agent.batch([agent.next()]), { token });
    (agent as TestAgent & { lastPrev: string }).lastPrev = agent.prev;
    await refused(token, /jti/);
  });

  it('admits a request sent again with its token and batch id (a load balancer retrying it) with the stored receipt, and refuses that token with another batch as a replay', async () => {
    const token = await agent.token();
    const batch = agent.batch([agent.next()]);
    const first = await agent.send(batch, { token });
    assert.equal(first.status, 200, first.text);
    const again = await agent.send(batch, { token });
    assert.deepEqual({ status: again.status, text: again.text }, { status: 200, text: first.text }, 'the stored receipt, byte for byte');
    (agent as TestAgent & { lastPrev: string }).lastPrev = agent.prev;
    await refused(token, /jti/);
  });

  it('admits a batch whose token a replica remembered before it died, sent again with that batch id; not with another', async () => {
    const token = await agent.token();
    const { jti, exp } = decodeJwt(token) as { jti: string; exp: number };
    const batch = agent.batch([agent.next()]);
    // What a replica that died after authenticating the request, before committing it, left behind.
    assert.equal(await collector.container.store.rememberJti(jti, agent.id, exp, Math.floor(Date.now() / 1000), batch.batchId), true);
    const stored = await agent.sendOk(batch, { token });
    assert.deepEqual([stored.receipt.accepted, stored.receipt.duplicates], [1, 0]);

    const other = await agent.token();
    const remembered = decodeJwt(other) as { jti: string; exp: number };
    assert.equal(await collector.container.store.rememberJti(remembered.jti, agent.id, remembered.exp, Math.floor(Date.now() / 1000), newId()), true);
    (agent as TestAgent & { lastPrev: string }).lastPrev = agent.prev;
    await refused(other, /jti/);
  });

  it('refuses a token without jti, or living longer than 5 minutes, with 401 auth.invalid_token', async () => {
    const sign = (c: { [key: string]: unknown }) =>
      new SignJWT(c).setProtectedHeader({ alg: 'EdDSA', typ: AGENT_JWT_TYP, kid: agent.key.kid }).sign(agent.key.privateKey);
    const { jti: _jti, ...noJti } = claims();
    await refused(await sign(noJti));
    const now = Math.floor(Date.now() / 1000);
    await refused(await sign(claims({ iat: now, exp: now + 3600 })));
    await refused(await sign(claims({ iss: 'AS-OTHER-001' })));
  });

  it('never takes the key from the token: a token signed by an attacker key it embeds as jwk (or names by jku/x5u) is 401', async () => {
    const attacker = generateKeyPairSync('ed25519');
    const jwk = await exportJWK(attacker.publicKey);
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'EdDSA', typ: AGENT_JWT_TYP, kid: agent.key.kid, jwk, jku: 'https://evil.example/jwks', x5u: 'https://evil.example/cert' } as never)
      .sign(attacker.privateKey);
    await refused(token);
  });

  it('a JWT whose aud array also names another collector is refused', async () => {
    // Such a token would be accepted by both collectors: one captured by the other is replayable here.
    const sign = (aud: unknown) =>
      new SignJWT(claims({ aud })).setProtectedHeader({ alg: 'EdDSA', typ: AGENT_JWT_TYP, kid: agent.key.kid }).sign(agent.key.privateKey);
    await refused(await sign([collector.origin, 'other.example/collector']), /aud/);
    await refused(await sign(['other.example/collector', collector.origin]), /aud/);
  });

  it('a JWT whose aud is an array, even one naming only this collector, is refused', async () => {
    const token = await new SignJWT(claims({ aud: [collector.origin] }))
      .setProtectedHeader({ alg: 'EdDSA', typ: AGENT_JWT_TYP, kid: agent.key.kid })
      .sign(agent.key.privateKey);
    await refused(token, /aud/);
    // The same claims with aud as the string the protocol names are accepted.
    await agent.sendOk(agent.batch([agent.next()]));
  });

  it('refuses a token of the wrong typ with 401 auth.invalid_token', async () => {
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: agent.key.kid }).sign(agent.key.privateKey);
    await refused(token, /typ/);
  });
});
