/**
 * The most frequent keys of a stream in bounded memory: the Space-Saving algorithm (Metwally,
 * Agrawal and El Abbadi, "Efficient computation of frequent and top-k elements in data
 * streams", ICDT 2005). It keeps at most `capacity` counters; a key not counted yet, when all
 * are taken, replaces the key with the smallest count and inherits that count plus one. So:
 * - memory is O(capacity) however many distinct keys arrive (an agent sending 10^5 distinct
 *   body fields costs what 1,024 do);
 * - each `add` costs O(log capacity) (a min-heap on the counts);
 * - a count is never below the key's true count, and over it by at most the smallest count;
 *   every key seen more than n / capacity times (n = all `add`s) is kept. While fewer than
 *   `capacity` distinct keys have arrived, every count is exact.
 * It is deterministic: the same keys in the same order give the same counters, which keeps a
 * report bundle a pure function of its input.
 */

interface Counter {
  key: string;
  count: number;
  /** Position in the heap. */
  at: number;
}

export class TopKeys {
  readonly capacity: number;
  /** Min-heap on count; ties broken by key so the order of equal counts never depends on history. */
  readonly #heap: Counter[] = [];
  readonly #byKey = new Map<string, Counter>();

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
    this.capacity = capacity;
  }

  /** Keys counted now (at most `capacity`). */
  get size(): number {
    return this.#heap.length;
  }

  add(key: string): void {
    const known = this.#byKey.get(key);
    if (known) {
      known.count++;
      this.#down(known.at);
      return;
    }
    if (this.#heap.length < this.capacity) {
      const counter = { key, count: 1, at: this.#heap.length };
      this.#heap.push(counter);
      this.#byKey.set(key, counter);
      this.#up(counter.at);
      return;
    }
    const smallest = this.#heap[0]!;
    this.#byKey.delete(smallest.key);
    smallest.key = key;
    smallest.count++;
    this.#byKey.set(key, smallest);
    this.#down(0);
  }

  /** The `k` keys with the highest counts, highest first, equal counts by key (UTF-16 order). */
  top(k: number): { key: string; count: number }[] {
    return this.#heap
      .map(({ key, count }) => ({ key, count }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, k);
  }

  #less(a: Counter, b: Counter): boolean {
    return a.count < b.count || (a.count === b.count && a.key > b.key);
  }

  #swap(i: number, j: number): void {
    const heap = this.#heap;
    const a = heap[i]!;
    const b = heap[j]!;
    heap[i] = b;
    heap[j] = a;
    b.at = i;
    a.at = j;
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(this.#heap[i]!, this.#heap[parent]!)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && this.#less(heap[left]!, heap[least]!)) least = left;
      if (right < heap.length && this.#less(heap[right]!, heap[least]!)) least = right;
      if (least === i) return;
      this.#swap(i, least);
      i = least;
    }
  }
}
