import { Cursor, LONGER, rawStringIs, skipWs, valueEnd, valueEndWithin } from './json-scan.js';
import { StringHash } from './string-hash.js';

export interface PrefixKeyOptions {
  /**
   * Without a system/developer message: how many characters of the first message (of the
   * prompt, for /v1/completions) stand for the shared prefix. 512 characters are ~8 KV blocks of
   * 16 tokens: long shared instructions group together, while a short common opening followed by
   * per-request text gives distinct keys (which only spreads those requests, as without a key).
   */
  chars?: number;
  /**
   * The most characters of system/developer text hashed. Prompts equal in their first `maxChars`
   * characters share a key — and ~maxChars/4 tokens of cached prefix, so grouping them is right.
   * Bounds the cost per request: hashing runs at ~2 ns a character, so 4096 (the default, ~1000
   * tokens) costs ≤ 10 µs; the rest of a body is skipped unread.
   */
  maxChars?: number;
  /** The request's endpoint: only its field is read; other endpoints (embeddings…) give null. Without it, the body's fields decide. */
  url?: string;
  /** Where the body object starts in the text (a batch input line holding it); default 0. */
  at?: number;
}

const DEFAULT_CHARS = 512;
const DEFAULT_MAX_CHARS = 4096;

// Tags fed before each part, so equal text in different roles (which the chat template renders
// differently, so no cache is shared) gives different keys.
const TAG_SYSTEM = 1;
const TAG_INSTRUCTIONS = 2;
const TAG_FIRST = 3;
const TAG_PROMPT = 4;

type Kind = 'chat' | 'responses' | 'completions' | 'none' | 'any';

const kindOf = (url: string | undefined): Kind => {
  if (url === undefined) return 'any';
  const q = url.indexOf('?');
  let path = q < 0 ? url : url.slice(0, q);
  if (path.endsWith('/')) path = path.slice(0, -1);
  if (path.endsWith('/chat/completions')) return 'chat';
  if (path.endsWith('/responses')) return 'responses';
  if (path.endsWith('/completions')) return 'completions';
  return 'none';
};

// Module-level scratch (the function is synchronous and never re-entered): no allocation per call.
const hash = new StringHash();
const top = new Cursor();
const list = new Cursor();
const item = new Cursor();

/**
 * A hash of the prompt prefix a request shares with others, for prefix-affinity routing; null
 * when there is nothing usable. Chat and responses: the leading system/developer messages (and
 * `instructions`), else the first `chars` characters of the first message; completions: the first
 * `chars` characters of the prompt. Text is hashed as its raw JSON (nothing decoded), and the
 * body is only scanned as far as needed: a huge user message after the system prompt is never
 * read. Deterministic across processes.
 */
export function prefixKeyOf(bodyJson: string, opts: PrefixKeyOptions = {}): string | null {
  const kind = kindOf(opts.url);
  if (kind === 'none') return null;
  const chars = opts.chars ?? DEFAULT_CHARS;
  const maxChars = opts.maxChars ?? DEFAULT_MAX_CHARS;
  const s = bodyJson;
  if (!top.open(s, skipWs(s, opts.at ?? 0))) return null;
  let instructions = -1;
  let input = -1;
  while (top.next()) {
    if ((kind === 'chat' || kind === 'any') && top.keyIs('messages')) {
      return s.charCodeAt(top.valueStart) === 91 /* [ */ ? messagesKey(s, top.valueStart, -1, chars, maxChars) : null;
    }
    if ((kind === 'completions' || kind === 'any') && top.keyIs('prompt')) {
      hash.reset();
      return firstChars(s, top.valueStart, chars, TAG_PROMPT) === DONE ? hash.digest().toString(36) : null;
    }
    if (kind === 'responses' || kind === 'any') {
      // `instructions` may come after `input`: both positions are noted, reading on until both are.
      if (top.keyIs('instructions')) instructions = top.valueStart;
      else if (top.keyIs('input')) input = top.valueStart;
      if (instructions >= 0 && input >= 0) break;
    }
  }
  if (input < 0 && instructions < 0) return null;
  return messagesKey(s, input, instructions, chars, maxChars);
}

const line = new Cursor();

/**
 * The prefix key of a batch input line (`{"custom_id":…,"url":…,"body":{…}}`), read from the
 * line's own text: its `body` found without parsing the line. Null as prefixKeyOf.
 */
export function prefixKeyOfLine(lineJson: string, url: string, opts: Omit<PrefixKeyOptions, 'url' | 'at'> = {}): string | null {
  if (!line.open(lineJson, skipWs(lineJson, 0))) return null;
  while (line.next()) {
    if (line.keyIs('body')) return prefixKeyOf(lineJson, { ...opts, url, at: line.valueStart });
  }
  return null;
}

/**
 * The key of a chat `messages` array or a responses `input` (array or string) at `at`, with the
 * responses `instructions` at `instructionsAt` (-1: none) leading as a system message would.
 */
