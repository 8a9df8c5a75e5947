/**
 * Up to `max` buffers of `size` bytes, allocated on first need and handed out again once given
 * back, so an upload of any length fills the same few buffers instead of allocating one per part.
 * Taking more than `max` at once is a bug of the caller, and throws.
 */
export class PartBuffers {
  readonly #size: number;
  readonly #max: number;
  readonly #free: Buffer[] = [];
  #allocated = 0;

  constructor(size: number, max: number) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`Invalid part buffer size ${size}`);
    if (!Number.isSafeInteger(max) || max <= 0) throw new Error(`Invalid part buffer count ${max}`);
    this.#size = size;
    this.#max = max;
  }

  take(): Buffer {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    if (this.#allocated === this.#max) throw new Error(`All ${this.#max} part buffers are in use`);
    this.#allocated++;
    // Not zero-filled: every byte sent is written first, and untouched pages cost no memory.
    return Buffer.allocUnsafeSlow(this.#size);
  }

  give(buf: Buffer): void {
    this.#free.push(buf);
  }
}
