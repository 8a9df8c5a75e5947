/**
 * The API key of the page: kept in memory and in localStorage under one name. It only ever
 * travels in the Authorization header: never in a URL, the page's text or a log line.
 */

export const KEY_STORAGE = 'besh.apiKey';
let apiKey: string | null = readStoredKey();

function readStoredKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled: the key lives in memory for this page only
  }
}

export const hasKey = (): boolean => apiKey !== null;

/** Uses a key for the next calls; `remember` also keeps it in this browser. */
export function useKey(key: string, remember: boolean): void {
  apiKey = key;
  if (!remember) return;
  try {
    localStorage.setItem(KEY_STORAGE, key);
  } catch {
    /* storage disabled */
  }
}

/** Drops the key from memory and from this browser. */
export function forgetKey(): void {
  apiKey = null;
  try {
    localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled */
  }
}

/** Another tab of this browser used or forgot a key: take it over. True when the key changed. */
export function syncStoredKey(): boolean {
  const stored = readStoredKey();
  if (stored === apiKey) return false;
  apiKey = stored;
  return true;
}

/** A key a header can carry (printable ASCII, no spaces). */
export const wellFormedKey = (key: string): boolean => /^[\x21-\x7e]{1,512}$/.test(key);

/** The Authorization header for the key in use (none without a key). */
export function authHeaders(): Record<string, string> {
  return apiKey === null ? {} : { authorization: `Bearer ${apiKey}` };
}
