/** One server-sent event. */
export interface SseMessage {
  event: string;
  data: string;
  id: string;
}

/**
 * An incremental parser of the `text/event-stream` format (WHATWG HTML, "Server-sent events"),
 * for reading `/v1/events` with fetch(): EventSource cannot send an Authorization header. Feed it
 * text as it arrives, in pieces of any size; it returns the events completed so far.
 * Lines end with CRLF, LF or CR; `:` starts a comment; `data` lines join with LF; an event whose
 * data is empty is dropped; `retry` sets the reconnection delay. Pure: no DOM, testable in Node.
 */
export class SseParser {
  #buffer = '';
  #first = true;
  /** The previous piece ended in CR: an LF at the start of the next one belongs to it. */
  #afterCr = false;
  #event = '';
  #data: string[] = [];
  #lastId = '';
  /** The server's `retry:` in milliseconds, if it sent one. */
  retryMs: number | null = null;

  push(text: string): SseMessage[] {
    if (this.#first && text !== '') {
      this.#first = false;
      if (text.startsWith('\uFEFF')) text = text.slice(1);
    }
    if (this.#afterCr && text.startsWith('\n')) text = text.slice(1);
    this.#afterCr = false;
    this.#buffer += text;
    const out: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      const line = this.#buffer.slice(start, i);
      if (c === '\r') {
        if (i + 1 === this.#buffer.length) this.#afterCr = true;
        else if (this.#buffer[i + 1] === '\n') i++;
      }
      start = i + 1;
      const msg = this.#line(line);
      if (msg) out.push(msg);
    }
    this.#buffer = this.#buffer.slice(start);
    return out;
  }

  #line(line: string): SseMessage | null {
    if (line === '') {
      const data = this.#data;
      const event = this.#event;
      this.#data = [];
      this.#event = '';
      if (data.length === 0) return null;
      return { event: event || 'message', data: data.join('\n'), id: this.#lastId };
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default: // unknown fields are ignored
    }
    return null;
  }
}
