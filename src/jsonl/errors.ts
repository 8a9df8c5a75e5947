/**
 * Errors raised while reading or checking a JSONL stream. `code` is stable (callers branch on it,
 * never on the message); `line` is 1-based, or null when the problem is not about one line.
 */
export type JsonlErrorCode =
  | 'invalid_json_line'
  | 'line_too_long'
  | 'empty_file'
  | 'invalid_utf8'
  | 'blank_line'
  | 'decompressed_too_large'
  | 'invalid_gzip';

export class JsonlError extends Error {
  readonly code: JsonlErrorCode;
  readonly line: number | null;

  constructor(code: JsonlErrorCode, line: number | null, message?: string, opts?: { cause?: unknown }) {
    super(message ?? defaultMessage(code, line), opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'JsonlError';
    this.code = code;
    this.line = line;
  }
}

function defaultMessage(code: JsonlErrorCode, line: number | null): string {
  const at = line === null ? 'The file' : `Line ${line}`;
  switch (code) {
    case 'invalid_json_line':
      return `${at} is not valid JSON.`;
    case 'line_too_long':
      return `${at} is too long.`;
    case 'empty_file':
      return 'The file contains no lines.';
    case 'invalid_utf8':
      return `${at} is not valid UTF-8.`;
    case 'blank_line':
      return `${at} is empty; every line must be one JSON request.`;
    case 'decompressed_too_large':
      return 'The gzip-compressed file is too large once decompressed.';
    case 'invalid_gzip':
      return 'The file looks gzip-compressed but is truncated or corrupt.';
  }
}
