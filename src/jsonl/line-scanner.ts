import { JsonlError } from './errors.js';

/**
 * Receives one line. The line's content is `buf[start, end)`: without its '\n', without a trailing
 * '\r' and (line 1) without a UTF-8 BOM. `byteOffset`/`byteLength` describe the line in the source
 * (BOM and terminator included), so the byteLengths of all lines add up to the source size; the one
 * exception is a source that is only a BOM, which has no line to own its 3 bytes.
 * `buf` may be reused after the call returns: copy or decode what you keep.
 */
export type LineSink = (buf: Buffer, start: number, end: number, line: number, byteOffset: number, byteLength: number) => void;

const LF = 0x0a;
const CR = 0x0d;
const NO_BYTES = Buffer.alloc(0);

/**
 * The one line-splitting core every JSONL reader here uses, so the line rules are identical
 * everywhere. Push chunks, then call `end()`. Newlines are found with `Buffer#indexOf`; a line split
 * across chunks is kept as a list of slices and concatenated once, when its '\n' arrives. A line
 * whose content passes `maxLineBytes` throws `JsonlError('line_too_long')` as soon as that is known.
 *
 * Rules: a UTF-8 BOM at the very start is stripped; a trailing '\r' is stripped (CRLF);
 * a final line without '\n' is still a line; an empty segment after the last '\n' is not.
 */
export class LineScanner {
  /** Lines emitted so far (= the 1-based number of the last one). */
  line = 0;
  /** Source offset just after the last '\n' seen: the end of the last complete line. */
  completeBytes = 0;
  /** Source bytes pushed so far. */
  totalBytes = 0;

  private readonly maxLineBytes: number;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  /** First bytes held back until we know whether they start with a BOM. */
  private head: Buffer | null = NO_BYTES;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  push(chunk: Buffer, sink: LineSink): void {
    const base = this.totalBytes;
    this.totalBytes += chunk.length;
    if (this.head !== null) {
      const head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      const bom = bomAt(head);
      if (bom === 'maybe') {
        this.head = head;
        return;
      }
      this.head = null;
      // Nothing was scanned before: `head` starts at the very beginning of the source.
      this.scan(head, bom === 'yes' ? 3 : 0, 0, sink);
      return;
    }
    this.scan(chunk, 0, base, sink);
  }

  /** Ends the input: emits the final line if it has no '\n'. */
  end(sink: LineSink): void {
    if (this.head !== null) {
      const head = this.head;
      this.head = null;
      if (head.length > 0) this.scan(head, bomAt(head) === 'yes' ? 3 : 0, 0, sink);
    }
    if (this.tailBytes === 0) return;
    const rest = this.tail.length === 1 ? this.tail[0]! : Buffer.concat(this.tail, this.tailBytes);
    this.tail = [];
    this.tailBytes = 0;
    this.emit(rest, 0, rest.length, this.totalBytes - this.completeBytes, sink);
    this.completeBytes = this.totalBytes;
  }

  /** `buf[0]` sits at source offset `base`; scanning starts at `start`. */
  private scan(buf: Buffer, start: number, base: number, sink: LineSink): void {
    let nl = buf.indexOf(LF, start);
    if (nl === -1) {
      this.keep(buf, start);
      return;
    }
    if (this.tailBytes > 0) {
      this.tail.push(buf.subarray(start, nl));
      const line = Buffer.concat(this.tail, this.tailBytes + nl - start);
      this.tail = [];
      this.tailBytes = 0;
      this.emit(line, 0, line.length, base + nl + 1 - this.completeBytes, sink);
      this.completeBytes = base + nl + 1;
      start = nl + 1;
      nl = buf.indexOf(LF, start);
    }
    while (nl !== -1) {
      this.emit(buf, start, nl, base + nl + 1 - this.completeBytes, sink);
      this.completeBytes = base + nl + 1;
      start = nl + 1;
      nl = buf.indexOf(LF, start);
    }
    this.keep(buf, start);
  }

  /** Holds `buf[start..]` as the start of a line whose '\n' has not arrived yet. */
  private keep(buf: Buffer, start: number): void {
    if (start >= buf.length) return;
    this.tail.push(start === 0 ? buf : buf.subarray(start));
    this.tailBytes += buf.length - start;
    // One byte of slack: a trailing '\r' would not count.
    if (this.tailBytes > this.maxLineBytes && !(this.tailBytes === this.maxLineBytes + 1 && buf[buf.length - 1] === CR)) {
      throw this.tooLong(this.line + 1);
    }
  }

  private emit(buf: Buffer, start: number, end: number, byteLength: number, sink: LineSink): void {
    if (end > start && buf[end - 1] === CR) end--;
    const line = this.line + 1;
    if (end - start > this.maxLineBytes) throw this.tooLong(line);
    this.line = line;
    sink(buf, start, end, line, this.completeBytes, byteLength);
  }

  private tooLong(line: number): JsonlError {
    return new JsonlError('line_too_long', line, `Line ${line} is longer than ${this.maxLineBytes} bytes.`);
  }
}

/** Whether `b` starts with a UTF-8 BOM (EF BB BF); 'maybe' while too few bytes have arrived. */
function bomAt(b: Buffer): 'yes' | 'no' | 'maybe' {
  if (b.length === 0) return 'maybe';
  if (b[0] !== 0xef) return 'no';
  if (b.length === 1) return 'maybe';
  if (b[1] !== 0xbb) return 'no';
  if (b.length === 2) return 'maybe';
  return b[2] === 0xbf ? 'yes' : 'no';
}
