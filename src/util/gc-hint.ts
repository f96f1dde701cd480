/**
 * A young-generation GC every GC_HINT_BYTES of large transient buffers (socket input, read
 * payloads), when the process runs with --expose-gc (bin/portico.js gives `serve` that flag).
 * Socket chunks (64 KiB) and I/O payloads live outside the JS heap and die young; V8 sees them only
 * through its external-memory limit and answers with full mark-compact collections (half of a
 * 1 GiB WebDAV PUT's CPU, the same for SMB WRITEs). A minor GC (well under a millisecond: almost
 * nothing young is alive) frees them at once. Without the flag (tests, embedding) nothing happens.
 * The same rule as protocols/webdav/methods/put.ts, for callers outside WebDAV.
 */
export const GC_HINT_BYTES = 16 * 1024 * 1024;
const minorGc = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc;
let bytesSinceGc = 0;

/** Counts `n` bytes of short-lived buffers; past GC_HINT_BYTES, asks for a minor GC. */
export function countForGc(n: number): void {
  if (minorGc === undefined) return;
  bytesSinceGc += n;
  if (bytesSinceGc < GC_HINT_BYTES) return;
  bytesSinceGc = 0;
  minorGc({ type: 'minor' });
}
