/**
 * S3 benchmark: Portico's S3 backend (through the VFS and session gate where a client would use it)
 * against the raw AWS SDK doing the same work, on the same s3rver, in the same run.
 *
 * - upload: backend writer and the VFS (write stage + publish) vs lib-storage Upload
 * - sequential read of a large object: VFS reads of 1 MiB vs one plain GetObject stream, both
 *   with read() (a buffer per call: a view of the cached block) and with readInto() (into one
 *   reused buffer, as the WebDAV GET path reads: block buffers are then recycled)
 * - time to the first byte of 4 KiB reads at random offsets vs one ranged GetObject each
 * - cached re-read speed-up (memory tier; disk tier across a backend restart, read() and readInto())
 * - listing a directory of many keys vs a raw ListObjectsV2 loop
 * - peak RSS of a process doing a big upload, and of one doing a big download (read(), then
 *   readInto()), with what the memory was at the peak (V8 heap, ArrayBuffers)
 * - read-after-write through the VFS (the WebDAV PUT and GET paths without HTTP): sync and async
 *   shares with the disk tier against a sync share without it
 * - S3 requests per operation for a small-file workload
 *
 * s3rver runs in a child process (its own event loop). It is slow — it stores every object and part
 * as files, concatenates parts on completion, walks and sorts its directory tree for every listing
 * page — so for most figures it, not the client, is the bottleneck; both sides pay that alike.
 * On a small machine the client and s3rver also compete for the same cores, which penalises the
 * side that spends more CPU per byte (client CPU is printed for the streaming reads). Sides
 * alternate and the best of the rounds counts. Figures are printed, never judged: a ratio below its
 * aim does not fail the run.
 *
 * Env: BENCH_QUICK=1 (small sizes), BENCH_S3_SIZE_MB (default 1024), BENCH_S3_BIG_MB (RSS phase,
 * default 5120), BENCH_S3_LIST_N (default 100000), BENCH_S3_SMALL_N (default 200), BENCH_S3_ONLY
 * (comma list of phases: rss,upload,read,random,cache,raw,list,small; read/random/cache upload first),
 * BENCH_S3_OPTS (JSON of extra S3 backend options, for tuning experiments).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3Backend } from '../backends/s3/s3-backend.ts';
import type { S3BackendOptions } from '../backends/s3/config.ts';
import { MetadataStore } from '../src/store/metadata-store.ts';
import { Vfs } from '../src/vfs/vfs.ts';
import { buildVolumeStack } from '../src/vfs/volume-stack.ts';
import { SessionManager } from '../src/session/session-manager.ts';
import type { Session } from '../src/session/session.ts';
import { refuseAllLogins } from '../src/auth/authenticator.ts';
import { benchUser, median, renderTable, type Row } from './lib.ts';

const SELF = fileURLToPath(import.meta.url);
const QUICK = process.env.BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZE_MB = Number(process.env.BENCH_S3_SIZE_MB ?? (QUICK ? 128 : 1024));
const BIG_MB = Number(process.env.BENCH_S3_BIG_MB ?? (QUICK ? 512 : 5120));
const LIST_N = Number(process.env.BENCH_S3_LIST_N ?? (QUICK ? 10_000 : 100_000));
const SMALL_N = Number(process.env.BENCH_S3_SMALL_N ?? (QUICK ? 50 : 200));
const RANDOM_READS = QUICK ? 40 : 100;
const ROUNDS = QUICK ? 2 : 3;
const CHUNK = MiB;
const CREDS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const OPTS = JSON.parse(process.env.BENCH_S3_OPTS ?? '{}') as Partial<S3BackendOptions>;
const ONLY = process.env.BENCH_S3_ONLY?.split(',').map((p) => p.trim());
const wanted = (name: string): boolean => ONLY === undefined || ONLY.includes(name);
const RO = { read: true, write: false, delete: false };
const RW = { read: true, write: true, delete: false };

// ------------------------------------------------------------------ plumbing

interface ServerInfo {
  endpoint: string;
  dir: string;
  bucket: string;
}

async function startServer(): Promise<ServerInfo & { child: ChildProcess }> {
  const child = fork(SELF, ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const info = await new Promise<ServerInfo>((resolve, reject) => {
    child.once('message', (m) => resolve(m as ServerInfo));
    child.once('exit', (code) => reject(new Error(`s3rver child exited (${code})`)));
  });
  return { ...info, child };
}

interface Stack {
  session: Session;
  vfs: Vfs;
  close(): Promise<void>;
}

/** Session -> VFS -> the S3 backend as share "s", as the gateway wires a share. */
function stack(base: string, backend: S3Backend, writeBack: 'sync' | 'async' = 'sync'): Stack {
  const stateDir = mkdtempSync(join(base, 'state-'));
  const store = MetadataStore.open(stateDir);
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback') });
  vfs.addVolume('s', buildVolumeStack(backend), { caseSensitive: true, writeBack: { mode: writeBack } });
  const sessions = new SessionManager({ vfs, shares: [{ name: 's', caseSensitive: true }], authenticator: refuseAllLogins });
  return {
    vfs,
    session: sessions.openSession({ principal: benchUser, protocol: 'bench', clientAddress: '127.0.0.1' }),
    close: async () => {
      await sessions.closeAll();
      await vfs.shutdown();
      store.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** 1 MiB chunks whose first 8 bytes carry the chunk number (so no two chunks are equal). */
function chunkOf(base: Buffer, i: number): Buffer {
  base.writeBigUInt64LE(BigInt(i), 0);
  return base;
}

function baseChunk(): Buffer {
  const b = Buffer.allocUnsafe(CHUNK);
  for (let i = 0; i < CHUNK; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i);
  return b;
}

const mbps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);
const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;

function log(msg: string): void {
  process.stderr.write(`[s3-bench] ${msg}\n`);
}

interface Ctx {
  srv: ServerInfo;
  base: string;
  raw: S3Client;
  backend(o?: Partial<S3BackendOptions>): S3Backend;
  rows: Row[];
  notes: string[];
  chunk: Buffer;
  size: number;
}

/**
 * Reads a whole file through the VFS in 1 MiB reads; returns the elapsed ms. With `into`, each read
 * is a readInto() of that one buffer (the WebDAV GET path: no allocation per read); else read().
 */
async function vfsReadAll(s: Session, path: string, bytes: number, check = false, into?: Buffer): Promise<number> {
  const t0 = performance.now();
  const h = await s.open('s', path, { access: RO, owner: 'r' });
  let off = 0;
  for (;;) {
    let buf: Buffer;
    if (into !== undefined) buf = into.subarray(0, await s.readInto(h, off, into));
    else buf = await s.read(h, off, CHUNK);
    if (buf.length === 0) break;
    if (check && buf.readBigUInt64LE(0) !== BigInt(off / CHUNK)) throw new Error(`wrong data at ${off}`);
    off += buf.length;
    if (off >= bytes) break;
  }
  await s.close(h);
  if (off !== bytes) throw new Error(`read ${off} of ${bytes} bytes`);
  return performance.now() - t0;
}

// ------------------------------------------------------------------ phases

/** Peak RSS of a fresh process doing only the big transfer (child mode --rss). */
interface RssResult {
  start: number;
  peak: number;
  mbps: number;
  /** process.memoryUsage() at the highest sampled RSS. */
  atPeak: NodeJS.MemoryUsage;
}

async function rssChild(endpoint: string, what: string): Promise<void> {
  const b = new S3Backend({ bucket: 'bench', endpoint, ...CREDS, prefix: 'portico', ...OPTS });
  const bytes = BIG_MB * MiB;
  const start = process.memoryUsage.rss();
  // Sampled every 50 ms: what the memory is made of when the process is at its largest.
  let atPeak = process.memoryUsage();
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > atPeak.rss) atPeak = m;
  }, 50);
  const t0 = performance.now();
  if (what === 'upload') {
    const chunk = baseChunk();
    const w = await b.createWriter('/big.bin', { sizeHint: bytes });
    for (let i = 0; i < BIG_MB; i++) await w.write(chunkOf(chunk, i));
    await w.commit();
  } else {
    const base = mkdtempSync(join(tmpdir(), 'portico-s3bench-rss-'));
    const st = stack(base, b);
    await vfsReadAll(st.session, '/big.bin', bytes, true, what === 'download-into' ? Buffer.allocUnsafe(CHUNK) : undefined);
    await st.close();
    rmSync(base, { recursive: true, force: true });
  }
  const ms = performance.now() - t0;
  clearInterval(sampler);
  const r: RssResult = { start, peak: process.resourceUsage().maxRSS * 1024, mbps: mbps(bytes, ms), atPeak };
  process.send?.(r);
  await b.close();
}

