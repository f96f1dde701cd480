/**
 * Buffers for records reassembled from several socket reads, reused once their call is done. A
 * 1 MiB WRITE arrives in ~16 socket reads and was concatenated into a fresh 1 MiB buffer, the GC
 * cost the READ side had (read-buffers.ts): external memory pressure made V8 collect every few
 * dozen MiB written. Records of `POOL_MIN` to `SLAB` bytes are now copied (the one copy they had
 * anyway) into a view of a pooled slab, and the slab goes back to the free list when the program
 * says the call no longer refers to its record (`giveBackRecord`, called once the reply is
 * written): decoded values are views of the record, so only a call whose operations keep none of
 * them past the call, and whose reply is not kept for a replay (the tag is echoed by reference
 * when long), may give it back (nfs4-program.ts decides). A record never given back is collected
 * as before.
 */
/** The default record bound (record-marking.ts's DEFAULT_MAX_RECORD_BYTES): a 1 MiB WRITE and its headers. */
const SLAB = 1024 * 1024 + 64 * 1024;
const POOL_MIN = 64 * 1024;
const KEEP = 16;

const free: ArrayBuffer[] = [];
/** Slabs lent out, by their ArrayBuffer (a record is a view of it). */
const lent = new WeakSet<ArrayBufferLike>();

/** A buffer for a reassembled record of `n` bytes: a pooled slab's view when it fits, else undefined. */
export function takeRecordBuffer(n: number): Buffer | undefined {
  if (n < POOL_MIN || n > SLAB) return undefined;
  const ab = free.pop() ?? new ArrayBuffer(SLAB);
  lent.add(ab);
  return Buffer.from(ab, 0, n);
}

/** The record (or any view of it) of a finished call: its slab, if pooled, may be reused. */
export function giveBackRecord(view: Buffer): void {
  const ab = view.buffer;
  if (!lent.has(ab)) return;
  lent.delete(ab);
  if (free.length < KEEP) free.push(ab as ArrayBuffer);
}

/** Slabs on the free list (tests). */
export function pooledRecordSlabs(): number {
  return free.length;
}
