/**
 * Strings sent as one: `text` is every string joined, `ends[i]` where string i ends (UTF-16
 * units). One string of a batch's size, instead of one per record, is what the event loop holds
 * while the batch waits for the write lock: a record's text is cut out of it (`textAt`, which
 * V8 does without copying) only when it is stored, so the young generation's scavenges copy one
 * string (or none: a large one lives in its own space), not hundreds.
 */
export interface PackedTexts {
  text: string;
  ends: Uint32Array;
}

export const NO_TEXTS: PackedTexts = { text: '', ends: new Uint32Array(0) };

export function packTexts(texts: readonly string[]): PackedTexts {
  const ends = new Uint32Array(texts.length);
  let end = 0;
  for (let i = 0; i < texts.length; i++) ends[i] = end += texts[i]!.length;
  return { text: texts.join(''), ends };
}

/** String i of `packed`. */
export function textAt(packed: PackedTexts, i: number): string {
  return packed.text.slice(i === 0 ? 0 : packed.ends[i - 1], packed.ends[i]);
}
