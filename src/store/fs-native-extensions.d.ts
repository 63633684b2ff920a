// The package ships no typings; this is the one call data-dir-lock.ts makes (see its README).
declare module 'fs-native-extensions' {
  /** Takes an exclusive (or, with shared, a shared) lock on the whole file without waiting; false if another holds it. */
  export function tryLock(fd: number, options?: { shared?: boolean }): boolean;
}
