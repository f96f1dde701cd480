/**
 * Shard set benchmark (issue 12), every figure measured in the same run on the same s3rver:
 *
 * - pack throughput (MB/s, files/s, CPU) of a flat directory of N small files, to a local set and
 *   to a set on s3rver
 * - random small-file reads (the same random sequence for each side, 16 at a time, distinct files):
 *   the shard backend on s3rver (after its indexes are loaded: one shard file read each) vs the
 *   same files as individual objects through Portico's S3 backend (cold metadata: one GET that is
 *   also the lookup; HEAD + GET before) vs
 *   the same files read as raw ranged GetObject (no HEAD: the floor of one request per file) vs a
 *   local directory (LocalBackend); files/s and client CPU per read
 * - backend requests per small-file read after warm-up, and on a second pass (cached); s3rver's own
 *   CPU per read (its process's user + system time from /proc)
 * - listing the N-entry directory: shard backend (catalog + indexes) vs ListObjectsV2 pages through
 *   the S3 backend
 * - memory of the decoded indexes of a 1,000,000-file set (synthetic entries, 100 shards)
 *
 * Env: BENCH_SHARD_N (files, default 100000; BENCH_QUICK=1: 10000), BENCH_SHARD_READS (random reads,
 * default 3000). Prints figures and ratios; never judges. Run with `npm run bench:shard`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { LocalBackend } from '../backends/local/local-backend.ts';
import { S3Backend } from '../backends/s3/s3-backend.ts';
import { encodeIndex, decodeIndex, type ShardEntry } from '../backends/shard/format.ts';
import { pack, type PackResult } from '../backends/shard/pack.ts';
import { ShardBackend } from '../backends/shard/shard-backend.ts';
import { openShardStore } from '../backends/shard/store.ts';
import type { Backend } from '../src/vfs/backend.ts';
import { Metrics } from '../src/metrics/metrics.ts';
import { mapLimit } from './lib.ts';

const SELF = fileURLToPath(import.meta.url);
const QUICK = process.env.BENCH_QUICK === '1';
const N = Number(process.env.BENCH_SHARD_N ?? (QUICK ? 10_000 : 100_000));
const READS = Math.min(N, Number(process.env.BENCH_SHARD_READS ?? 3000));
const CONC = 16;
const CREDS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const MiB = 1024 * 1024;

function log(m: string): void {
  process.stderr.write(`[bench:shard] ${m}\n`);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ServerInfo {
  endpoint: string;
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

/** A flat directory of N files of 1-8 KiB, half text (compressible), half random bytes. */
function makeFiles(dir: string): { names: string[]; bytes: number } {
  const r = rng(7);
  mkdirSync(join(dir, 'flat'), { recursive: true });
  const names: string[] = [];
  let bytes = 0;
  const words = ['alpha', 'beta', 'gamma', 'delta', 'shard', 'index', 'portico', 'footer'];
  for (let i = 0; i < N; i++) {
    const size = 1024 + 4 * Math.floor(r() * 1792);
    let data: Buffer;
    if (i % 2 === 0) {
      const parts: string[] = [];
      let n = 0;
      while (n < size) {
        const w = words[Math.floor(r() * words.length)] as string;
        parts.push(w);
        n += w.length + 1;
      }
      data = Buffer.from(parts.join(' ')).subarray(0, size);
    } else {
      data = Buffer.allocUnsafe(size);
      for (let k = 0; k < size; k += 4) data.writeUInt32LE(Math.floor(r() * 2 ** 32), k);
    }
    const name = `f${String(i).padStart(7, '0')}.${i % 2 === 0 ? 'txt' : 'bin'}`;
    writeFileSync(join(dir, 'flat', name), data);
    names.push(name);
    bytes += data.length;
  }
  return { names, bytes };
}

