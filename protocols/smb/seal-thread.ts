/**
 * The body of the SMB seal worker (seal-worker.ts): AES-GCM or AES-CCM over a large message's
 * payload where it lies, in memory shared with the main thread (the connection's SharedArrayBuffer
 * pool), so that node:crypto's output buffers are allocated, and collected, in this thread's small
 * heap instead of the gateway's. GCM's update() returns as many bytes as it is given, so it runs
 * slice by slice, each slice's output copied back over it; CCM takes its whole input in one call
 * (a message-sized output buffer, copied back once). With the SMB native helper (native.ts) GCM
 * runs in place in one call instead: no output buffers, no copy back, no garbage.
 */
import { createCipheriv, createDecipheriv, type CipherCCMTypes, type CipherGCMTypes } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { smbNative, type SmbNative } from './native.ts';

export type SealCipher = CipherGCMTypes | CipherCCMTypes;

export interface SealJob {
  id: number;
  /** seal: encrypt `head` (returned encrypted) then `data` in place; open: decrypt `data` in place and check `tag`. */
  op: 'seal' | 'open';
  cipher: SealCipher;
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
  /** open: the tag matched (`data` is then the plaintext). seal: true unless `error`. */
  ok: boolean;
  head?: Uint8Array;
  tag?: Uint8Array;
  error?: string;
}

/** The slice GCM gets at once: its output buffer dies at once and the copy back stays in cache. */
const CHUNK = 256 * 1024;

const isCcm = (c: SealCipher): c is CipherCCMTypes => c.endsWith('-ccm');

/**
 * Copies `src` to `dst` at `at` with a plain memmove. TypedArray#set into (or out of) a
 * SharedArrayBuffer is V8's relaxed (race-safe, byte-wise) copy, and Node 24's Buffer#copy of a
 * whole source takes that path too: 2-7x a memmove, more CPU than the AES itself in a profile. A
 * copy of part of the source goes through Node's C++ memmove, so the last byte is copied on its own.
 */
function copyInto(src: Buffer, dst: Buffer, at: number): number {
  const n = src.length;
  if (n === 0) return 0;
  src.copy(dst, at, 0, n - 1);
  dst[at + n - 1] = src[n - 1]!;
  return n;
}

/**
 * The cipher's output buffers are this thread's only garbage. A young collection every 2 MiB of it
 * (with --expose-gc, which the gateway runs with and its workers share) frees them while malloc
 * still holds their memory: with a collection every 16 MiB (gc-hint.ts's rule) malloc gave the
 * freed memory back to the system and every new output buffer was page-faulted in and zeroed
 * again (page faults and the copy into fresh pages, ~15% of the worker's samples); without any,
 * V8's external-memory limit asked for 20-25 mark-compacts per 256 MiB.
 */
const GC_EVERY = 2 * 1024 * 1024;
const minorGc = (globalThis as { gc?: (o: { type: 'minor' }) => void }).gc;
let garbage = 0;
function collected(n: number): void {
  garbage += n;
  if (garbage < GC_EVERY || minorGc === undefined) return;
  garbage = 0;
  minorGc({ type: 'minor' });
}

function gcmInPlace(c: { update(data: Uint8Array): Buffer }, buf: Buffer): void {
  let written = 0;
  for (let at = 0; at < buf.length; at += CHUNK) {
    const n = copyInto(c.update(buf.subarray(at, Math.min(buf.length, at + CHUNK))), buf, written);
    written += n;
    collected(n);
  }
  if (written !== buf.length) throw new Error(`in-place cipher produced ${written} of ${buf.length} bytes`);
}

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
/** A copy in an ArrayBuffer of its own: postMessage clones a view's whole ArrayBuffer (for a CCM head, the message-sized output). */
const exact = (u: Uint8Array): Uint8Array => new Uint8Array(u);

/**
 * GCM through the native helper: OpenSSL encrypts or decrypts the payload where it lies (in == out),
 * where node:crypto's update() hands back a new buffer per slice that is copied over the payload and
 * collected later. In the gateway's sealed put the worker's CPU was 0.9-1.8 ms per MiB against
 * ~0.4 for the decryption alone.
 */
const native = smbNative();
const buf = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : asBuffer(u));

/** One job; `helper` is the native helper when loaded (the tests pass undefined for node:crypto's path). */
export function runJob(j: SealJob, helper: SmbNative | undefined = native): SealAnswer {
  const data = asBuffer(j.data);
  const head = j.head && j.head.length ? asBuffer(j.head) : Buffer.alloc(0);
  if (helper && !isCcm(j.cipher) && j.key.length === (j.cipher === 'aes-256-gcm' ? 32 : 16)) {
    // A context per job: the job's key is a copy made for the message (postMessage), and one key
    // schedule beside 256 KiB-8 MiB of AES is nothing.
    const gcm = new helper.Gcm(buf(j.key));
    const nonce = buf(j.nonce);
    const aad = buf(j.aad);
    if (j.op === 'seal') {
      const headOut = Buffer.alloc(head.length);
      const tag = Buffer.alloc(16);
      gcm.seal(nonce, aad, head, headOut, data, tag);
      return { id: j.id, ok: true, head: headOut, tag };
    }
    return { id: j.id, ok: gcm.open(nonce, aad, data, buf(j.tag!)) };
  }
  if (j.op === 'seal') {
    if (isCcm(j.cipher)) {
      const enc = createCipheriv(j.cipher, j.key, j.nonce, { authTagLength: 16 });
      enc.setAAD(j.aad, { plaintextLength: head.length + data.length });
      const plain = Buffer.allocUnsafe(head.length + data.length);
      head.copy(plain);
      copyInto(data, plain, head.length);
      const out = enc.update(plain);
      enc.final();
      copyInto(out.subarray(head.length), data, 0);
      collected(plain.length + out.length);
      return { id: j.id, ok: true, head: exact(out.subarray(0, head.length)), tag: exact(enc.getAuthTag()) };
    }
    const enc = createCipheriv(j.cipher, j.key, j.nonce, { authTagLength: 16 });
    enc.setAAD(j.aad);
    const headOut = head.length ? enc.update(head) : head;
    gcmInPlace(enc, data);
    enc.final();
    return { id: j.id, ok: true, head: exact(headOut), tag: exact(enc.getAuthTag()) };
  }
  if (isCcm(j.cipher)) {
    const dec = createDecipheriv(j.cipher, j.key, j.nonce, { authTagLength: 16 });
    dec.setAuthTag(j.tag!);
    dec.setAAD(j.aad, { plaintextLength: data.length });
    try {
      const out = dec.update(data);
      collected(out.length);
      dec.final();
      copyInto(out, data, 0);
      return { id: j.id, ok: true };
    } catch {
      return { id: j.id, ok: false };
    }
  }
  const dec = createDecipheriv(j.cipher, j.key, j.nonce, { authTagLength: 16 });
  dec.setAuthTag(j.tag!);
  dec.setAAD(j.aad);
  gcmInPlace(dec, data);
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
