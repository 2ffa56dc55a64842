/**
 * `init`: enrolls this agent with the collector and initialises the agent directory.
 *
 * ## Invariants
 * - The directory is initialised exactly when the outbox holds `pins`; the pins are committed
 *   LAST, after the key and the local token are on disk. Anything else found in the directory
 *   is what an interrupted `init` left behind, and a new `init` clears it.
 * - A failed `init` removes what it wrote (and the directory, if it made it and it is empty), so
 *   it never blocks a retry and never leaves a directory that looks usable.
 * - An initialised directory is never re-initialised: `init` refuses.
 *
 * ## On-disk layout it creates (directory mode 0700; an existing directory that group or
 * others can write to is refused)
 * - `agent-key.jwk`  private Ed25519 JWK, mode 0600
 * - `local-token`    local API bearer token, mode 0600
 * - `outbox.db`      the outbox, with the pins (collector, origin, log key, receipt key, agent,
 *                    epoch, kid), mode 0600 like its -wal and -shm
 *
 * ## What a crash at each step leaves behind
 * - before or during the enrollment request: at most a key file; the next `init` removes it.
 * - after the collector enrolled the key, before the pins commit: a key, maybe a token and an
 *   outbox without pins; the next `init` clears them, but the one-time token is spent, so the
 *   operator needs a new one (enrolling again starts a new epoch at the collector).
 * - after the pins commit: an initialised agent.
 */
import { existsSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import got, { RequestError } from 'got';
import { agentUserAgent } from '../shared/agent-version.ts';
import { publicKeyFromJwk } from '../shared/crypto.ts';
import type { Logger } from '../shared/logger.ts';
import { assertPrivateDirectory, ensurePrivateDirectory } from '../shared/private-files.ts';
import { agentIdSchema, API_PREFIX, describeZodError, enrollResponseSchema, type EnrollResponse } from '../shared/protocol.ts';
import { agentKeyPath, createAgentKey } from './keys.ts';
import { createLocalToken, localTokenPath } from './local-api/local-token.ts';
import { outboxPath, SqliteOutbox } from './outbox/sqlite-outbox.ts';
import { parseProblem, type ClientTimeouts } from './sync/client.ts';

export class EnrollError extends Error {
  override name = 'EnrollError';
}

/** A plain http:// collector URL that is not loopback, without --insecure-http. */
export class InsecureCollectorUrlError extends EnrollError {
  override name = 'InsecureCollectorUrlError';
}

/**
 * The collector URL `init` pins MUST be https://, or http:// to this host's loopback
 * (127.0.0.0/8, ::1, localhost), unless the operator passes --insecure-http. Over plain http on
 * a network, whoever is on the path reads the enrollment token and answers in the collector's
 * place: the log and receipt keys the agent pins would be theirs, and every receipt after that.
 */
export function assertSecureCollectorUrl(collectorUrl: string, insecureHttp: boolean): void {
  if (insecureHttp || !isPlainHttpOverNetwork(collectorUrl)) return;
  throw new InsecureCollectorUrlError(
    `refusing plain http to ${new URL(collectorUrl).host}, which is not loopback: the enrollment token, the keys the agent pins and every record would cross the network ` +
      'unprotected. Use an https:// collector URL (docs/security.md), or pass --insecure-http if the path to it is a private network you trust',
  );
}

function isPlainHttpOverNetwork(collectorUrl: string): boolean {
  const url = new URL(collectorUrl);
  return url.protocol === 'http:' && !isLoopbackHost(url.hostname);
}

/** `hostname` as WHATWG URL normalises it: IPv4 in dotted decimal, IPv6 in brackets. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

export interface InitOptions {
  dir: string;
  collectorUrl: string;
  /** Accept a plain http:// collector URL that is not loopback (assertSecureCollectorUrl). */
  insecureHttp?: boolean;
  agent: string;
  token: string;
  timeouts: ClientTimeouts;
  logger: Logger;
}

export interface InitResult {
  dir: string;
  agent: string;
  epoch: number;
  collector: string;
  origin: string;
  kid: string;
}

/** The files an `init` writes, in the order it writes them. */
function initFiles(dir: string): string[] {
  const outbox = outboxPath(dir);
  return [agentKeyPath(dir), localTokenPath(dir), outbox, `${outbox}-wal`, `${outbox}-shm`, `${outbox}-journal`];
}

