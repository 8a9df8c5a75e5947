import { LineScanner } from './line-scanner.js';

export interface FoundLine {
  /** The line as stored, with its '\n'. */
  line: Buffer | null;
  /** Bytes read from the source. */
  bytesRead: number;
}

const OPEN = Buffer.from('{"id":"');

/**
 * Reads result lines (output/error file or segment) until the one whose custom_id is `customId`;
 * stops reading there. Only complete lines count (a torn last line is not one). Lines written by
 * `result-line.ts` start `{"id":"…","custom_id":<JSON string>,` — the custom_id is compared there as
 * bytes, without parsing; any other line is parsed.
 */
export async function findResultLine(source: AsyncIterable<Buffer>, customId: string): Promise<FoundLine> {
  const needle = Buffer.from(`,"custom_id":${JSON.stringify(customId)},`);
  const scanner = new LineScanner(Number.MAX_SAFE_INTEGER);
  let found: Buffer | null = null;
  let bytesRead = 0;
  const sink = (buf: Buffer, start: number, end: number): void => {
    if (found !== null || !matches(buf, start, end, needle, customId)) return;
    found = Buffer.concat([buf.subarray(start, end), Buffer.from('\n')]);
  };
  for await (const chunk of source) {
    bytesRead += chunk.length;
    scanner.push(chunk, sink);
    if (found !== null) break;
  }
  return { line: found, bytesRead };
}

function matches(buf: Buffer, start: number, end: number, needle: Buffer, customId: string): boolean {
  if (end - start > OPEN.length && buf.compare(OPEN, 0, OPEN.length, start, start + OPEN.length) === 0) {
    // Our ids (batch_req_…) have no escapes: the id string ends at the next quote.
    const close = buf.indexOf(0x22, start + OPEN.length);
    if (close !== -1 && close < end && buf[close - 1] !== 0x5c) {
      return close + 1 + needle.length <= end && buf.compare(needle, 0, needle.length, close + 1, close + 1 + needle.length) === 0;
    }
  }
  try {
    const v: unknown = JSON.parse(buf.toString('utf8', start, end));
    return typeof v === 'object' && v !== null && (v as Record<string, unknown>)['custom_id'] === customId;
  } catch {
    return false;
  }
}
