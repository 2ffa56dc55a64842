/**
 * pino JSON logs. Credentials never reach a log line: authorization headers, tokens, keys and
 * private JWK members are redacted by path wherever they appear.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'localToken',
  '*.localToken',
  'privateJwk',
  '*.privateJwk',
  'd',
  '*.d',
];

export function createLogger(name: string, level = 'info', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid, component: name },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options, pino.destination({ dest: 2, sync: true }));
}
