/**
 * JSON text from the network, parsed under a nesting limit: the depth is checked on the text
 * before `JSON.parse`, so a deeply nested body is refused before it costs a parse (or a stack).
 * Used by the collector's request bodies, on the event loop (json-body.ts) and, for batches,
 * in the batch-check workers.
 */
import { ProblemError } from './problem.ts';

export const MAX_JSON_DEPTH = 32;

/**
 * Whether JSON text nests `[`/`{` deeper than `max`, outside strings; stops at the first level
 * past `max`. Linear, no recursion, no allocation.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Parses a request body's text; 400 `request.malformed` if it nests too deep or is not JSON. */
export function parseJsonText(text: string, maxDepth: number = MAX_JSON_DEPTH): unknown {
  if (jsonDepthExceeds(text, maxDepth)) {
    throw new ProblemError('request.malformed', `the JSON body nests deeper than ${maxDepth} levels`, { maxDepth });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ProblemError('request.malformed', 'the request body is not valid JSON');
  }
}
