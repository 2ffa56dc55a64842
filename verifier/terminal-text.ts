/**
 * Everything `sakshya-verify` prints passes through here, because every field it prints comes
 * from the bundle, and the bundle comes from the party being audited. A record id, a file name,
 * an origin or a JSON parser's message holding `ESC[2J` could clear the auditor's screen and
 * draw a fake `VERIFIED`; a U+202E could reverse a line so that it reads as something else.
 *
 * - Text output (`escapeForTerminal`): C0 controls (including `\n` and `\t` inside a field),
 *   DEL and C1 controls become `\xHH`; Unicode bidi controls and the line and paragraph
 *   separators become `\uHHHH`. Visible, so an auditor sees that something odd was there.
 *   A backslash is left as it is: the output is for reading, not for parsing back, and doubling
 *   every backslash would garble Windows paths in every message.
 * - JSON output (`jsonForTerminal`): JSON.stringify already writes C0 controls as `\u00XX`;
 *   the rest of the set above is written the same way. A JSON parser reads back exactly the
 *   same strings (an id stays byte-for-byte the evidence), but the bytes on the screen or in a
 *   log file hold no raw control or bidi character.
 */

/** U+061C ALM, U+200E LRM, U+200F RLM, U+202A–U+202E embeddings and overrides, U+2066–U+2069 isolates. */
const BIDI_AND_SEPARATORS = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\u2028\\u2029';
const UNSAFE_IN_TEXT = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${BIDI_AND_SEPARATORS}]`, 'g');
// C0 is escaped by JSON.stringify itself; a raw one never reaches this.
const UNSAFE_IN_JSON = new RegExp(`[\\u007f-\\u009f${BIDI_AND_SEPARATORS}]`, 'g');

function hex(char: string, digits: number): string {
  return char.charCodeAt(0).toString(16).padStart(digits, '0');
}

/** One line of text with every terminal control and bidi character shown as a visible escape. */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE_IN_TEXT, (char) => (char.charCodeAt(0) <= 0xff ? `\\x${hex(char, 2)}` : `\\u${hex(char, 4)}`));
}

/** Lines joined for a terminal: each line escaped on its own, so a field cannot start a line. */
export function linesForTerminal(lines: readonly string[]): string {
  return lines.map(escapeForTerminal).join('\n') + '\n';
}

/** `JSON.stringify(value, null, 2)` with no raw control, C1 or bidi character in its bytes; parses back to the same value. */
export function jsonForTerminal(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (char) => `\\u${hex(char, 4)}`) + '\n';
}
