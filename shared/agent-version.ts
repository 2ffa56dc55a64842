/**
 * How an agent tells the collector which version of the software it runs: every HTTP request
 * it makes carries `User-Agent: sakshya-agent/<version>`, and every batch carries
 * `agentVersion` (shared/protocol.ts). The collector keeps the batch's value with the agent's
 * contact and falls back to the User-Agent only for a batch without it. Neither is proof of
 * anything — an agent key can claim any version — it is an operator's inventory aid.
 */
import { AGENT_VERSION_PATTERN } from './protocol.ts';
import { packageVersion } from './package-version.ts';

export const AGENT_PRODUCT = 'sakshya-agent';

/** This agent's version, as its batches report it. */
export function agentVersion(): string {
  return packageVersion();
}

/** The User-Agent header of every request the agent makes. */
export function agentUserAgent(version: string = agentVersion()): string {
  return `${AGENT_PRODUCT}/${version}`;
}

/**
 * The version named by a `sakshya-agent/<version>` User-Agent (its first product token), or
 * undefined for any other header, or a version outside AGENT_VERSION_PATTERN.
 */
export function agentVersionFromUserAgent(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^sakshya-agent\/(\S+)(?:\s|$)/.exec(header);
  if (!match || !AGENT_VERSION_PATTERN.test(match[1]!)) return undefined;
  return match[1];
}
