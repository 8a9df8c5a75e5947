import type { SegmentWriter } from './blob-store.js';

/**
 * A result segment held in memory until `seal()` uploads it as one object (S3 has no append):
 * all appends between two seals are one request. `written()` resolves at once — the segment is
 * not durable before `seal()` (`durableAppend: false`). A failed upload is kept and thrown by
 * every later call except `discard()`, which still cleans up.
 */
export class S3SegmentWriter implements SegmentWriter {
  readonly key: string;
  readonly #put: (body: Buffer) => Promise<void>;
  readonly #remove: () => Promise<void>;
  #lines = 0;
  #bytes = 0;
  #pending: string[] = [];
  #state: 'open' | 'sealed' | 'discarded' = 'open';
  #sealing: Promise<{ lines: number; bytes: number }> | null = null;
  #discarding: Promise<void> | null = null;
  #error: Error | null = null;

  constructor(key: string, put: (body: Buffer) => Promise<void>, remove: () => Promise<void>) {
    this.key = key;
    this.#put = put;
    this.#remove = remove;
  }

  get lines(): number {
    return this.#lines;
  }

  get bytes(): number {
    return this.#bytes;
  }

  append(line: string): void {
    if (this.#error !== null) throw this.#error;
    if (this.#state !== 'open') throw new Error(`Segment ${this.key} is ${this.#state}`);
    if (line.length === 0 || line.charCodeAt(line.length - 1) !== 0x0a) line += '\n';
    this.#pending.push(line);
    this.#lines++;
    this.#bytes += Buffer.byteLength(line);
  }

  written(): Promise<void> {
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#state === 'discarded') return Promise.reject(new Error(`Segment ${this.key} is discarded`));
    return Promise.resolve();
  }

  /** One PutObject of everything appended (none for an empty segment). Calling it again returns the same outcome. */
  seal(): Promise<{ lines: number; bytes: number }> {
    this.#sealing ??= this.#seal();
    return this.#sealing;
  }

  async #seal(): Promise<{ lines: number; bytes: number }> {
    if (this.#state === 'discarded') throw new Error(`Segment ${this.key} is discarded`);
    this.#state = 'sealed';
    const body = this.#pending.join('');
    this.#pending = [];
    if (body.length > 0) {
      try {
        await this.#put(Buffer.from(body, 'utf8'));
      } catch (err) {
        this.#error = err instanceof Error ? err : new Error(String(err));
        throw this.#error;
      }
    }
    return { lines: this.#lines, bytes: this.#bytes };
  }

  /** Drops what is buffered and deletes the object (if a seal put one there). */
  discard(): Promise<void> {
    this.#discarding ??= this.#discard();
    return this.#discarding;
  }

  async #discard(): Promise<void> {
    const sealing = this.#sealing;
    this.#state = 'discarded';
    this.#pending = [];
    await sealing?.catch(() => {});
    await this.#remove();
  }
}