async function rssPhase(c: Ctx): Promise<void> {
  log(`peak RSS: ${BIG_MB} MiB upload, then download (read(), then readInto()), each in a fresh process`);
  const run = (what: string): Promise<RssResult> =>
    new Promise((resolve, reject) => {
      const child = fork(SELF, ['--rss', c.srv.endpoint, what], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.once('message', (m) => resolve(m as RssResult));
      child.once('exit', (code) => code !== 0 && reject(new Error(`rss child ${what} exited ${code}`)));
    });
  const up = await run('upload');
  const down = await run('download');
  const into = await run('download-into');
  const mb = (b: number): string => `${(b / MiB).toFixed(0)} MB`;
  const parts = (r: RssResult): string => `at the peak: V8 heap ${mb(r.atPeak.heapTotal)}, ArrayBuffers ${mb(r.atPeak.arrayBuffers)}`;
  c.notes.push(`peak RSS (aim < 300 MB), each in a fresh process:\n`
    + `  ${BIG_MB} MiB upload through the backend writer: ${mb(up.peak)} (process start ${mb(up.start)}; ${parts(up)}), ${up.mbps.toFixed(0)} MB/s\n`
    + `  ${BIG_MB} MiB download through the VFS, 1 MiB read(): ${mb(down.peak)} (start ${mb(down.start)}; ${parts(down)}), ${down.mbps.toFixed(0)} MB/s\n`
    + `  ${BIG_MB} MiB download through the VFS, 1 MiB readInto(): ${mb(into.peak)} (start ${mb(into.start)}; ${parts(into)}), ${into.mbps.toFixed(0)} MB/s`);
  await c.backend().unlink('/big.bin');
}

async function uploadPhase(c: Ctx): Promise<void> {
  log('uploads');
  // Loaded here, not at the top: the RSS child processes (same module) do not need it.
  const { Upload } = await import('@aws-sdk/lib-storage');
  const rawUpload = async (): Promise<number> => {
    const body = Readable.from((function* () {
      for (let i = 0; i < SIZE_MB; i++) yield Buffer.from(chunkOf(c.chunk, i));
    })());
    const t0 = performance.now();
    await new Upload({ client: c.raw, params: { Bucket: c.srv.bucket, Key: 'raw/obj.bin', Body: body }, partSize: 8 * MiB, queueSize: 4 }).done();
    return performance.now() - t0;
  };
  const writerUpload = async (): Promise<number> => {
    const b = c.backend();
    const t0 = performance.now();
    const w = await b.createWriter('/writer.bin', { sizeHint: c.size });
    for (let i = 0; i < SIZE_MB; i++) await w.write(chunkOf(c.chunk, i));
    await w.commit();
    return performance.now() - t0;
  };
  const vfsUpload = async (): Promise<number> => {
    const st = stack(c.base, c.backend());
    const t0 = performance.now();
    const h = await st.session.open('s', '/vfs.bin', { access: RW, disposition: 'createOrTruncate', owner: 'w' });
    for (let i = 0; i < SIZE_MB; i++) await st.session.write(h, i * CHUNK, chunkOf(c.chunk, i));
    await st.session.close(h);
    const ms = performance.now() - t0;
    await st.close();
    return ms;
  };
  const t = { raw: [] as number[], writer: [] as number[], vfs: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    t.raw.push(await rawUpload());
    t.writer.push(await writerUpload());
    t.vfs.push(await vfsUpload());
  }
  const best = { raw: Math.min(...t.raw), writer: Math.min(...t.writer), vfs: Math.min(...t.vfs) };
  c.rows.push({ workload: `upload ${SIZE_MB} MiB: backend writer vs lib-storage Upload`, unit: 'MB/s', raw: mbps(c.size, best.raw), portico: mbps(c.size, best.writer), ratio: best.raw / best.writer, aim: 0.9 });
  c.rows.push({ workload: `upload ${SIZE_MB} MiB: VFS write + close vs lib-storage Upload`, unit: 'MB/s', raw: mbps(c.size, best.raw), portico: mbps(c.size, best.vfs), ratio: best.raw / best.vfs, aim: 0.9, note: 'staged on local disk, then uploaded' });
}

async function readPhase(c: Ctx): Promise<void> {
  log('sequential read');
  const rawRead = async (): Promise<[number, number]> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await c.raw.send(new GetObjectCommand({ Bucket: c.srv.bucket, Key: 'portico/writer.bin' }));
    let n = 0;
    for await (const chunk of r.Body as AsyncIterable<Buffer>) n += chunk.length;
    if (n !== c.size) throw new Error('short raw read');
    return [performance.now() - t0, cpuMs(process.cpuUsage(c0))];
  };
  let gets = '';
  const vfsRead = async (into: Buffer | undefined): Promise<[number, number]> => {
    const b = c.backend();
    const st = stack(c.base, b);
    const c0 = process.cpuUsage();
    const ms = await vfsReadAll(st.session, '/writer.bin', c.size, true, into);
    const cpu = cpuMs(process.cpuUsage(c0));
    gets = `${b.meters.local.requests.get('GetObject') ?? 0} GETs, ${(b.meters.local.bytesIn / MiB).toFixed(0)} MiB fetched`;
    await st.close();
    return [ms, cpu];
  };
  const raw: [number, number][] = [];
  const vfs: [number, number][] = [];
  const vfsInto: [number, number][] = [];
  const target = Buffer.allocUnsafe(CHUNK);
  // Alternating, so load on a shared machine hits every side alike.
  for (let round = 0; round < ROUNDS; round++) {
    raw.push(await rawRead());
    vfs.push(await vfsRead(undefined));
    vfsInto.push(await vfsRead(target));
  }
  const best = (xs: [number, number][]): [number, number] => xs.reduce((a, b) => (b[0] < a[0] ? b : a));
  const [rms, rcpu] = best(raw);
  const [vms, vcpu] = best(vfs);
  const [ims, icpu] = best(vfsInto);
  c.rows.push({ workload: `sequential read ${SIZE_MB} MiB: VFS 1 MiB read() vs GetObject stream`, unit: 'MB/s', raw: mbps(c.size, rms), portico: mbps(c.size, vms), ratio: rms / vms, aim: 0.9, note: `client CPU ${(vcpu / SIZE_MB).toFixed(2)} vs ${(rcpu / SIZE_MB).toFixed(2)} ms/MiB; ${gets}` });
  c.rows.push({ workload: `sequential read ${SIZE_MB} MiB: VFS 1 MiB readInto() vs GetObject stream`, unit: 'MB/s', raw: mbps(c.size, rms), portico: mbps(c.size, ims), ratio: rms / ims, aim: 0.9, note: `client CPU ${(icpu / SIZE_MB).toFixed(2)} vs ${(rcpu / SIZE_MB).toFixed(2)} ms/MiB; one reused buffer, as WebDAV GET reads` });
}

