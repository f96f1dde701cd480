/**
 * The one routine that moves a file's bytes through Portico when no server-side copy applies (a
 * copy into another share or backend, a rename by copy, a journaled tree move), and the one chunk
 * size every such loop uses (write stages and write-back publishes read their stages by it too).
 */
import type { Backend, BackendStat, FileOwner, SetMetadata } from './backend.ts';

/** Bytes per read when file data passes through Portico: large enough for S3 ranged GETs, small enough for memory. */
export const COPY_CHUNK = 4 * 1024 * 1024;

export interface StreamOptions {
  sizeHint?: number;
  mode?: number;
  owner?: FileOwner;
  /** Applied with the content at commit (a tree move keeps times and owner). */
  meta?: SetMetadata;
}

/** Streams `src` on `from` into `dst` on `to` through the target's atomic writer. */
export async function streamFile(from: Backend, src: string, to: Backend, dst: string, o: StreamOptions = {}): Promise<BackendStat> {
  const w = await to.createWriter(dst, {
    ...(o.sizeHint !== undefined ? { sizeHint: o.sizeHint } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
    ...(o.owner !== undefined ? { owner: o.owner } : {}),
  });
  try {
    for (let off = 0; ; ) {
      const buf = await from.read(src, off, COPY_CHUNK);
      if (buf.length > 0) await w.write(buf);
      off += buf.length;
      // A short read is the end: no extra read of zero bytes.
      if (buf.length < COPY_CHUNK) break;
    }
    return await w.commit(o.meta);
  } catch (e) {
    await w.abort().catch(() => undefined);
    throw e;
  }
}
