/**
 * lstat of many names in one round trip to a worker thread: the local backend's directory listing
 * when its inline calls are off (the breaker in inline-io.ts has tripped, or `inlineIo: false`).
 * Used where the native helper's statNames is not loaded (with it, LocalBackend.statNamesNative
 * stats a page through it; decodeStatPage below reads its answer).
 *
 * Why: a listing stats every name of its page. Through libuv's thread pool each lstat is a round
 * trip of its own (a queue lock, a worker wake-up, an eventfd write, an event-loop wake-up, a
 * promise): measured ~15-20 µs of process CPU per name on the shared 2-core machine at load 15
 * (`bench/readdir-cpu.ts` KINDS=expired; NFS READDIR of 10,000 entries after the attribute cache's
 * second), against ~2-3 µs for the lstat itself. Here one message carries a page's names to a
 * worker thread, which lstats them one after another (synchronously, off the event loop: a device
 * stall waits there, as in the thread pool) and answers with the numbers in one transferred
 * BigInt64Array — no object per name on the way back. One worker per process, started at first use
 * and unref'd; batches queue behind each other (a page waits for the one before; the thread pool
 * ran 4 at a time). If the worker cannot start or dies, the caller falls back to the thread pool.
 *
 * The names are joined to `base` exactly as the thread-pool path did (`base` is the listing's
 * verified /proc/self/fd path, valid in every thread of the process while the caller holds the
 * descriptor), and the result is what toStat makes of the same lstat.
 */
import { Worker } from 'node:worker_threads';
import type { BackendStat } from '../../src/vfs/backend.ts';

/** Numbers per name: size, mtime, ctime, atime, birthtime (ns), mode, uid, gid, nlink, dev, ino. */
const FIELDS = 11;

/** CommonJS (an eval'd worker); kept to what toStat reads. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { lstatSync, readlinkSync } = require('node:fs');
const F = ${FIELDS};
parentPort.on('message', (m) => {
  const n = m.names.length;
  const nums = new BigInt64Array(n * F);
  // 0: gone since the readdir, 1: file (or anything else), 2: directory, 3: symlink
  const kinds = new Uint8Array(n);
  const targets = [];
  let error;
  for (let i = 0; i < n; i++) {
    const p = m.base + '/' + m.names[i];
    let st;
    try {
      st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
    } catch (e) {
      error = { code: e && e.code, message: String(e && e.message) };
      break;
    }
    if (st === undefined) continue;
    const o = i * F;
    nums[o] = st.size; nums[o + 1] = st.mtimeNs; nums[o + 2] = st.ctimeNs; nums[o + 3] = st.atimeNs; nums[o + 4] = st.birthtimeNs;
    nums[o + 5] = st.mode; nums[o + 6] = st.uid; nums[o + 7] = st.gid; nums[o + 8] = st.nlink;
    nums[o + 9] = BigInt.asIntN(64, st.dev); nums[o + 10] = BigInt.asIntN(64, st.ino);
    if (st.isDirectory()) kinds[i] = 2;
    else if (st.isSymbolicLink()) {
      kinds[i] = 3;
      try { targets.push(i, readlinkSync(p)); } catch {}
    } else kinds[i] = 1;
  }
  parentPort.postMessage({ id: m.id, nums, kinds, targets, error }, [nums.buffer, kinds.buffer]);
});
`;

interface Reply {
  id: number;
  nums: BigInt64Array;
  kinds: Uint8Array;
  targets: Array<number | string>;
  error?: { code?: string; message: string };
}

type Pending = { names: readonly string[]; resolve: (v: Array<BackendStat | undefined>) => void; reject: (e: unknown) => void };

let worker: Worker | undefined;
/** Set when a worker could not be started or died: the thread pool is used from then on. */
let broken = false;
let nextId = 1;
const pending = new Map<number, Pending>();

function fail(e: unknown): void {
  broken = true;
  worker = undefined;
  for (const p of pending.values()) p.reject(e);
  pending.clear();
}

function theWorker(): Worker | undefined {
  if (worker !== undefined || broken) return worker;
  try {
    const w = new Worker(WORKER_SOURCE, { eval: true, name: 'portico-lstat' });
    w.unref();
    w.on('message', (r: Reply) => {
      const p = pending.get(r.id);
      if (p === undefined) return;
      pending.delete(r.id);
      if (r.error !== undefined) {
        const e = new Error(r.error.message) as Error & { code?: string };
        if (r.error.code !== undefined) e.code = r.error.code;
        p.reject(e);
      } else p.resolve(decode(p.names, r));
      if (pending.size === 0) w.unref();
    });
    w.on('error', fail);
    w.on('exit', (code) => {
      if (worker === w) fail(new Error(`lstat worker exited (${code})`));
    });
    worker = w;
  } catch {
    broken = true;
  }
  return worker;
}

