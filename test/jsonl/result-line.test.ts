import { describe, expect, it } from 'vitest';

import { errorLine, httpErrorLine, successLine } from '../../src/jsonl/result-line.js';

describe('result lines', () => {
  it('successLine embeds the raw body text', () => {
    const body = '{"id":"chatcmpl-1","x":1.0,"usage":{"total_tokens":3}}';
    const s = successLine('batch_req_1', 'c"1\n', 200, 'req_9', body);
    expect(s.endsWith('\n')).toBe(true);
    expect(s.indexOf('\n')).toBe(s.length - 1);
    expect(s).toContain(`"body":${body}}`); // 1.0 kept as sent: not re-serialised
    expect(JSON.parse(s)).toEqual({
      id: 'batch_req_1',
      custom_id: 'c"1\n',
      response: { status_code: 200, request_id: 'req_9', body: JSON.parse(body) as unknown },
      error: null,
    });
  });

  it('successLine keeps a pretty-printed body on one line', () => {
    const body = '{\n  "a": "x\\ny",\r\n  "b": [1,\n2]\n}\n';
    const s = successLine('i', 'c', 200, 'req_2', body);
    expect(s.indexOf('\n')).toBe(s.length - 1);
    expect(JSON.parse(s)).toMatchObject({ response: { request_id: 'req_2', body: { a: 'x\ny', b: [1, 2] } } });
  });

  it('httpErrorLine embeds JSON raw and other text as a string', () => {
    const j = httpErrorLine('i', 'c', 400, 'req_1', '{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"x"}}');
    expect(JSON.parse(j)).toEqual({
      id: 'i',
      custom_id: 'c',
      response: { status_code: 400, request_id: 'req_1', body: { error: { message: 'bad', type: 'invalid_request_error', param: null, code: 'x' } } },
      error: null,
    });
    const t = httpErrorLine('i', 'c', 502, 'i', '<html>\nBad gateway</html>');
    expect(t.indexOf('\n')).toBe(t.length - 1);
    expect(JSON.parse(t)).toMatchObject({ response: { status_code: 502, request_id: 'i', body: '<html>\nBad gateway</html>' }, error: null });
  });

  it('errorLine', () => {
    const e = errorLine('batch_req_2', 'c2', 'batch_expired', 'This request could not be executed before the completion window expired.');
    expect(e.endsWith('}\n')).toBe(true);
    expect(JSON.parse(e)).toEqual({
      id: 'batch_req_2',
      custom_id: 'c2',
      response: null,
      error: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
    });
  });
});
