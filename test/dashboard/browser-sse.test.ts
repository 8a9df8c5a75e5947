import { describe, expect, it } from 'vitest';

import { type SseMessage, SseParser } from '../../web/src/sse.js';

// The page reads /v1/events with fetch() (EventSource cannot send the API key), so it parses the
// stream itself: the parser must give the same events however the bytes are cut into pieces.

const STREAM =
  '\uFEFFretry: 3000\n\n' +
  'event: engine\ndata: {"in_flight":1}\n\n' +
  ': heartbeat\n\n' +
  'event: progress\r\ndata: {"id":"batch_1",\r\ndata: "progress":0.5}\r\n\r\n' +
  'id: 7\rdata:no space\r\r' +
  'event: status\ndata\n\n' +
  'event: dropped\n\n' +
  'unknown: x\ndata: last\n\n';

const EXPECTED: SseMessage[] = [
  { event: 'engine', data: '{"in_flight":1}', id: '' },
  { event: 'progress', data: '{"id":"batch_1",\n"progress":0.5}', id: '' },
  { event: 'message', data: 'no space', id: '7' },
  { event: 'status', data: '', id: '7' },
  { event: 'message', data: 'last', id: '7' },
];

const parse = (pieces: string[]): { messages: SseMessage[]; retry: number | null } => {
  const p = new SseParser();
  const messages = pieces.flatMap((piece) => p.push(piece));
  return { messages, retry: p.retryMs };
};

describe('the dashboard’s server-sent events parser', () => {
  it('reads events, comments, CRLF/CR/LF line ends, multi-line data and retry', () => {
    const { messages, retry } = parse([STREAM]);
    expect(messages).toEqual(EXPECTED);
    expect(retry).toBe(3000);
  });

  it('gives the same events for every way of cutting the stream in two or in single characters', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      expect(parse([STREAM.slice(0, i), STREAM.slice(i)]).messages, `cut at ${i}`).toEqual(EXPECTED);
    }
    expect(parse([...STREAM]).messages).toEqual(EXPECTED);
  });

  it('holds an unfinished event until its blank line', () => {
    const p = new SseParser();
    expect(p.push('event: progress\ndata: {"id":"b"}\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ event: 'progress', data: '{"id":"b"}', id: '' }]);
  });
});