async function randomPhase(c: Ctx): Promise<void> {
  log('random 4 KiB reads');
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const offsets = Array.from({ length: RANDOM_READS }, () => Math.floor(rnd() * (c.size - 4096)));
  const rawLat: number[] = [];
  const vfsLat: number[] = [];
  const st = stack(c.base, c.backend());
  const h = await st.session.open('s', '/writer.bin', { access: RO, owner: 'r' });
  // Alternating, so load on a shared machine hits both sides alike.
  for (const o of offsets) {
    const t0 = performance.now();
    const r = await c.raw.send(new GetObjectCommand({ Bucket: c.srv.bucket, Key: 'portico/writer.bin', Range: `bytes=${o}-${o + 4095}` }));
    const bytes = await r.Body!.transformToByteArray();
    rawLat.push(performance.now() - t0);
    if (bytes.length !== 4096) throw new Error('short ranged GET');
    // Other offsets than the raw side's (nothing cached), same distribution.
    const at = (o + 7 * MiB) % (c.size - 4096);
    const t1 = performance.now();
    const buf = await st.session.read(h, at, 4096);
    vfsLat.push(performance.now() - t1);
    if (buf.length !== 4096) throw new Error('short VFS read');
  }
  await st.session.close(h);
  await st.close();
  const r = median(rawLat);
  const v = median(vfsLat);
  c.rows.push({ workload: '4 KiB reads at random offsets: VFS vs ranged GetObject', unit: 'reads/s', raw: 1000 / r, portico: 1000 / v, ratio: r / v, aim: 0.67, note: `median latency ${v.toFixed(2)} vs ${r.toFixed(2)} ms; aim = latency <= 1.5x` });
}

