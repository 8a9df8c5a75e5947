/**
 * Output / error file lines (reference §4.3–4.4), built by string concatenation so an upstream
 * body is embedded as the raw JSON text it arrived as, never parsed and re-serialised.
 * Every line ends with '\n'.
 */

/** A 2xx answer: `bodyJsonText` must be valid JSON (it is embedded as is). */
export function successLine(
  id: string,
  customId: string,
  statusCode: number,
  upstreamRequestId: string,
  bodyJsonText: string,
): string {
  return responseLine(id, customId, statusCode, upstreamRequestId, rawJson(bodyJsonText));
}

/**
 * A non-2xx upstream answer (goes to the error file, `error: null`): the body is embedded raw when
 * it is valid JSON, otherwise as a JSON string.
 */
export function httpErrorLine(
  id: string,
  customId: string,
  statusCode: number,
  upstreamRequestId: string,
  bodyText: string,
): string {
  let body: string;
  try {
    JSON.parse(bodyText);
    body = rawJson(bodyText);
  } catch {
    body = JSON.stringify(bodyText);
  }
  return responseLine(id, customId, statusCode, upstreamRequestId, body);
}

/** A request that got no HTTP answer (batch_expired, batch_cancelled, request_timeout, …). */
export function errorLine(id: string, customId: string, code: string, message: string): string {
  return `{"id":${JSON.stringify(id)},"custom_id":${JSON.stringify(customId)},"response":null,"error":{"code":${JSON.stringify(code)},"message":${JSON.stringify(message)}}}\n`;
}

function responseLine(id: string, customId: string, statusCode: number, requestId: string, body: string): string {
  const status = Number.isInteger(statusCode) ? statusCode : 0;
  return `{"id":${JSON.stringify(id)},"custom_id":${JSON.stringify(customId)},"response":{"status_code":${status},"request_id":${JSON.stringify(requestId)},"body":${body}},"error":null}\n`;
}

/**
 * Valid JSON can hold raw CR/LF only as whitespace between tokens (inside strings they are
 * escaped), so removing them keeps the value and makes it fit on one line. Empty text → null.
 */
function rawJson(text: string): string {
  if (text.indexOf('\n') !== -1 || text.indexOf('\r') !== -1) text = text.replace(/[\r\n]+/g, ' ');
  return isBlank(text) ? 'null' : text;
}

function isBlank(text: string): boolean {
  if (text.length === 0) return true;
  const c = text.charCodeAt(0);
  if (c !== 0x20 && c !== 0x09) return false;
  return text.trim().length === 0;
}
