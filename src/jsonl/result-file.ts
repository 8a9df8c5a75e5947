import { LineScanner } from './line-scanner.js';

export interface ResultLinesScan {
  /** Complete lines ('\n'-terminated). */
  lines: number;
  /** Bytes of the complete lines: where the next append starts, and the part's length for compose. */
  completeBytes: number;
  customIds: Set<string>;
  /** Bytes after the last '\n' (a line torn by a crash mid-write); 0 when the source ended with '\n'. */
  tornBytes: number;
}

/**
 * Reads an output/error file or segment for resuming: counts its complete lines, collects their
 * custom_ids and hands each to `onLine` (e.g. to re-add usage). Bytes after the last '\n' are a
 * torn line: reported in `tornBytes` and otherwise ignored (the source is not changed).
 */
export async function scanResultLines(source: AsyncIterable<Buffer>, onLine?: (text: string) => void): Promise<ResultLinesScan> {
  const customIds = new Set<string>();
  const scanner = new LineScanner(Number.MAX_SAFE_INTEGER);
  const sink = (buf: Buffer, start: number, end: number): void => {
    if (start === end) return;
    let text: string | null = null;
    if (onLine !== undefined) {
      text = buf.toString('utf8', start, end);
      onLine(text);
    }
    const id = idFromPrefix(text ?? buf.toString('utf8', start, Math.min(end, start + PREFIX_BYTES))) ?? idFromJson(text ?? buf.toString('utf8', start, end));
    if (id !== null) customIds.add(id);
  };
  for await (const chunk of source) scanner.push(chunk, sink);
  // No scanner.end(): bytes after the last '\n' are a torn line, not a line.
  return { lines: scanner.line, completeBytes: scanner.completeBytes, customIds, tornBytes: scanner.totalBytes - scanner.completeBytes };
}

/** Prefix our own lines start with; the custom_id is taken from it without parsing the body. */
const PREFIX = /^\{"id":"(?:[^"\\]|\\.)*","custom_id":"((?:[^"\\]|\\.)*)"/;
const PREFIX_BYTES = 4096;

/** custom_id from the start of a line written by `result-line.ts`, or null. */
function idFromPrefix(text: string): string | null {
  const m = PREFIX.exec(text);
  if (m === null) return null;
  const raw = m[1]!;
  if (raw.indexOf('\\') === -1) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return null;
  }
}

/** custom_id of any JSON line, or null. */
function idFromJson(text: string): string | null {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return null;
    const id = (v as Record<string, unknown>)['custom_id'];
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}
