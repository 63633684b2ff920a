/**
 * The key order of every object in a JSON text, as written (JSON.parse cannot tell: it moves
 * integer-like keys first). Depth-first, an object's list before its children's. Assumes the
 * text is valid JSON (check with JSON.parse first).
 */
export function objectKeyLists(text: string): string[][] {
  const lists: string[][] = [];
  let i = 0;
  const skipSpace = () => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const readString = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const readValue = (): void => {
    skipSpace();
    const c = text[i];
    if (c === '{') {
      const keys: string[] = [];
      lists.push(keys);
      i++;
      skipSpace();
      while (text[i] !== '}') {
        skipSpace();
        keys.push(readString());
        skipSpace();
        i++; // ':'
        readValue();
        skipSpace();
        if (text[i] === ',') i++;
        skipSpace();
      }
      i++;
    } else if (c === '[') {
      i++;
      skipSpace();
      while (text[i] !== ']') {
        readValue();
        skipSpace();
        if (text[i] === ',') i++;
        skipSpace();
      }
      i++;
    } else if (c === '"') {
      readString();
    } else {
      while (i < text.length && !/[,\]}\s]/.test(text.charAt(i))) i++;
    }
  };
  readValue();
  return lists;
}

/** The key order Go's encoding/json (and so Jetstream) writes a map in: by UTF-8 bytes. */
export function goSorted(keys: string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}