/** CPU time (user + system, every thread) of the s3rver child so far, ms (/proc/<pid>/stat, clock ticks). */
let serverPid: number | undefined;
function serverCpuMs(): number {
  if (serverPid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${serverPid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS;
  } catch {
    return 0;
  }
}
const TICKS = 100;

async function readRate(label: string, read: (name: string) => Promise<number>, picks: string[]): Promise<{ rate: number; cpuPerRead: number; serverCpuPerRead: number; bytes: number }> {
  const c0 = cpuMs();
  const s0 = serverCpuMs();
  const t0 = performance.now();
  let bytes = 0;
  await mapLimit(picks, CONC, async (n) => {
    bytes += await read(n);
  });
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuMs() - c0;
  const server = serverCpuMs() - s0;
  log(`${label}: ${picks.length} reads in ${secs.toFixed(2)} s`);
  return { rate: picks.length / secs, cpuPerRead: cpu / picks.length, serverCpuPerRead: server / picks.length, bytes };
}

function line(cells: (string | number)[]): string {
  return cells.map((c, i) => (i === 0 ? String(c).padEnd(52) : String(c).padStart(20))).join('');
}

async function indexMemory(): Promise<{ files: number; heapMB: number; indexMB: number; decodeMs: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const SHARDS = 100;
  const PER = 10_000;
  const raws: { raw: Buffer; count: number }[] = [];
  for (let s = 0; s < SHARDS; s++) {
    const entries: ShardEntry[] = [];
    for (let i = 0; i < PER; i++) {
      const n = s * PER + i;
      entries.push({
        path: `/dataset/class-${String(Math.floor(n / 1000)).padStart(4, '0')}/img-${String(n).padStart(8, '0')}.jpg`,
        type: 'file', codec: 'none', chunked: false, mode: 0o644, mtimeNs: 1_700_000_000_000_000_000n,
        offset: 32 + i * 10_000, storedLength: 9000, length: 9000, crc: n >>> 0,
      });
    }
    entries.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    raws.push({ raw: encodeIndex(entries), count: PER });
  }
  gc?.();
  const m0 = process.memoryUsage();
  const t0 = performance.now();
  const kept = raws.map(({ raw, count }) => decodeIndex(Buffer.from(raw), {
    indexOffset: 32 + PER * 10_000, indexStoredLength: raw.length, indexLength: raw.length, entryCount: count, indexCodec: 'none',
    indexCrc: crc32(raw), version: 1,
  }));
  const decodeMs = performance.now() - t0;
  raws.length = 0;
  gc?.();
  const m1 = process.memoryUsage();
  const indexBytes = kept.reduce((a, k) => a + k.bytes, 0);
  const heap = (m1.heapUsed + m1.arrayBuffers + m1.external - (m0.heapUsed + m0.arrayBuffers + m0.external)) / MiB;
  // Keep them alive until measured.
  if (kept.length !== SHARDS) throw new Error('lost indexes');
  return { files: SHARDS * PER, heapMB: heap, indexMB: indexBytes / MiB, decodeMs };
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'portico-shard-bench-'));
  const srv = await startServer();
  serverPid = srv.child.pid;
  const load0 = loadavg();
  const out: string[] = [];
  try {
    log(`s3rver child at ${srv.endpoint}; ${N} files, ${READS} random reads, ${CONC} at a time`);
    const src = join(base, 'src');
    const { names, bytes } = makeFiles(src);
    log(`tree written: ${(bytes / MiB).toFixed(1)} MiB`);

    // ---- pack
    const packOne = async (dest: string, opts: Record<string, unknown>): Promise<{ r: PackResult; cpu: number }> => {
      const store = await openShardStore(dest, opts);
      const c0 = cpuMs();
      const r = await pack(src, store, { shardSize: 64 * MiB, progress: 'none' });
      const cpu = cpuMs() - c0;
      await store.close();
      return { r, cpu };
    };
    const local = await packOne(join(base, 'set'), {});
    log(`packed locally: ${local.r.seconds.toFixed(1)} s`);
    const s3set = await packOne(`s3://${srv.bucket}/set`, { endpoint: srv.endpoint, ...CREDS });
    log(`packed to s3rver: ${s3set.r.seconds.toFixed(1)} s`);

    // ---- the same files as individual objects
    const client = new S3Client({ endpoint: srv.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDS, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    const tUp = performance.now();
    await mapLimit(names, 32, async (n) => {
      await client.send(new PutObjectCommand({ Bucket: srv.bucket, Key: `objects/flat/${n}`, Body: readFileSync(join(src, 'flat', n)) }));
    });
    log(`uploaded ${N} objects in ${((performance.now() - tUp) / 1000).toFixed(1)} s`);

    // ---- random reads
    const r = rng(99);
    const picks: string[] = [];
    const seen = new Set<number>();
    while (picks.length < READS) {
      const i = Math.floor(r() * N);
      if (seen.has(i)) continue;
      seen.add(i);
      picks.push(names[i] as string);
    }
    // Requests are counted by the S3 transport's metrics, not by an in-process counting proxy: the
    // proxy's own CPU (parse, forward, log) landed in the client CPU of the shard and S3-backend rows
    // but not in the raw GetObject row, which went straight to s3rver.
    const metrics = new Metrics({ defaultMetrics: false });
    const requests = (label: string, op?: string): number => {
      let n = 0;
      for (const o of ['GetObject', 'HeadObject', 'ListObjectsV2']) if (op === undefined || op === o) n += metrics.s3Stats(label, o).count;
      return n;
    };
    const shard = await ShardBackend.open(`shard+s3://${srv.bucket}/set`, { endpoint: srv.endpoint, ...CREDS, catalogCheckMs: 3_600_000, metrics, metricsLabel: 'shard' });
    // Warm-up: the catalog and every shard's index (one file of each shard).
    const warm = new Map<string, string>();
    for (const n of names) {
      const l = await shard.reader.lookup(`/flat/${n}`);
      if (l !== undefined && !warm.has(l.shard.name)) warm.set(l.shard.name, n);
    }
    const shards = warm.size;
    const q0 = requests('shard');
    const g0 = requests('shard', 'GetObject');
    const shardRead = await readRate('shard set on s3rver', async (n) => (await shard.read(`/flat/${n}`, 0, 1 << 20)).length, picks);
    const shardReqs = (requests('shard') - q0) / READS;
    const shardGets = (requests('shard', 'GetObject') - g0) / READS;
    const q1 = requests('shard');
    const shardAgain = await readRate('shard set on s3rver, again', async (n) => (await shard.read(`/flat/${n}`, 0, 1 << 20)).length, picks);
    const shardReqs2 = (requests('shard') - q1) / READS;
    const tl0 = performance.now();
    let listed = 0;
    for (let after: string | undefined; ;) {
      const page = await shard.list('/flat', { limit: 1000, ...(after !== undefined ? { after } : {}) });
      listed += page.entries.length;
      if (page.next === undefined) break;
      after = page.next;
    }
    const shardListMs = performance.now() - tl0;
    await shard.close();

    const s3 = new S3Backend({ bucket: srv.bucket, prefix: 'objects', endpoint: srv.endpoint, ...CREDS, metrics, metricsLabel: 'objects' });
    const objRead = await readRate('objects through the S3 backend', async (n) => (await s3.read(`/flat/${n}`, 0, 1 << 20)).length, picks);
    const objReqs = requests('objects') / READS;
    const s3list = new S3Backend({ bucket: srv.bucket, prefix: 'objects', endpoint: srv.endpoint, ...CREDS });
    const to0 = performance.now();
    let listedObj = 0;
    for (let after: string | undefined; ;) {
      const page = await s3list.list('/flat', { limit: 1000, ...(after !== undefined ? { after } : {}) });
      listedObj += page.entries.length;
      if (page.next === undefined) break;
      after = page.next;
    }
    const objListMs = performance.now() - to0;
    await s3.close();
    await s3list.close();

    const rawRead = await readRate('raw GetObject per file', async (n) => {
      const res = await client.send(new GetObjectCommand({ Bucket: srv.bucket, Key: `objects/flat/${n}` }));
      return (await res.Body!.transformToByteArray()).length;
    }, picks);
    client.destroy();

    const localB: Backend = await LocalBackend.open(src);
    const localRead = await readRate('local directory', async (n) => (await localB.read(`/flat/${n}`, 0, 1 << 20)).length, picks);
    await localB.close();
    const localShard = await ShardBackend.open(`shard+file://${join(base, 'set')}`, { catalogCheckMs: 3_600_000 });
    for (const n of warm.values()) await localShard.read(`/flat/${n}`, 0, 1);
    const localShardRead = await readRate('local shard set', async (n) => (await localShard.read(`/flat/${n}`, 0, 1 << 20)).length, picks);
    await localShard.close();

    const mem = await indexMemory();
    const load1 = loadavg();

    const mb = bytes / MiB;
    out.push(`Portico shard benchmark: ${N} files of 1-8 KiB (${mb.toFixed(1)} MiB), ${READS} distinct random reads, ${CONC} at a time, s3rver in a child process`);
    out.push(`load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}, at end ${load1.map((x) => x.toFixed(2)).join(' ')} (2 cores, shared)`);
    out.push('');
    out.push(line(['pack', 'MB/s', 'files/s', 'CPU s', 'stored MiB']));
    for (const [label, p] of [['pack to a local directory', local], ['pack to s3rver', s3set]] as const) {
      out.push(line([label, (mb / p.r.seconds).toFixed(1), (N / p.r.seconds).toFixed(0), (p.cpu / 1000).toFixed(1), (p.r.storedBytes / MiB).toFixed(1)]));
    }
    out.push('');
    // s3rver's own CPU (its process, /proc, 10 ms ticks) per read: what the store spends per
    // request bounds every S3 row on a machine whose cores it shares with the client.
    out.push(line(['random small-file reads', 'files/s', 'CPU ms/read', 'requests/read', 'vs objects', 's3rver CPU ms/read']));
    const srvCpu = (r: { serverCpuPerRead: number }): string => r.serverCpuPerRead.toFixed(2);
    out.push(line([`shard set on s3rver (${shards} shards, indexes loaded)`, shardRead.rate.toFixed(0), shardRead.cpuPerRead.toFixed(2), `${shardReqs.toFixed(2)} (${shardGets.toFixed(2)} GET)`, `${(shardRead.rate / objRead.rate).toFixed(2)}x`, srvCpu(shardRead)]));
    out.push(line(['shard set, same files again (cached)', shardAgain.rate.toFixed(0), shardAgain.cpuPerRead.toFixed(2), shardReqs2.toFixed(2), `${(shardAgain.rate / objRead.rate).toFixed(2)}x`, srvCpu(shardAgain)]));
    out.push(line(['one object per file, Portico S3 backend', objRead.rate.toFixed(0), objRead.cpuPerRead.toFixed(2), objReqs.toFixed(2), '1.00x', srvCpu(objRead)]));
    out.push(line(['one object per file, raw GetObject (floor)', rawRead.rate.toFixed(0), rawRead.cpuPerRead.toFixed(2), '1.00', `${(rawRead.rate / objRead.rate).toFixed(2)}x`, srvCpu(rawRead)]));
    out.push(line(['local directory (LocalBackend)', localRead.rate.toFixed(0), localRead.cpuPerRead.toFixed(2), '-', `${(localRead.rate / objRead.rate).toFixed(2)}x`, '-']));
    out.push(line(['shard set in a local directory', localShardRead.rate.toFixed(0), localShardRead.cpuPerRead.toFixed(2), '-', `${(localShardRead.rate / objRead.rate).toFixed(2)}x`, '-']));
    out.push('');
    out.push(line(['listing the directory', 'entries', 'ms', 'vs S3 listing', '']));
    out.push(line(['shard backend (indexes loaded)', listed, shardListMs.toFixed(0), `${(objListMs / shardListMs).toFixed(1)}x faster`, '']));
    out.push(line(['S3 backend (ListObjectsV2 pages)', listedObj, objListMs.toFixed(0), '1.0x', '']));
    out.push('');
    out.push(`index memory of a ${mem.files.toLocaleString('en-US')}-file set (100 shards, 50-byte paths): ${mem.indexMB.toFixed(1)} MiB of decoded index, process heap+buffers grew ${mem.heapMB.toFixed(1)} MiB; decoding and validating took ${mem.decodeMs.toFixed(0)} ms`);
    process.stdout.write(`\n${out.join('\n')}\n`);
  } finally {
    srv.child.send('stop');
    await new Promise((r) => srv.child.once('exit', r));
    rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) {
  const { startS3rver } = await import('../test/helpers/s3rver.ts');
  const h = await startS3rver({ bucket: 'bench' });
  process.send?.({ endpoint: h.endpoint, bucket: h.bucket });
  process.on('message', (m) => {
    if (m === 'stop') void h.stop().then(() => process.exit(0));
  });
} else {
  await main();
}
