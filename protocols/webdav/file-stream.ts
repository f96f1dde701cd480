/**
 * Sending file bytes to an HTTP response without allocating per chunk.
 *
 * Why: a GET that reads into a fresh 256 KiB Buffer per chunk spends about half of its CPU in the
 * garbage collector at a few hundred MB/s, and the dead buffers (external memory, reclaimed only
 * when V8 gets round to it) pushed the process past 350 MB RSS during one large download. Here
 * chunks are read with `Session.readInto` into buffers from a small process-wide pool, and a buffer
 * goes back to the pool only after the socket has taken its bytes (the write callback), so a buffer
 * is never overwritten while the kernel may still copy from it.
 *
 * Pipelining: two buffers per transfer, so the next read (a thread-pool round trip) runs while the
 * previous chunk is being written. Backpressure comes from the same rule: a buffer is reused only
 * once its write completed, so at most two chunks are in flight per response.
 */
import type { ServerResponse } from 'node:http';
import { HttpError } from './errors.ts';

/** Read size of large transfers. */
export const CHUNK = 1024 * 1024;
/** Ranges up to this size are read in one exact read into a buffer of their own. */
const SMALL = 64 * 1024;
/** Idle CHUNK buffers kept for reuse: enough for a few parallel large GETs (8 MiB at most). */
const MAX_IDLE = 8;
const idle: Buffer[] = [];

function takeBuffer(): Buffer {
  return idle.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
}

/** Returns a buffer no write or read refers to any more. */
function giveBuffer(buf: Buffer): void {
  if (idle.length < MAX_IDLE) idle.push(buf);
}

/**
 * Writes `chunk` and resolves once the socket took it (the chunk may then be reused). Rejects with
 * 499 when the client went away; the chunk must then NOT be reused (a cancelled write may still
 * refer to it until libuv finishes closing the socket).
 */
export function writeAndWait(res: ServerResponse, chunk: Uint8Array, end = false): Promise<void> {
  if (res.destroyed) return Promise.reject(new HttpError(499, 'client went away'));
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const onClose = (): void => {
      if (settled) return;
      settled = true;
      reject(new HttpError(499, 'client went away'));
    };
    const done = (err?: Error | null): void => {
      res.off('close', onClose);
      if (settled) return;
      settled = true;
      if (err) reject(new HttpError(499, 'client went away'));
      else resolve();
    };
    res.once('close', onClose);
    if (end) res.end(chunk, () => done());
    else res.write(chunk, done);
  });
}

/**
 * Reads an open file into `target` from `offset`; the bytes read (fewer at end of file). A bound
 * `Session.readInto`, or the reader `Session.readFile` hands out.
 */
export type FileReader = (offset: number, target: Uint8Array) => Promise<number>;

/**
 * Streams bytes [start, end] (inclusive) of an open file, ending the response when `endResponse`.
 * Throws 500 when the file shrank (the promised Content-Length can no longer be met; the caller
 * cuts the connection). `whole`: the file was read whole (Session ReadableFile.whole): the last
 * write of a small answer sends its bytes as they are, without a read into a buffer of its own.
 */
export async function streamRange(res: ServerResponse, read: FileReader, start: number, end: number, endResponse: boolean, whole?: (start: number, end: number) => Buffer): Promise<void> {
  const total = end - start + 1;
  if (whole !== undefined && endResponse && total <= SMALL) {
    const buf = whole(start, end);
    if (buf.length < total) throw new HttpError(500, 'file changed while being sent');
    if (res.destroyed) throw new HttpError(499, 'client went away');
    res.end(buf);
    return;
  }
  if (total <= SMALL) {
    // One exact read (a read of more than the file would cost a second one to see the end).
    const buf = Buffer.allocUnsafe(total);
    const n = await readFull(read, start, buf);
    if (n < total) throw new HttpError(500, 'file changed while being sent');
    if (!endResponse) return writeAndWait(res, buf);
    // The last write of the answer, from a buffer of its own: nothing to wait for (no reuse, no
    // backpressure), so no promise, listener and callback per small GET.
    if (res.destroyed) throw new HttpError(499, 'client went away');
    res.end(buf);
    return;
  }
  const bufs: Array<Buffer | undefined> = [takeBuffer(), undefined];
  const writes: Array<Promise<void> | undefined> = [undefined, undefined];
  let failed = false;
  try {
    let off = start;
    let cur = 0;
    let reading = read(off, bufs[0]!.subarray(0, Math.min(CHUNK, total)));
    for (;;) {
      const n = await reading;
      // The file shrank under us: the promised length can no longer be met.
      if (n === 0) throw new HttpError(500, 'file changed while being sent');
      off += n;
      const last = off > end;
      if (!last) {
        // Start the next read into the other buffer once that buffer's previous write completed.
        const other = cur ^ 1;
        await writes[other];
        const buf = (bufs[other] ??= takeBuffer());
        reading = read(off, buf.subarray(0, Math.min(CHUNK, end - off + 1)));
        // A rejected read is awaited at the top of the loop; keep it from counting as unhandled meanwhile.
        reading.catch(() => undefined);
      }
      writes[cur] = writeAndWait(res, bufs[cur]!.subarray(0, n), last && endResponse);
      writes[cur]!.catch(() => undefined);
      if (last) break;
      cur ^= 1;
    }
    await writes[0];
    await writes[1];
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // Buffers whose write or read may still be pending (client gone, a read failed) are left to the GC.
    if (!failed) for (const b of bufs) if (b) giveBuffer(b);
  }
}

/** readInto until `buf` is full or end of file; returns the bytes read. */
async function readFull(read: FileReader, offset: number, buf: Buffer): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const got = await read(offset + n, n === 0 ? buf : buf.subarray(n));
    if (got === 0) break;
    n += got;
  }
  return n;
}
