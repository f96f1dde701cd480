/**
 * READ data buffers, reused once their reply has left. A READ reply sends its data by reference
 * (xdr.ts), so the buffer lives until the socket has written it; a fresh 1 MiB buffer per READ made
 * V8 run a full mark-compact every ~20 MiB read (external memory pressure), which was the largest
 * cost of a large read (bench:nfs profile: GC a third of the busy time). Buffers of `POOL_MIN`
 * bytes or more come from slabs of `SLAB` bytes; the RPC server hands every reply's chunks back
 * once written (`releaseSent`), and a slab seen there goes back to the free list (at most `KEEP`).
 * A buffer whose reply is kept for a replay (the 4.1 slot cache) must not be taken from here: it
 * would be resent after reuse.
 */
const SLAB = 1024 * 1024;
/** The largest pooled READ buffer (a READ asking more gets a buffer of its own). */
export const READ_SLAB = SLAB;
const POOL_MIN = 64 * 1024;
const KEEP = 32;

const free: ArrayBuffer[] = [];
/** Slabs lent out, by their ArrayBuffer (a reply's chunk is a view of it). */
const lent = new WeakSet<ArrayBufferLike>();

/** A buffer of `n` bytes for READ data: a view of a pooled slab when `n` is between POOL_MIN and SLAB. */
export function takeReadBuffer(n: number): Buffer {
  if (n < POOL_MIN || n > SLAB) return Buffer.allocUnsafe(n);
  const ab = free.pop() ?? new ArrayBuffer(SLAB);
  lent.add(ab);
  return Buffer.from(ab, 0, n);
}

/** A reply's chunks once the socket wrote them (or failed to): pooled slabs among them are free again. */
export function releaseSent(chunks: readonly Buffer[]): void {
  for (const c of chunks) {
    if (c.length < POOL_MIN) continue;
    const ab = c.buffer;
    if (!lent.has(ab)) continue;
    lent.delete(ab);
    if (free.length < KEEP) free.push(ab as ArrayBuffer);
  }
}

/** Slabs on the free list (tests). */
export function pooledSlabs(): number {
  return free.length;
}