async function cachePhase(c: Ctx): Promise<void> {
  log('cached re-reads');
  const memMB = Math.min(SIZE_MB, 256);
  const st = stack(c.base, c.backend({ memoryCacheBytes: (memMB + 64) * MiB }));
  const cold = await vfsReadAll(st.session, '/writer.bin', memMB * MiB);
  let warm = Infinity;
  for (let round = 0; round < ROUNDS; round++) warm = Math.min(warm, await vfsReadAll(st.session, '/writer.bin', memMB * MiB));
  await st.close();
  c.rows.push({ workload: `re-read ${memMB} MiB: memory tier vs first read from S3`, unit: 'MB/s', raw: mbps(memMB * MiB, cold), portico: mbps(memMB * MiB, warm), ratio: cold / warm, aim: 10, note: 'speed-up' });
  const cacheDir = join(c.base, 'blocks');
  const opts = { cacheDir, diskCacheBytes: 2 * c.size };
  const d1 = c.backend(opts);
  const s1 = stack(c.base, d1);
  const dCold = await vfsReadAll(s1.session, '/writer.bin', c.size);
  await s1.close();
  await d1.close();
  const target = Buffer.allocUnsafe(CHUNK);
  const dWarm = { read: Infinity, into: Infinity };
  const gets = { read: 0, into: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ['read', 'into'] as const) {
      // A new backend over the same cache directory each time: a restart.
      const d2 = c.backend(opts);
      const s2 = stack(c.base, d2);
      dWarm[mode] = Math.min(dWarm[mode], await vfsReadAll(s2.session, '/writer.bin', c.size, false, mode === 'into' ? target : undefined));
      gets[mode] = d2.meters.local.requests.get('GetObject') ?? 0;
      await s2.close();
      await d2.close();
    }
  }
  c.rows.push({ workload: `re-read ${SIZE_MB} MiB: disk tier after a restart (read()) vs first read`, unit: 'MB/s', raw: mbps(c.size, dCold), portico: mbps(c.size, dWarm.read), ratio: dCold / dWarm.read, aim: 10, note: `speed-up; ${gets.read} GETs on re-read` });
  c.rows.push({ workload: `re-read ${SIZE_MB} MiB: disk tier after a restart (readInto()) vs first read`, unit: 'MB/s', raw: mbps(c.size, dCold), portico: mbps(c.size, dWarm.into), ratio: dCold / dWarm.into, aim: 10, note: `speed-up; ${gets.into} GETs on re-read` });
}

