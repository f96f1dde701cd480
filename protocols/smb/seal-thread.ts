/**
 * The body of the SMB seal worker (seal-worker.ts): AES-GCM over a large message's payload where it
 * lies, in memory shared with the main thread (the connection's SharedArrayBuffer pool), so that
 * node:crypto's per-call output buffers are allocated, and collected, in this thread's small heap
 * instead of the gateway's. Only GCM: its update() returns as many bytes as it is given, so the
 * output can be copied back over the input slice by slice (crypto.ts, updateInPlace).
 */
import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { countForGc } from '../../src/util/gc-hint.ts';

export interface SealJob {
  id: number;
  /** seal: encrypt `head` (copied back in the answer) then `data` in place; open: decrypt `data` in place and check `tag`. */
  op: 'seal' | 'open';
  cipher: CipherGCMTypes;
  key: Uint8Array;
  nonce: Uint8Array;
  aad: Uint8Array;
  head?: Uint8Array;
  tag?: Uint8Array;
  /** A view of a SharedArrayBuffer: overwritten with its ciphertext (seal) or plaintext (open). */
  data: Uint8Array;
}

export interface SealAnswer {
  id: number;
  /** open: the tag matched. seal: always true. */
  ok: boolean;
  head?: Uint8Array;
  tag?: Uint8Array;
  error?: string;
}

/** The slice the cipher gets at once: its output buffer dies at once and the copy back stays in cache. */
const CHUNK = 256 * 1024;

/**
 * Copies `out` into shared memory with a plain memmove. TypedArray#set into a SharedArrayBuffer is
 * V8's relaxed (race-safe, byte-wise) copy, and Node 24's Buffer#copy of a whole source takes that
 * path too: 2-7x a memmove, more CPU than the AES itself in a profile. A copy of part of the
 * source goes through Node's C++ memmove, so the last byte is copied on its own.
 */
function copyInto(out: Buffer, buf: Buffer, at: number): number {
  const n = out.length;
  if (n === 0) return 0;
  out.copy(buf, at, 0, n - 1);
  buf[at + n - 1] = out[n - 1]!;
  return n;
}

function inPlace(c: { update(data: Uint8Array): Buffer }, data: Uint8Array): void {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let written = 0;
  for (let at = 0; at < buf.length; at += CHUNK) {
    written += copyInto(c.update(buf.subarray(at, Math.min(buf.length, at + CHUNK))), buf, written);
  }
  // The output buffers are this thread's only garbage: a young collection every few MiB frees them
  // (with --expose-gc, which the gateway runs with) before V8's external-memory limit asks for
  // mark-compacts (20-25 per 256 MiB here without it).
  countForGc(buf.length);
  if (written !== buf.length) throw new Error(`in-place cipher produced ${written} of ${buf.length} bytes`);
}

export function runJob(j: SealJob): SealAnswer {
  if (j.op === 'seal') {
    const enc = createCipheriv(j.cipher, j.key, j.nonce, { authTagLength: 16 });
    enc.setAAD(j.aad);
    const head = j.head && j.head.length ? enc.update(j.head) : undefined;
    inPlace(enc, j.data);
    enc.final();
    return { id: j.id, ok: true, ...(head ? { head } : {}), tag: enc.getAuthTag() };
  }
  const dec = createDecipheriv(j.cipher, j.key, j.nonce, { authTagLength: 16 });
  dec.setAuthTag(j.tag!);
  dec.setAAD(j.aad);
  inPlace(dec, j.data);
  try {
    dec.final();
    return { id: j.id, ok: true };
  } catch {
    return { id: j.id, ok: false };
  }
}

parentPort?.on('message', (j: SealJob) => {
  let a: SealAnswer;
  try {
    a = runJob(j);
  } catch (e) {
    a = { id: j.id, ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort!.postMessage(a);
});