function decode(names: readonly string[], r: Reply): Array<BackendStat | undefined> {
  const out = new Array<BackendStat | undefined>(names.length);
  const targets = new Map<number, string>();
  for (let k = 0; k + 1 < r.targets.length; k += 2) targets.set(r.targets[k] as number, r.targets[k + 1] as string);
  const n = r.nums;
  for (let i = 0; i < names.length; i++) {
    const kind = r.kinds[i];
    if (kind === 0) continue;
    const o = i * FIELDS;
    const birth = n[o + 4]!;
    const dev = BigInt.asUintN(64, n[o + 9]!);
    const ino = BigInt.asUintN(64, n[o + 10]!);
    const st: BackendStat = {
      name: names[i]!,
      type: kind === 2 ? 'dir' : kind === 3 ? 'symlink' : 'file',
      size: Number(n[o]!),
      mtimeNs: n[o + 1]!,
      ctimeNs: n[o + 2]!,
      atimeNs: n[o + 3]!,
      mode: Number(n[o + 5]! & 0o7777n),
      uid: Number(n[o + 6]!),
      gid: Number(n[o + 7]!),
      nlink: Number(n[o + 8]!),
      nativeId: birth !== 0n ? `${dev}:${ino}:${birth}` : `${dev}:${ino}`,
    };
    if (birth !== 0n) st.birthtimeNs = birth;
    const t = targets.get(i);
    if (t !== undefined) st.target = t;
    out[i] = st;
  }
  return out;
}

/**
 * lstat of `base/<name>` for each name, in a worker thread: undefined for a name gone since the
 * readdir; rejects with the first other error (its `code` kept, as fs errors have). Undefined when
 * no worker can be used (the caller stats through the thread pool).
 */
export function lstatBatch(base: string, names: readonly string[]): Promise<Array<BackendStat | undefined>> | undefined {
  const w = theWorker();
  if (w === undefined) return undefined;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { names, resolve, reject });
    w.ref();
    w.postMessage({ id, base, names });
  });
}

/** int64 per name in the native helper's statNames buffer (local_addon.cc STAT_FIELDS). */
export const NATIVE_FIELDS = 12;
/** The Uint32 halves of an int64 are (low, high) only on a little-endian machine. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TWO_32 = 4294967296;
/** Below this high half a 64-bit value is a safe integer: its Number prints as its BigInt does. */
const SAFE_HIGH = 0x200000;

/**
 * BackendStats from the native helper's statNames page (names[i] for entry i; undefined for a name
 * gone since the readdir): field for field what toStat makes of Node's lstat(bigint) of the same
 * file. Only the four times are read as BigInts (BackendStat keeps them so); the other figures are
 * read as their two Uint32 halves, so an entry costs no BigInt for its size, mode, owner, link
 * count or identity (dev and ino are printed from Numbers while they are safe integers, which
 * print the same). Undefined on a big-endian machine (the caller stats through Node there).
 */
export function decodeStatPage(names: readonly string[], nums: ArrayBuffer, targets: Array<number | string>): Array<BackendStat | undefined> | undefined {
  if (!LITTLE_ENDIAN) return undefined;
  const big = new BigInt64Array(nums);
  const u = new Uint32Array(nums);
  const out = new Array<BackendStat | undefined>(names.length);
  let t = 0;
  for (let i = 0; i < names.length; i++) {
    const o = i * NATIVE_FIELDS;
    const kind = u[2 * o]!;
    if (kind === 0) continue;
    const birth = big[o + 5]!;
    const dh = u[2 * (o + 10) + 1]!;
    const ih = u[2 * (o + 11) + 1]!;
    const dev = dh < SAFE_HIGH ? String(dh * TWO_32 + u[2 * (o + 10)]!) : String(BigInt.asUintN(64, big[o + 10]!));
    const ino = ih < SAFE_HIGH ? String(ih * TWO_32 + u[2 * (o + 11)]!) : String(BigInt.asUintN(64, big[o + 11]!));
    const st: BackendStat = {
      name: names[i]!,
      type: kind === 2 ? 'dir' : kind === 3 ? 'symlink' : 'file',
      size: u[2 * (o + 1) + 1]! * TWO_32 + u[2 * (o + 1)]!,
      mtimeNs: big[o + 2]!,
      ctimeNs: big[o + 3]!,
      atimeNs: big[o + 4]!,
      mode: u[2 * (o + 6)]! & 0o7777,
      uid: u[2 * (o + 7)]!,
      gid: u[2 * (o + 8)]!,
      nlink: u[2 * (o + 9)]!,
      nativeId: birth !== 0n ? `${dev}:${ino}:${birth}` : `${dev}:${ino}`,
    };
    if (birth !== 0n) st.birthtimeNs = birth;
    if (t < targets.length && targets[t] === i) {
      st.target = targets[t + 1] as string;
      t += 2;
    }
    out[i] = st;
  }
  return out;
}
