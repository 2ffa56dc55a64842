/**
 * Adaptive batch size: halves on a timeout or a 413 (the link or the collector could not take
 * that much at once), doubles back towards the configured maximum on each success.
 */
export class AdaptiveBatchSize {
  readonly max: number;
  #current: number;

  constructor(max: number) {
    if (!(max >= 1)) throw new RangeError('batch size maximum must be at least 1');
    this.max = max;
    this.#current = max;
  }

  get current(): number {
    return this.#current;
  }

  shrink(): void {
    this.#current = Math.max(1, Math.floor(this.#current / 2));
  }

  grow(): void {
    this.#current = Math.min(this.max, this.#current * 2);
  }
}
