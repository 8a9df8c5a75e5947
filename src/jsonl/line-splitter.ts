import { LineScanner } from './line-scanner.js';

export interface RawLine {
  /** 1-based. */
  line: number;
  /** Decoded UTF-8, without '\n', a trailing '\r' or (line 1) a BOM. Invalid bytes become U+FFFD. */
  text: string;
  /** Offset of the line's first byte in the source. */
  byteOffset: number;
  /** Bytes of the line in the source, including its '\n' (and a BOM on line 1). */
  byteLength: number;
}

export interface ReadLinesOptions {
  /** A line whose content (without '\n' / '\r\n') is longer throws `JsonlError('line_too_long')`. */
  maxLineBytes: number;
}

/**
 * Splits a byte stream into lines, one array per source chunk (cheaper to iterate than one
 * promise per line). Lines read before an error are yielded before it is thrown.
 */
export async function* readLineBatches(source: AsyncIterable<Buffer>, opts: ReadLinesOptions): AsyncGenerator<RawLine[]> {
  const scanner = new LineScanner(opts.maxLineBytes);
  let batch: RawLine[] = [];
  const sink = (buf: Buffer, start: number, end: number, line: number, byteOffset: number, byteLength: number): void => {
    batch.push({ line, text: start === end ? '' : buf.toString('utf8', start, end), byteOffset, byteLength });
  };
  let failure: Error | null = null;
  for await (const chunk of source) {
    try {
      scanner.push(chunk, sink);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
    if (batch.length > 0) {
      const out = batch;
      batch = [];
      yield out;
    }
    if (failure !== null) throw failure;
  }
  scanner.end(sink);
  if (batch.length > 0) yield batch;
}

/** Splits a byte stream into lines; see `LineScanner` for the rules. */
export async function* readLines(source: AsyncIterable<Buffer>, opts: ReadLinesOptions): AsyncGenerator<RawLine> {
  for await (const batch of readLineBatches(source, opts)) {
    for (const line of batch) yield line;
  }
}