/**
 * Read-after-write through the VFS, without HTTP (what bench:s3-gateway measures over WebDAV): a
 * whole-content replacement (the WebDAV PUT path, 1 MiB batches) of a new file, then a read of it
 * right after (readInto, as WebDAV GET reads), on a sync and an async share with the disk tier on,
 * and on a sync share without it (the before: every byte fetched back from S3).
 */
async function rawPhase(c: Ctx): Promise<void> {
  log('read-after-write (VFS, no HTTP)');
  const size = Math.min(c.size, 256 * MiB);
  const cases = [
    { name: 'before (sync, no disk tier)', mode: 'sync' as const, opts: { diskCacheBytes: 0 } },
    { name: 'sync, disk tier', mode: 'sync' as const, opts: {} },
    { name: 'async, disk tier', mode: 'async' as const, opts: {} },
  ];
  const best = new Map<string, { put: number; get: number; after: number; gets: number }>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of cases) {
      const b = c.backend({ prefix: `raw-${round}-${k.mode}-${k.opts.diskCacheBytes ?? 'disk'}`, stateDir: mkdtempSync(join(c.base, 'raw-')), ...k.opts });
      const st = stack(c.base, b, k.mode);
      const t0 = performance.now();
      const w = await st.session.replaceContent('s', '/f.bin', { owner: 'put', sizeHint: size });
      for (let i = 0; i < size / CHUNK; i++) await w.writev([Buffer.from(chunkOf(c.chunk, i))]);
      await w.commit();
      const put = performance.now() - t0;
      const gets0 = b.meters.local.requests.get('GetObject') ?? 0;
      const get = await vfsReadAll(st.session, '/f.bin', size, true, Buffer.allocUnsafe(CHUNK));
      const gets = (b.meters.local.requests.get('GetObject') ?? 0) - gets0;
      // Async: the upload lands, then the file is read again (from the disk tier).
      let after = NaN;
      if (k.mode === 'async') {
        while (st.vfs.writeBack.stats().pending > 0) await new Promise((r) => setTimeout(r, 50));
        after = await vfsReadAll(st.session, '/f.bin', size, true, Buffer.allocUnsafe(CHUNK));
      }
      await st.close();
      const prev = best.get(k.name);
      best.set(k.name, {
        put: Math.min(prev?.put ?? Infinity, put), get: Math.min(prev?.get ?? Infinity, get),
        after: Math.min(prev?.after ?? Infinity, after), gets,
      });
    }
  }
  const before = best.get(cases[0]!.name)!;
  for (const k of cases.slice(1)) {
    const r = best.get(k.name)!;
    c.rows.push({ workload: `PUT path ${size / MiB} MiB, ${k.name} vs before`, unit: 'MB/s', raw: mbps(size, before.put), portico: mbps(size, r.put), ratio: before.put / r.put, aim: undefined, note: k.mode === 'async' ? 'answered once staged and journaled' : 'answered once in S3' });
    c.rows.push({ workload: `read right after, ${k.name} vs before`, unit: 'MB/s', raw: mbps(size, before.get), portico: mbps(size, r.get), ratio: before.get / r.get, aim: undefined, note: `${r.gets} GETs (before: ${before.gets})${k.mode === 'async' ? '; from the pending stage while it uploads' : ''}` });
    if (k.mode === 'async') c.rows.push({ workload: `read after the upload landed, ${k.name} vs before`, unit: 'MB/s', raw: mbps(size, before.get), portico: mbps(size, r.after), ratio: before.get / r.after, aim: undefined, note: 'disk tier' });
  }
}

