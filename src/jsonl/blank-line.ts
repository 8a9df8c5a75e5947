/** JSON whitespace: space, tab, CR, LF. */
const isJsonSpace = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a;

/** Whether `buf[start, end)` is empty or only JSON whitespace. Stops at the first other byte. */
export function isBlankBytes(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isJsonSpace(buf[i]!)) return false;
  return true;
}

/** Whether a decoded line is empty or only JSON whitespace (space, tab, CR). */
export function isBlankLine(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return false;
  }
  return true;
}
