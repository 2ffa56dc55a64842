/**
 * A batch's texts as UTF-8 bytes in one buffer, for handing them from a worker thread to the
 * event loop.
 *
 * Why: hundreds of record-sized strings, held by the event loop while the batch waits for the
 * write lock, were what its young-generation collections copied most; one string joined from
 * them cost more to build and clone than it saved. Bytes in one typed array clone as one copy
 * and live outside the JS heap, and the ledger stores them as they are (TEXT from the bytes):
 * no record's text is ever a JS string on the event loop.
 */
export interface PackedTexts {
  /** Every text's UTF-8 bytes, one after the other. */
  bytes: Uint8Array;
  /** `ends[i]`: the byte offset where text i ends. */
  ends: Uint32Array;
}

export const NO_TEXTS: PackedTexts = { bytes: new Uint8Array(0), ends: new Uint32Array(0) };

/** Collects texts' bytes, in order, into one growing buffer. */
export class PackedTextsBuilder {
  #bytes: Buffer;
  #length = 0;
  readonly #ends: Uint32Array;
  #count = 0;

  constructor(count: number, expectedBytes: number) {
    this.#bytes = Buffer.allocUnsafe(Math.max(1024, expectedBytes));
    this.#ends = new Uint32Array(count);
  }

  append(bytes: Uint8Array): void {
    if (this.#length + bytes.length > this.#bytes.length) {
      const grown = Buffer.allocUnsafe(2 * (this.#length + bytes.length));
      this.#bytes.copy(grown, 0, 0, this.#length);
      this.#bytes = grown;
    }
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
    this.#ends[this.#count++] = this.#length;
  }

  finish(): PackedTexts {
    return { bytes: this.#bytes.subarray(0, this.#length), ends: this.#ends.subarray(0, this.#count) };
  }
}

/** Text i's bytes: a view into `packed`, not a copy. */
export function bytesAt(packed: PackedTexts, i: number): Buffer {
  const start = i === 0 ? 0 : packed.ends[i - 1]!;
  return Buffer.from(packed.bytes.buffer, packed.bytes.byteOffset + start, packed.ends[i]! - start);
}

/** Every text, decoded (for tests: the ingest path never needs them as strings). */
export function unpackTexts(packed: PackedTexts): string[] {
  return Array.from(packed.ends, (_, i) => bytesAt(packed, i).toString('utf8'));
}