async function listPhase(c: Ctx): Promise<void> {
  log(`listing ${LIST_N} keys (written straight into s3rver's store)`);
  const dir = join(c.srv.dir, c.srv.bucket, 'listing', 'dir');
  mkdirSync(dir, { recursive: true });
  const emptyMd5 = createHash('md5').digest('hex');
  for (let i = 0; i < LIST_N; i++) {
    const name = `entry-${String(i).padStart(7, '0')}._S3rver_object`;
    writeFileSync(join(dir, name), '');
    writeFileSync(join(dir, `${name}.md5`), emptyMd5);
  }
  const rawList = async (): Promise<number> => {
    const t0 = performance.now();
    let n = 0;
    let token: string | undefined;
    do {
      const r = await c.raw.send(new ListObjectsV2Command({ Bucket: c.srv.bucket, Prefix: 'listing/dir/', Delimiter: '/', MaxKeys: 1000, ...(token ? { ContinuationToken: token } : {}) }));
      n += (r.Contents?.length ?? 0) + (r.CommonPrefixes?.length ?? 0);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (n !== LIST_N) throw new Error(`raw listing saw ${n}`);
    return performance.now() - t0;
  };
  const backendList = async (): Promise<number> => {
    const b = c.backend({ prefix: 'listing' });
    const t0 = performance.now();
    let n = 0;
    let after: string | undefined;
    for (;;) {
      const p = await b.list('/dir', after === undefined ? { limit: 1000 } : { after, limit: 1000 });
      n += p.entries.length;
      if (p.next === undefined) break;
      after = p.next;
    }
    if (n !== LIST_N) throw new Error(`backend listing saw ${n}`);
    return performance.now() - t0;
  };
  const vfsList = async (): Promise<number> => {
    const st = stack(c.base, c.backend({ prefix: 'listing' }));
    const t0 = performance.now();
    let n = 0;
    let cookie: bigint | undefined;
    for (;;) {
      const r = await st.session.readdir('s', '/dir', cookie === undefined ? { limit: 1000 } : { cookie, limit: 1000 });
      n += r.entries.length;
      if (r.eof) break;
      cookie = r.entries.at(-1)!.cookie;
    }
    const ms = performance.now() - t0;
    await st.close();
    if (n !== LIST_N) throw new Error(`VFS listing saw ${n}`);
    return ms;
  };
  await rawList(); // warms s3rver's directory cache for everyone
  const t = { raw: Infinity, backend: Infinity, vfs: Infinity };
  for (let round = 0; round < 2; round++) {
    t.raw = Math.min(t.raw, await rawList());
    t.backend = Math.min(t.backend, await backendList());
    t.vfs = Math.min(t.vfs, await vfsList());
  }
  const rate = (ms: number): number => LIST_N / (ms / 1000);
  c.rows.push({ workload: `list ${LIST_N} keys: backend.list vs ListObjectsV2 loop`, unit: 'entries/s', raw: rate(t.raw), portico: rate(t.backend), ratio: t.raw / t.backend, aim: undefined });
  c.rows.push({ workload: `list ${LIST_N} keys: VFS readdir vs ListObjectsV2 loop`, unit: 'entries/s', raw: rate(t.raw), portico: rate(t.vfs), ratio: t.raw / t.vfs, aim: undefined, note: 'a persistent id per entry' });
  rmSync(join(c.srv.dir, c.srv.bucket, 'listing'), { recursive: true, force: true });
}

async function smallPhase(c: Ctx): Promise<string[]> {
  log(`small-file workload (${SMALL_N} files)`);
  const out: string[] = [];
  const b = c.backend({ prefix: 'small' });
  const st = stack(c.base, b);
  const s = st.session;
  const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
    const before = new Map(b.meters.local.requests);
    const t0 = performance.now();
    await fn();
    const ms = performance.now() - t0;
    const diff: string[] = [];
    let total = 0;
    for (const [op, n] of b.meters.local.requests) {
      const d = n - (before.get(op) ?? 0);
      if (d > 0) diff.push(`${op} ${(d / SMALL_N).toFixed(2)}`);
      total += d;
    }
    out.push(`  ${name.padEnd(36)} ${(total / SMALL_N).toFixed(2).padStart(5)} requests/file  (${diff.join(', ') || 'none'})  ${(ms / SMALL_N).toFixed(2)} ms/file`);
  };
  const data = Buffer.alloc(4096, 7);
  await s.mkdir('s', '/d');
  await step('create + write 4 KiB + close', async () => {
    for (let i = 0; i < SMALL_N; i++) {
      const h = await s.open('s', `/d/f${i}`, { access: RW, disposition: 'create', owner: 'w' });
      await s.write(h, 0, data);
      await s.close(h);
    }
  });
  await step('getattr (within the metadata TTL)', async () => {
    for (let i = 0; i < SMALL_N; i++) await s.getattr('s', `/d/f${i}`);
  });
  b.invalidate('/');
  await step('getattr (after invalidate)', async () => {
    for (let i = 0; i < SMALL_N; i++) await s.getattr('s', `/d/f${i}`);
  });
  b.invalidate('/');
  await step('open + read 4 KiB + close (invalidated)', async () => {
    for (let i = 0; i < SMALL_N; i++) {
      const h = await s.open('s', `/d/f${i}`, { access: RO, owner: 'r' });
      await s.read(h, 0, 4096);
      await s.close(h);
    }
  });
  await step('readdir (pages of 1000)', async () => {
    let cookie: bigint | undefined;
    for (;;) {
      const r = await s.readdir('s', '/d', cookie === undefined ? { limit: 1000 } : { cookie, limit: 1000 });
      if (r.eof) break;
      cookie = r.entries.at(-1)!.cookie;
    }
  });
  await step('rename (copy + delete)', async () => {
    for (let i = 0; i < SMALL_N; i++) await s.rename('s', `/d/f${i}`, `/d/g${i}`);
  });
  await step('unlink', async () => {
    for (let i = 0; i < SMALL_N; i++) await s.unlink('s', `/d/g${i}`);
  });
  await st.close();
  return out;
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const srv = await startServer();
  const base = mkdtempSync(join(tmpdir(), 'portico-s3bench-'));
  const raw = new S3Client({
    endpoint: srv.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDS,
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const backends: S3Backend[] = [];
  const c: Ctx = {
    srv,
    base,
    raw,
    backend: (o = {}) => {
      const b = new S3Backend({ bucket: srv.bucket, endpoint: srv.endpoint, ...CREDS, prefix: 'portico', ...OPTS, ...o });
      backends.push(b);
      return b;
    },
    rows: [],
    notes: [],
    chunk: baseChunk(),
    size: SIZE_MB * MiB,
  };
  let perOp: string[] = [];
  try {
    log(`s3rver child at ${srv.endpoint}; object ${SIZE_MB} MiB, big ${BIG_MB} MiB, listing ${LIST_N}, small files ${SMALL_N}`);
    if (wanted('rss')) await rssPhase(c);
    if (wanted('upload') || wanted('read') || wanted('random') || wanted('cache')) await uploadPhase(c);
    if (wanted('read')) await readPhase(c);
    if (wanted('random')) await randomPhase(c);
    if (wanted('cache')) await cachePhase(c);
    if (wanted('raw')) await rawPhase(c);
    if (wanted('list')) await listPhase(c);
    if (wanted('small')) perOp = await smallPhase(c);
    process.stdout.write(`\nPortico S3 benchmark: s3rver in a child process, raw = AWS SDK v3 on the same server, same run (best of ${ROUNDS} rounds)\n\n`);
    process.stdout.write(`${renderTable(c.rows)}\n\n`);
    for (const n of c.notes) process.stdout.write(`${n}\n`);
    if (perOp.length > 0) process.stdout.write(`\nS3 requests per file, small-file workload through the VFS (${SMALL_N} files of 4 KiB):\n${perOp.join('\n')}\n`);
    process.stdout.write('\nNote: s3rver is the bottleneck of most figures (objects and parts are files on local disk, parts are concatenated at completion, every listing page walks and sorts the directory); ratios compare both clients against the same slow server.\n');
  } finally {
    for (const b of backends) await b.close().catch(() => undefined);
    raw.destroy();
    srv.child.send('stop');
    await new Promise((r) => srv.child.once('exit', r));
    rmSync(base, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ entry: main, the s3rver child, or an RSS child

if (process.argv.includes('--serve')) {
  // The benchmark's server is the tests' s3rver (with its S3-conformance fixes), in its own process.
  const { startS3rver } = await import('../test/helpers/s3rver.ts');
  const h = await startS3rver({ bucket: 'bench' });
  process.send?.({ endpoint: h.endpoint, dir: h.dir, bucket: h.bucket });
  process.on('message', (m) => {
    if (m === 'stop') void h.stop().then(() => process.exit(0));
  });
} else if (process.argv.includes('--rss')) {
  const i = process.argv.indexOf('--rss');
  await rssChild(process.argv[i + 1] as string, process.argv[i + 2] as string);
  process.exit(0);
} else {
  await main();
}
