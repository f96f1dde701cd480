/**
 * AES-GCM and AES-CCM of large SMB3 messages (an encrypted READ's payload, an encrypted WRITE) in a worker
 * thread, over memory shared with it: the connection's MessagePool buffers are SharedArrayBuffers,
 * so the worker works on the payload where it lies and nothing is copied across.
 *
 * Why a thread, measured with smbclient (3.1.1, AES-128-GCM, 256 MiB get and put through the real
 * gateway): node:crypto has no output-buffer API, so encrypting in place in the main thread still
 * allocates one output buffer per slice (crypto.ts, updateInPlace) — external memory the size of
 * the payload per message. After the first few mark-compacts V8 set the old generation's limit
 * barely above its size (growing factor 1.1: the gateway allocates little in its old space) and
 * started incremental marking again right after each collection: 10-20 mark-compacts per 256 MiB,
 * 2-3.5 ms of CPU per MiB against 0.6-0.9 in a fresh process (and 0.6-0.7 with
 * --no-incremental-marking, which is not a protocol's to set). In this thread the garbage is
 * collected in a heap of a few MB, cheaply, and the AES runs beside the main thread.
 *
 * One worker per process, started on first use, kept unreferenced while idle (it never holds a
 * process open). If it cannot start or fails, `available()` turns false and callers use the
 * in-process path (crypto.ts); the jobs it had are answered with an error.
 */
import { Worker } from 'node:worker_threads';
import type { SealAnswer, SealCipher, SealJob } from './seal-thread.ts';

/** Payloads from this size go to the worker: below, a postMessage round trip costs more than it saves. */
export const SEAL_WORKER_MIN = 256 * 1024;

export class SealWorker {
  private worker: Worker | undefined;
  private broken = false;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (a: SealAnswer) => void; reject: (e: Error) => void }>();

  /** Whether `data` can be handed to the worker: shared memory, large enough, and a worker that works. */
  canTake(data: Uint8Array): boolean {
    if (this.broken || data.length < SEAL_WORKER_MIN || !(data.buffer instanceof SharedArrayBuffer)) return false;
    try {
      this.start();
      return true;
    } catch {
      // No worker here (a runtime without worker_threads or type stripping in workers): in-process.
      this.broken = true;
      return false;
    }
  }

  /** Ends the thread as a crash would (tests of the in-process fallback). */
  async killForTest(): Promise<void> {
    this.start();
    await this.worker?.terminate();
  }

  /** Encrypts `head` (returned) and then `data` in place as one message; the tag is returned. */
  async seal(cipher: SealCipher, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, head: Uint8Array, data: Uint8Array): Promise<{ head: Buffer; tag: Buffer }> {
    // postMessage clones a view's whole ArrayBuffer: a response head is a view of Node's 8 KiB
    // buffer pool, so it goes as a copy of its own ~100 bytes.
    const a = await this.run({ op: 'seal', cipher, key, nonce, aad, head: new Uint8Array(head), data });
    if (!a.ok || !a.tag) throw new Error(`seal worker: ${a.error ?? 'failed'}`);
    return { head: toBuffer(a.head), tag: toBuffer(a.tag) };
  }

  /** Decrypts `data` in place; false when the tag does not match (the data is then garbage). */
  async open(cipher: SealCipher, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, tag: Uint8Array, data: Uint8Array): Promise<boolean> {
    const a = await this.run({ op: 'open', cipher, key, nonce, aad, tag, data });
    if (a.error) throw new Error(`seal worker: ${a.error}`);
    return a.ok;
  }

  private run(job: Omit<SealJob, 'id'>): Promise<SealAnswer> {
    const w = this.start();
    const id = this.nextId++;
    return new Promise<SealAnswer>((resolve, reject) => {
      if (this.pending.size === 0) w.ref();
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...job, id } satisfies SealJob);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./seal-thread.ts', import.meta.url));
    w.unref();
    w.on('message', (a: SealAnswer) => {
      const p = this.pending.get(a.id);
      if (!p) return;
      this.pending.delete(a.id);
      if (this.pending.size === 0) w.unref();
      p.resolve(a);
    });
    const fail = (e: Error): void => {
      this.broken = true;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`seal worker exited (${code})`)));
    this.worker = w;
    return w;
  }
}

function toBuffer(u: Uint8Array | undefined): Buffer {
  return u ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : Buffer.alloc(0);
}

/** The process's seal worker. */
export const sealWorker = new SealWorker();
