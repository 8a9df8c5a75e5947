/**
 * `body` (a JSON object's text) with a top-level `"priority": n` spliced in after its opening
 * brace, so a body of megabytes is neither parsed nor re-serialised (V8 joins the slices without
 * copying them until the socket write). vLLM's field for servers run with
 * `--scheduling-policy priority` (lower runs earlier) is an integer: anything else, or a body
 * that is not an object, is sent unchanged. A `priority` the body already has comes later in the
 * text and wins (JSON parsers keep the last duplicate), so a request's own field is never overridden.
 */
export function withPriority(body: string, priority: number): string {
  if (!Number.isSafeInteger(priority)) return body;
  let i = 0;
  while (isWs(body.charCodeAt(i))) i++;
  if (body.charCodeAt(i) !== 123) return body;
  let j = i + 1;
  while (isWs(body.charCodeAt(j))) j++;
  if (j >= body.length) return body;
  const field = body.charCodeAt(j) === 125 ? `"priority":${priority}` : `"priority":${priority},`;
  return body.slice(0, i + 1) + field + body.slice(i + 1);
}

const isWs = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9;