export async function initAgentDir(options: InitOptions): Promise<InitResult> {
  const { dir, collectorUrl, logger } = options;
  const agent = agentIdSchema.safeParse(options.agent);
  if (!agent.success) throw new EnrollError(`--agent ${JSON.stringify(options.agent)}: ${describeZodError(agent.error)}`);
  if (options.token.length < 16 || options.token.length > 256) throw new EnrollError('the enrollment token must be 16 to 256 characters');
  assertSecureCollectorUrl(collectorUrl, options.insecureHttp === true);
  if (isPlainHttpOverNetwork(collectorUrl)) {
    logger.warn({ collector: collectorUrl }, '--insecure-http: enrolling over plain http; the token and the pinned keys are only as safe as the network path');
  }

  const created = prepareDir(dir, logger);
  const cleanUp = () => {
    for (const path of initFiles(dir)) rmSync(path, { force: true });
    if (created) {
      try {
        if (readdirSync(dir).length === 0) rmdirSync(dir);
      } catch {
        // best effort: a directory we cannot remove blocks nothing, since it holds no pins
      }
    }
  };

  let key;
  try {
    key = createAgentKey(dir);
  } catch (err) {
    cleanUp();
    throw new EnrollError(`cannot write the agent key in ${dir}: ${(err as Error).message}`);
  }

  let answer: EnrollResponse;
  try {
    answer = await requestEnrollment(collectorUrl, { token: options.token, agent: agent.data, publicKey: key.publicJwk }, options.timeouts);
    if (answer.agent !== agent.data) throw new EnrollError(`the collector enrolled ${answer.agent}, not ${agent.data}`);
    publicKeyFromJwk(answer.receiptKey);
  } catch (err) {
    cleanUp();
    if (err instanceof EnrollError) throw err;
    throw new EnrollError(`enrollment answer unusable: ${(err as Error).message}`);
  }

  let outbox: SqliteOutbox | undefined;
  try {
    createLocalToken(dir);
    outbox = SqliteOutbox.open(outboxPath(dir), { create: true });
    outbox.pin({
      collector: collectorUrl,
      origin: answer.origin,
      logKey: answer.logKey,
      receiptKey: answer.receiptKey,
      agent: answer.agent,
      epoch: answer.epoch,
      kid: key.kid,
      enrolledAt: new Date().toISOString(),
    });
  } catch (err) {
    outbox?.close();
    cleanUp();
    throw new EnrollError(
      `enrolled at the collector but could not initialise ${dir}: ${(err as Error).message}; the enrollment token is spent, ask for a new one`,
    );
  } finally {
    outbox?.close();
  }
  logger.info({ agent: answer.agent, epoch: answer.epoch, collector: collectorUrl, origin: answer.origin, kid: key.kid }, 'agent enrolled');
  return { dir, agent: answer.agent, epoch: answer.epoch, collector: collectorUrl, origin: answer.origin, kid: key.kid };
}

/**
 * Makes the directory (0700) or checks an existing one. Refuses an initialised directory; clears
 * what an interrupted `init` left. Returns whether it created the directory.
 */
function prepareDir(dir: string, logger: Logger): boolean {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new EnrollError(`${dir} exists and is not a directory`);
    assertPrivateDirectory(dir);
  } else {
    return ensurePrivateDirectory(dir);
  }
  const outboxFile = outboxPath(dir);
  if (existsSync(outboxFile)) {
    let pins;
    const outbox = SqliteOutbox.open(outboxFile);
    try {
      pins = outbox.pinsOrUndefined();
    } finally {
      outbox.close();
    }
    if (pins !== undefined) {
      throw new EnrollError(`${dir} is already initialised (agent ${pins.agent}, epoch ${pins.epoch}, collector ${pins.collector}); refusing to enroll again`);
    }
  }
  const leftovers = initFiles(dir).filter((path) => existsSync(path));
  if (leftovers.length > 0) {
    logger.warn({ files: leftovers }, 'removing what an interrupted init left behind');
    for (const path of leftovers) rmSync(path, { force: true });
  }
  return false;
}

async function requestEnrollment(
  collectorUrl: string,
  body: { token: string; agent: string; publicKey: unknown },
  timeouts: ClientTimeouts,
): Promise<EnrollResponse> {
  const url = `${collectorUrl}${API_PREFIX}/enroll`;
  let response;
  try {
    response = await got.post(url, {
      json: body,
      headers: { 'user-agent': agentUserAgent() },
      responseType: 'text',
      throwHttpErrors: false,
      followRedirect: false,
      retry: { limit: 0 },
      timeout: { connect: timeouts.connectMs, response: timeouts.responseMs },
    });
  } catch (err) {
    const code = err instanceof RequestError ? err.code : 'error';
    throw new EnrollError(`cannot reach the collector at ${collectorUrl} (${code}): ${(err as Error).message}`);
  }
  if (response.statusCode < 200 || response.statusCode >= 300) {
    const problem = parseProblem(response.body);
    const label = [String(response.statusCode), problem.code].filter(Boolean).join(' ');
    throw new EnrollError(`enrollment refused by the collector (${label}): ${problem.detail ?? 'no detail given'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(response.body);
  } catch {
    throw new EnrollError('the collector answered the enrollment with a body that is not JSON');
  }
  const parsed = enrollResponseSchema.safeParse(json);
  if (!parsed.success) throw new EnrollError(`the collector's enrollment answer is malformed: ${describeZodError(parsed.error)}`);
  return parsed.data;
}