function messagesKey(s: string, at: number, instructionsAt: number, chars: number, maxChars: number): string | null {
  hash.reset();
  let budget = maxChars;
  let system = 0;
  if (instructionsAt >= 0) {
    const end = valueEndWithin(s, instructionsAt, budget);
    if (end === LONGER || (end >= 0 && !isEmpty(s, instructionsAt, end))) {
      hash.addCode(TAG_INSTRUCTIONS);
      budget = feed(s, instructionsAt, end === LONGER ? instructionsAt + budget : end, budget);
      system++;
    }
  }
  if (at >= 0 && s.charCodeAt(at) === 34) {
    // A responses `input` string: the user's text.
    if (system > 0) return hash.digest().toString(36);
    return firstChars(s, at, chars, TAG_FIRST) === DONE ? hash.digest().toString(36) : null;
  }
  if (at >= 0 && list.open(s, at)) {
    while (list.next()) {
      const r = messageKey(s, list.valueStart, system > 0, chars, budget);
      if (r === DONE) return hash.digest().toString(36);
      if (r === NONE) return null;
      if (r === END) break;
      budget = r;
      system++;
    }
  }
  return system > 0 ? hash.digest().toString(36) : null;
}

/** messageKey's answers besides a remaining budget (≥ 0) after a system message. */
const DONE = -1;
const NONE = -2;
const END = -3;

const ROLE_UNKNOWN = 0;
const ROLE_SYSTEM = 1;
const ROLE_OTHER = 2;

/**
 * One message (or responses item) at `at`. A system/developer message's content is fed and the
 * remaining budget returned; DONE: the key is complete (a later message, or the budget is used
 * up), NONE: no key, END: not a message. Reads no more than it needs: with the role first (as
 * every SDK writes it), a user message's content is never read past `chars`.
 */
function messageKey(s: string, at: number, afterSystem: boolean, chars: number, budget: number): number {
  if (!item.open(s, at)) return END;
  let role = ROLE_UNKNOWN;
  let contentStart = -1;
  let contentEnd = -1;
  while (item.next()) {
    if (item.keyIs('role')) {
      const end = item.valueEnd();
      if (end < 0) return NONE;
      item.consumed(end);
      const v = item.valueStart;
      role = rawStringIs(s, v, end, 'system') || rawStringIs(s, v, end, 'developer') ? ROLE_SYSTEM : ROLE_OTHER;
      if (role === ROLE_OTHER && afterSystem) return DONE;
      if (contentStart >= 0) break;
    } else if (item.keyIs('content')) {
      contentStart = item.valueStart;
      if (role === ROLE_OTHER) return firstChars(s, contentStart, chars, TAG_FIRST);
      if (role === ROLE_SYSTEM) {
        if (budget <= 0) return DONE;
        contentEnd = valueEndWithin(s, contentStart, budget);
        if (contentEnd < 0 && contentEnd !== LONGER) return NONE;
        if (contentEnd === LONGER) {
          // Longer than what is left to hash: nothing after it can change the key.
          hash.addCode(TAG_SYSTEM).add(s, contentStart, contentStart + budget);
          return DONE;
        }
        item.consumed(contentEnd);
        continue;
      }
      contentEnd = item.valueEnd();
      if (contentEnd < 0) return NONE;
      item.consumed(contentEnd);
    }
  }
  if (role === ROLE_OTHER || role === ROLE_UNKNOWN) {
    if (afterSystem) return DONE;
    if (contentStart < 0) return NONE;
    return firstChars(s, contentStart, chars, TAG_FIRST);
  }
  if (contentStart < 0 || budget <= 0) return budget;
  if (contentEnd < 0) contentEnd = valueEnd(s, contentStart);
  if (contentEnd < 0) return NONE;
  hash.addCode(TAG_SYSTEM);
  return feed(s, contentStart, contentEnd, budget);
}

/** Feeds the opening `chars` characters of the value at `at` (no system prefix): DONE, or NONE when it is empty. */
function firstChars(s: string, at: number, chars: number, tag: number): number {
  const end = valueEndWithin(s, at, chars);
  if (end === LONGER) {
    hash.addCode(tag).add(s, at, at + chars);
    return DONE;
  }
  if (end < 0 || isEmpty(s, at, end)) return NONE;
  hash.addCode(tag).add(s, at, end);
  return DONE;
}

function feed(s: string, start: number, end: number, budget: number): number {
  const stop = Math.min(end, start + budget);
  hash.add(s, start, stop);
  return budget - (stop - start);
}

/** `""`, `null`, `[]` and `{}` carry no prefix. */
const isEmpty = (s: string, start: number, end: number): boolean => {
  const text = end - start <= 4 ? s.slice(start, end) : '';
  return text === '""' || text === 'null' || text === '[]' || text === '{}';
};
