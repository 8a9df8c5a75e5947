/**
 * Just enough of a JSON scanner to find a few fields of a request body without parsing it: values
 * the caller does not need are skipped (strings with `indexOf`), never built. Positions only;
 * nothing is decoded, so a value is identified by its raw text. Malformed input gives -1 / false.
 */

const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const COLON = 58;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;

const isWs = (c: number): boolean => c === 32 || c === 10 || c === 13 || c === 9;

export function skipWs(s: string, i: number): number {
  while (isWs(s.charCodeAt(i))) i++;
  return i;
}

/** `s[i]` is an opening quote: the index after the closing one, or -1. */
export function stringEnd(s: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = s.indexOf('"', from);
    if (q < 0) return -1;
    let backslashes = 0;
    while (s.charCodeAt(q - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/** The index after the value starting at `i`, or -1. */
export function valueEnd(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === QUOTE) return stringEnd(s, i);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (d === QUOTE) {
        const e = stringEnd(s, j);
        if (e < 0) return -1;
        j = e - 1;
      } else if (d === LBRACE || d === LBRACKET) {
        depth++;
      } else if ((d === RBRACE || d === RBRACKET) && --depth === 0) {
        return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  for (; j < s.length; j++) {
    const d = s.charCodeAt(j);
    if (d === COMMA || d === RBRACE || d === RBRACKET || isWs(d)) break;
  }
  return j > i ? j : -1;
}

/** valueEndWithin: the value is longer than asked. */
export const LONGER = -1;
/** valueEndWithin: the text ends inside the value (bad JSON). */
export const TRUNCATED = -2;

/**
 * The index after the value starting at `i` if it ends within `max` characters, else LONGER, or
 * TRUNCATED when the text ends first: whether a value is short, without reading a long one.
 */
export function valueEndWithin(s: string, i: number, max: number): number {
  const stop = Math.min(s.length, i + max);
  const cut = stop === s.length ? TRUNCATED : LONGER;
  const c = s.charCodeAt(i);
  if (c === QUOTE) {
    // A sliced string bounds indexOf's search (V8 slices without copying).
    const window = s.slice(0, stop);
    const e = stringEnd(window, i);
    return e < 0 ? cut : e;
  }
  if (c !== LBRACE && c !== LBRACKET) {
    const e = valueEnd(s, i);
    return e < 0 ? TRUNCATED : e - i <= max ? e : LONGER;
  }
  let depth = 0;
  for (let j = i; j < stop; j++) {
    const d = s.charCodeAt(j);
    if (d === QUOTE) {
      const e = stringEnd(s.slice(0, stop), j);
      if (e < 0) return cut;
      j = e - 1;
    } else if (d === LBRACE || d === LBRACKET) {
      depth++;
    } else if ((d === RBRACE || d === RBRACKET) && --depth === 0) {
      return j + 1;
    }
  }
  return cut;
}

/**
 * Walks the members of an object or the elements of an array. A value the caller did not consume
 * (`consumed(end)`) is skipped when it asks for the next one, so an early return reads no further.
 */
export class Cursor {
  #s = '';
  #pos = 0;
  #close = RBRACE;
  #object = true;
  #first = true;
  #pending = false;
  keyStart = 0;
  keyEnd = 0;
  valueStart = 0;

  /** Opens the object (`{`) or array (`[`) at `i`; false when there is none. */
  open(s: string, i: number): boolean {
    const c = s.charCodeAt(i);
    if (c !== LBRACE && c !== LBRACKET) return false;
    this.#s = s;
    this.#object = c === LBRACE;
    this.#close = this.#object ? RBRACE : RBRACKET;
    this.#pos = i + 1;
    this.#first = true;
    this.#pending = false;
    return true;
  }

  /** The next member (key and value start) or element (value start); false at the end or on bad JSON. */
  next(): boolean {
    const s = this.#s;
    let i = this.#pos;
    if (this.#pending) {
      i = valueEnd(s, this.valueStart);
      if (i < 0) return false;
    }
    this.#pending = false;
    i = skipWs(s, i);
    const c = s.charCodeAt(i);
    if (c === this.#close) return false;
    if (!this.#first) {
      if (c !== COMMA) return false;
      i = skipWs(s, i + 1);
    }
    this.#first = false;
    if (this.#object) {
      if (s.charCodeAt(i) !== QUOTE) return false;
      const k = stringEnd(s, i);
      if (k < 0) return false;
      this.keyStart = i;
      this.keyEnd = k;
      i = skipWs(s, k);
      if (s.charCodeAt(i) !== COLON) return false;
      i = skipWs(s, i + 1);
    }
    if (i >= s.length) return false;
    this.valueStart = i;
    this.#pending = true;
    return true;
  }

  /** The caller read the current value up to `end`. */
  consumed(end: number): void {
    this.#pos = end;
    this.#pending = false;
  }

  /** The current key is `"name"` (compared raw: keys with escapes never match). */
  keyIs(name: string): boolean {
    return this.keyEnd - this.keyStart === name.length + 2 && this.#s.startsWith(name, this.keyStart + 1);
  }

  /** The end of the current value (skipping it). */
  valueEnd(): number {
    return valueEnd(this.#s, this.valueStart);
  }
}

/** Whether `s[start, end)` is exactly the JSON string `"text"`. */
export const rawStringIs = (s: string, start: number, end: number, text: string): boolean =>
  end - start === text.length + 2 && s.charCodeAt(start) === QUOTE && s.startsWith(text, start + 1);
