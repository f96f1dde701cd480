/**
 * VFS benchmark: the real gate (session with ACL checks, Prometheus metrics and a synchronous audit
 * log -> VFS -> metrics-instrumented LocalBackend) against the same work done with plain
 * node:fs/promises calls on the same filesystem. Every figure is printed for both sides with the ratio Portico/raw; the aims are
 * reported but never fail the run (this is a benchmark, not a test).
 *
 * Fairness rules:
 * - Both sides run in this one process, on sibling temp directories of one filesystem, one
 *   operation at a time (a single client's latency-bound stream), after the same warm-up.
 * - Sides alternate and the best round of each counts, so drift on a shared machine and page-cache
 *   state hit both alike: small-op workloads in ABBA blocks inside each of 2 rounds, listings and
 *   streaming runs in ABBA order too (raw, portico, portico, raw, ...; STREAM_ROUNDS per side).
 * - Streaming runs follow an untimed warm-up of both sides, start with dirty pages written back
 *   (sync) and read a file that was just written (page cache warm on both sides); each file is
 *   deleted before the next is written, so at most one big file exists at a time.
 *
 * Env: BENCH_QUICK=1 divides the operation counts by 10; BENCH_SIZE_MB sets the streaming file size
 * (default 1024).
 */
import { promises as fsp, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Session } from '../src/session/session.ts';
import type { Handle } from '../src/vfs/vfs.ts';
import { counterTotal, flushDirtyPages, makePorticoStack, mapLimit, median, peakRss, renderTable, timed, verdict, type Row } from './lib.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const SCALE = QUICK ? 10 : 1;
const N_CREATE = 5_000 / SCALE;
const N_STAT = 20_000 / SCALE;
const N_DIR = 10_000 / SCALE;
const LISTINGS = 5;
const PAGE = 1000;
const SIZE_MB = Number(process.env.BENCH_SIZE_MB ?? 1024);
const CHUNK = 1024 * 1024;
const SMALL = 4096;
const WARMUP = 200;
/**
 * Streaming rounds per side; the best counts. Four, not two: on the shared VM this was written on,
 * about one 1 GiB write in three took 5-10x longer than the others (the first timed one almost
 * always), and with two rounds one side was often left without an undisturbed run.
 */
const STREAM_ROUNDS = 4;
/** Rounds of the by-id figures (each a fraction of a second); the best counts. */
const BY_ID_ROUNDS = 5;
/** Small-op workloads alternate sides in this many blocks per round. */
const BLOCKS = 20;
/** The fan-out LocalBackend.list uses for its per-entry lstat; the raw listing uses the same. */
const LIST_STAT_CONCURRENCY = 64;
/** readFile cost rounds: operations per CPU round, rounds, and heap-growth batches (bytes/op). */
const COST_OPS = 3000 / SCALE;
const COST_ROUNDS = 5;
const ALLOC_BATCHES = 40;
const ALLOC_BATCH_OPS = 20;
const AIM_SMALL = 0.5;
const AIM_STREAM = 0.9;

const RW = { read: true, write: true, delete: false };
const RO = { read: true, write: false, delete: false };

if (!Number.isFinite(SIZE_MB) || SIZE_MB <= 0) throw new Error(`BENCH_SIZE_MB must be a positive number, got ${process.env.BENCH_SIZE_MB}`);
const SIZE = Math.round(SIZE_MB * CHUNK);

const fileName = (i: number): string => `f${String(i).padStart(6, '0')}`;

// ---------------------------------------------------------------- the two sides of each workload

async function rawCreate(dir: string, from: number, to: number, data: Buffer): Promise<void> {
  for (let i = from; i < to; i++) {
    const fh = await fsp.open(join(dir, fileName(i)), 'wx');
    await fh.write(data, 0, data.length, 0);
    await fh.close();
  }
}

async function porticoCreate(s: Session, dir: string, from: number, to: number, data: Buffer): Promise<void> {
  for (let i = from; i < to; i++) {
    const h = await s.open('s', `${dir}/${fileName(i)}`, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
    await s.write(h, 0, data);
    await s.close(h);
  }
}

async function rawStat(paths: string[], from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await fsp.stat(paths[i % paths.length] as string);
}

async function porticoStat(s: Session, paths: string[], from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await s.getattr('s', paths[i % paths.length] as string);
}

/**
 * Splits n operations into blocks and runs the two sides block by block in ABBA order (raw first,
 * then portico first, ...), so bursts of load from other processes on a shared machine land on
 * both sides alike. Returns each side's total time in ms.
 */
async function interleaved(
  n: number,
  blocks: number,
  raw: (from: number, to: number) => Promise<void>,
  portico: (from: number, to: number) => Promise<void>,
): Promise<{ raw: number; portico: number }> {
  let rawMs = 0;
  let porticoMs = 0;
  for (let b = 0; b < blocks; b++) {
    const from = Math.floor((n * b) / blocks);
    const to = Math.floor((n * (b + 1)) / blocks);
    const runRaw = async (): Promise<void> => void (rawMs += await timed(() => raw(from, to)));
    const runPortico = async (): Promise<void> => void (porticoMs += await timed(() => portico(from, to)));
    if (b % 2 === 0) {
      await runRaw();
      await runPortico();
    } else {
      await runPortico();
      await runRaw();
    }
  }
  return { raw: rawMs, portico: porticoMs };
}

/** What a server must do to answer a listing with attributes from plain fs: names, then one lstat each. */
async function rawListWithAttrs(dir: string, concurrency: number): Promise<number> {
  const names = await fsp.readdir(dir);
  const stats = await mapLimit(names, concurrency, (n) => fsp.lstat(`${dir}/${n}`));
  return stats.length;
}

async function porticoList(s: Session, dir: string): Promise<number> {
  let count = 0;
  let cookie: bigint | undefined;
  for (;;) {
    const r = await s.readdir('s', dir, cookie === undefined ? { limit: PAGE } : { cookie, limit: PAGE });
    count += r.entries.length;
    if (r.eof || r.entries.length === 0) return count;
    cookie = r.entries.at(-1)!.cookie;
  }
}

async function rawWriteBig(path: string, data: Buffer): Promise<void> {
  const fh = await fsp.open(path, 'wx');
  try {
    for (let off = 0; off < SIZE; off += CHUNK) {
      const len = Math.min(CHUNK, SIZE - off);
      await fh.write(data, 0, len, off);
    }
  } finally {
    await fh.close();
  }
}

/** Raw read into one reused buffer (what cat/dd do); `fresh` allocates per chunk like an API that returns buffers. */
async function rawReadBig(path: string, fresh: boolean): Promise<number> {
  const fh = await fsp.open(path, 'r');
  let total = 0;
  try {
    const reused = Buffer.allocUnsafe(CHUNK);
    for (let off = 0; ; ) {
      const buf = fresh ? Buffer.allocUnsafe(CHUNK) : reused;
      const { bytesRead } = await fh.read(buf, 0, CHUNK, off);
      if (bytesRead === 0) break;
      off += bytesRead;
      total += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return total;
}

async function porticoWriteBig(s: Session, path: string, data: Buffer): Promise<void> {
  const h = await s.open('s', path, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
  try {
    for (let off = 0; off < SIZE; off += CHUNK) {
      const len = Math.min(CHUNK, SIZE - off);
      await s.write(h, off, len === CHUNK ? data : data.subarray(0, len));
    }
  } finally {
    await s.close(h);
  }
}

/** reuse: readInto one buffer (as a protocol reading into its reply buffer); else read() allocating per chunk. */
async function porticoReadBig(s: Session, path: string, reuse: boolean): Promise<number> {
  const h: Handle = await s.open('s', path, { access: RO, owner: 'bench', expect: 'file' });
  let total = 0;
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (let off = 0; ; ) {
      const n = reuse ? await s.readInto(h, off, buf) : (await s.read(h, off, CHUNK)).length;
      if (n === 0) break;
      off += n;
      total += n;
    }
  } finally {
    await s.close(h);
  }
  return total;
}

/**
 * Cost of one operation as CPU time and heap bytes, the figures that hold on a loaded machine
 * (issue 9): CPU µs/op is process.cpuUsage (user + system, every thread: the fs thread pool too)
 * over COST_OPS sequential operations, best of COST_ROUNDS; bytes/op is the growth of the used heap
 * over ALLOC_BATCH_OPS operations started right after a full GC (no collection runs inside so small
 * a batch; a batch in which one did shows no growth and is dropped), median of ALLOC_BATCHES.
 */
async function opCost(op: (i: number) => Promise<unknown>, gc: () => void): Promise<{ cpuUs: number; bytes: number }> {
  let cpuUs = Infinity;
  for (let r = 0; r < COST_ROUNDS; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < COST_OPS; i++) await op(i);
    const c = process.cpuUsage(c0);
    cpuUs = Math.min(cpuUs, (c.user + c.system) / COST_OPS);
  }
  const samples: number[] = [];
  for (let b = 0; b < ALLOC_BATCHES; b++) {
    gc();
    const h0 = getHeapStatistics().used_heap_size;
    for (let i = 0; i < ALLOC_BATCH_OPS; i++) await op(i);
    const grown = getHeapStatistics().used_heap_size - h0;
    if (grown > 0) samples.push(grown / ALLOC_BATCH_OPS);
  }
  return { cpuUs, bytes: samples.length > 0 ? median(samples) : Number.NaN };
}

/** A full-GC function without --expose-gc on the command line (npm run bench passes no flags). */
function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

// ---------------------------------------------------------------- driver

async function main(): Promise<void> {
  const base = await fsp.mkdtemp(join(tmpdir(), 'portico-bench-'));
  // An interrupted run must not leave a 1 GiB file behind.
  process.once('SIGINT', () => {
    rmSync(base, { recursive: true, force: true });
    process.exit(130);
  });
  const rawRoot = join(base, 'raw');
  const stack = makePorticoStack(base);
  const s = stack.session;
  const rows: Row[] = [];
  const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);
  const best = (xs: number[]): number => Math.min(...xs);

  console.log('Portico VFS benchmark');
  console.log(`node ${process.version} | cpu ${cpus()[0]?.model ?? 'unknown'} x${cpus().length} | ${QUICK ? 'QUICK (N/10)' : 'full'} | stream ${SIZE_MB} MiB`);
  console.log(`portico = Session (ACL check, metrics, audit log: ON) -> Vfs (sqlite ids) -> metrics-instrumented LocalBackend`);
  console.log(`raw     = node:fs/promises on a sibling dir of the same filesystem (${base})`);
  console.log('');

  try {
    for (const d of ['warm', 'c1', 'c2', 'big']) {
      await fsp.mkdir(join(rawRoot, d), { recursive: true });
      await s.mkdir('s', `/${d}`);
    }
    const small = randomBytes(SMALL);

    // 1. create + write 4 KiB + close
    log('warm-up');
    await rawCreate(join(rawRoot, 'warm'), 0, WARMUP, small);
    await porticoCreate(s, '/warm', 0, WARMUP, small);
    await rawStat([join(rawRoot, 'warm', fileName(0))], 0, WARMUP);
    await porticoStat(s, ['/warm/' + fileName(0)], 0, WARMUP);
    log(`create+write+close x${N_CREATE}`);
    const createRaw: number[] = [];
    const createPortico: number[] = [];
    for (const d of ['c1', 'c2']) {
      const t = await interleaved(
        N_CREATE,
        BLOCKS,
        (from, to) => rawCreate(join(rawRoot, d), from, to, small),
        (from, to) => porticoCreate(s, `/${d}`, from, to, small),
      );
      createRaw.push(t.raw);
      createPortico.push(t.portico);
    }
    rows.push({
      workload: 'create+write 4K+close',
      unit: 'ops/s',
      raw: (N_CREATE / best(createRaw)) * 1000,
      portico: (N_CREATE / best(createPortico)) * 1000,
      ratio: best(createRaw) / best(createPortico),
      aim: AIM_SMALL,
      samplesMs: { raw: createRaw, portico: createPortico },
    });

    // 2. stat of existing files, round-robin
    log(`stat x${N_STAT}`);
    const rawPaths = Array.from({ length: N_CREATE }, (_, i) => join(rawRoot, 'c1', fileName(i)));
    const porticoPaths = Array.from({ length: N_CREATE }, (_, i) => `/c1/${fileName(i)}`);
    const statRaw: number[] = [];
    const statPortico: number[] = [];
    for (let r = 0; r < 2; r++) {
      const t = await interleaved(
        N_STAT,
        BLOCKS,
        (from, to) => rawStat(rawPaths, from, to),
        (from, to) => porticoStat(s, porticoPaths, from, to),
      );
      statRaw.push(t.raw);
      statPortico.push(t.portico);
    }
    rows.push({
      workload: 'stat (getattr)',
      unit: 'ops/s',
      raw: (N_STAT / best(statRaw)) * 1000,
      portico: (N_STAT / best(statPortico)) * 1000,
      ratio: best(statRaw) / best(statPortico),
      aim: AIM_SMALL,
      samplesMs: { raw: statRaw, portico: statPortico },
    });

    // 2b. by id (what NFS, SMB and FUSE send): per-operation µs through the session gate, warm
    // entries (the attribute and name caches answer; issue 9's aims: LOOKUP+GETATTR <= 5 µs,
    // open+read 4 KiB+close <= 30 µs). Raw baseline: the syscalls a server without caches makes
    // (a stat per LOOKUP and per GETATTR; open, pread, close).
    log(`by id x${N_STAT}`);
    const c1 = await s.lookup('s', (await s.getattr('s', '/')).id, 'c1');
    const ids: bigint[] = [];
    for (let i = 0; i < N_CREATE; i++) ids.push((await s.lookup('s', c1.id, fileName(i))).id);
    const names = Array.from({ length: N_CREATE }, (_, i) => fileName(i));
    const byId = { lookup: [] as number[], getattr: [] as number[], pair: [] as number[], rawPair: [] as number[], read: [] as number[], rawRead: [] as number[] };
    const readBuf = Buffer.alloc(SMALL);
    // Five rounds, the best counting: a round of 20,000 pairs lasts ~40 ms, so on a shared machine
    // one load spike covered both of two rounds (9.4 µs a pair at load 19, 1.6-1.9 µs in quiet
    // moments of the same hour).
    for (let r = 0; r < BY_ID_ROUNDS; r++) {
      const t1 = await interleaved(
        N_STAT,
        BLOCKS,
        async (from, to) => {
          for (let i = from; i < to; i++) {
            const p = rawPaths[i % rawPaths.length] as string;
            await fsp.stat(p);
            await fsp.stat(p);
          }
        },
        async (from, to) => {
          for (let i = from; i < to; i++) {
            const a = await s.lookup('s', c1.id, names[i % names.length] as string);
            await s.getattrById('s', a.id);
          }
        },
      );
      byId.rawPair.push(t1.raw);
      byId.pair.push(t1.portico);
      byId.lookup.push(await timed(async () => {
        for (let i = 0; i < N_STAT; i++) await s.lookup('s', c1.id, names[i % names.length] as string);
      }));
      byId.getattr.push(await timed(async () => {
        for (let i = 0; i < N_STAT; i++) await s.getattrById('s', ids[i % ids.length] as bigint);
      }));
      const t2 = await interleaved(
        N_CREATE,
        BLOCKS,
        async (from, to) => {
          for (let i = from; i < to; i++) {
            const fh = await fsp.open(rawPaths[i] as string, 'r');
            await fh.read(readBuf, 0, SMALL, 0);
            await fh.close();
          }
        },
        async (from, to) => {
          for (let i = from; i < to; i++) {
            const h = await s.openById('s', ids[i] as bigint, { access: RO, owner: 'bench' });
            await s.readInto(h, 0, readBuf);
            await s.close(h);
          }
        },
      );
      byId.rawRead.push(t2.raw);
      byId.read.push(t2.portico);
    }
    const us = (ms: number, n: number): number => (ms * 1000) / n;
    rows.push({ workload: 'by id: LOOKUP (warm)', unit: 'µs/op', raw: us(best(byId.rawPair), 2 * N_STAT), portico: us(best(byId.lookup), N_STAT), ratio: undefined, aim: undefined, note: 'raw: one stat' });
    rows.push({ workload: 'by id: GETATTR (warm)', unit: 'µs/op', raw: us(best(byId.rawPair), 2 * N_STAT), portico: us(best(byId.getattr), N_STAT), ratio: undefined, aim: undefined, note: 'raw: one stat' });
    rows.push({ workload: 'by id: LOOKUP+GETATTR', unit: 'µs/pair', raw: us(best(byId.rawPair), N_STAT), portico: us(best(byId.pair), N_STAT), ratio: best(byId.rawPair) / best(byId.pair), aim: undefined, note: 'aim <= 5 µs; raw: two stats', samplesMs: { raw: byId.rawPair, portico: byId.pair } });
    rows.push({ workload: 'by id: open+read 4K+close', unit: 'µs/op', raw: us(best(byId.rawRead), N_CREATE), portico: us(best(byId.read), N_CREATE), ratio: best(byId.rawRead) / best(byId.read), aim: undefined, note: 'aim <= 30 µs; raw: open, read, close', samplesMs: { raw: byId.rawRead, portico: byId.read } });

    // 2c. Session.readFile of 4 KiB (WebDAV GET's open, attributes, read, close in one gate; the
    // open/close path NFS OPEN/CLOSE and SMB CREATE/CLOSE share): CPU and heap bytes per operation,
    // raw = fs/promises open, read, close. Sides run one after the other (CPU time and allocation
    // counts are what this row is for; they hold under load where wall time does not).
    log(`readFile 4 KiB cost x${COST_OPS * COST_ROUNDS}`);
    const gc = fullGc();
    const costPaths = porticoPaths.slice(0, 200);
    for (let i = 0; i < WARMUP; i++) await s.readFile('s', costPaths[i % costPaths.length] as string, 'bench', (f) => f.read(0, readBuf));
    const costRaw = await opCost(async (i) => {
      const fh = await fsp.open(rawPaths[i % costPaths.length] as string, 'r');
      await fh.read(readBuf, 0, SMALL, 0);
      await fh.close();
    }, gc);
    const costPortico = await opCost((i) => s.readFile('s', costPaths[i % costPaths.length] as string, 'bench', (f) => f.read(0, readBuf)), gc);
    rows.push({ workload: 'readFile 4K (session)', unit: 'µs CPU/op', raw: costRaw.cpuUs, portico: costPortico.cpuUs, ratio: costRaw.cpuUs / costPortico.cpuUs, aim: undefined, note: 'raw: open, read, close; best of 5' });
    rows.push({ workload: 'readFile 4K (session)', unit: 'bytes alloc/op', raw: costRaw.bytes, portico: costPortico.bytes, ratio: undefined, aim: undefined, note: `heap growth, median of ${ALLOC_BATCHES} batches` });

    // 2d. create + write 4 KiB + close through the session (the small-file create of NFS
    // OPEN+WRITE+CLOSE, SMB CREATE+WRITE+CLOSE, FUSE create/write/release): CPU and heap bytes per
    // operation, each a new file (its id row, the directory's change, an audit line), raw =
    // fs/promises open('wx'), write, close in a sibling directory. The store's group commits land
    // inside the measured rounds. bench/create-cost.ts has the same path with more variants.
    log(`create 4 KiB cost x${COST_OPS * COST_ROUNDS}`);
    await fsp.mkdir(join(rawRoot, 'cc'));
    await s.mkdir('s', '/cc');
    let rawSeq = 0;
    let porticoSeq = 0;
    const createCostRaw = await opCost(async () => {
      const fh = await fsp.open(join(rawRoot, 'cc', fileName(rawSeq++)), 'wx');
      await fh.write(small, 0, SMALL, 0);
      await fh.close();
    }, gc);
    const createCostPortico = await opCost(async () => {
      const h = await s.open('s', `/cc/${fileName(porticoSeq++)}`, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
      await s.write(h, 0, small);
      await s.close(h);
    }, gc);
    rows.push({ workload: 'create+write 4K+close (session)', unit: 'µs CPU/op', raw: createCostRaw.cpuUs, portico: createCostPortico.cpuUs, ratio: createCostRaw.cpuUs / createCostPortico.cpuUs, aim: undefined, note: "raw: open('wx'), write, close; best of 5" });
    rows.push({ workload: 'create+write 4K+close (session)', unit: 'bytes alloc/op', raw: createCostRaw.bytes, portico: createCostPortico.bytes, ratio: undefined, aim: undefined, note: `heap growth, median of ${ALLOC_BATCHES} batches` });

    // 3. readdir with attributes of an N_DIR-entry directory
    log(`readdir ${N_DIR} entries x${LISTINGS}`);
    const empty = Buffer.alloc(0);
    const makeEntries = (dir: string): Promise<unknown> =>
      mapLimit(Array.from({ length: N_DIR }, (_, i) => i), 16, (i) => fsp.writeFile(join(dir, fileName(i)), empty));
    await makeEntries(join(rawRoot, 'big'));
    await makeEntries(join(stack.root, 'big'));
    const rawBig = join(rawRoot, 'big');
    // The first Portico listing also assigns persistent ids to 10,000 names it has never seen.
    let cold = 0;
    const coldMs = await timed(async () => void (cold = await porticoList(s, '/big')));
    if (cold !== N_DIR) throw new Error(`portico listed ${cold} entries, expected ${N_DIR}`);
    const listRaw: number[] = [];
    const listRawSeq: number[] = [];
    const listNames: number[] = [];
    const listPortico: number[] = [];
    for (let r = 0; r < LISTINGS; r++) {
      const runRaw = async (): Promise<void> => {
        let n = 0;
        listRaw.push(await timed(async () => void (n = await rawListWithAttrs(rawBig, LIST_STAT_CONCURRENCY))));
        if (n !== N_DIR) throw new Error(`raw listed ${n} entries, expected ${N_DIR}`);
        listRawSeq.push(await timed(async () => void (await rawListWithAttrs(rawBig, 1))));
        listNames.push(await timed(async () => void (await fsp.readdir(rawBig))));
      };
      const runPortico = async (): Promise<void> => {
        let n = 0;
        listPortico.push(await timed(async () => void (n = await porticoList(s, '/big'))));
        if (n !== N_DIR) throw new Error(`portico listed ${n} entries, expected ${N_DIR}`);
      };
      if (r % 2 === 0) {
        await runRaw();
        await runPortico();
      } else {
        await runPortico();
        await runRaw();
      }
    }
    const listRawMs = median(listRaw);
    const listPorticoMs = median(listPortico);
    rows.push({
      workload: `readdir+attrs ${N_DIR}`,
      unit: 'ms/listing',
      raw: listRawMs,
      portico: listPorticoMs,
      ratio: listRawMs / listPorticoMs,
      aim: AIM_SMALL,
      note: `raw: readdir + lstat x${LIST_STAT_CONCURRENCY} parallel; median of ${LISTINGS}`,
      samplesMs: { raw: listRaw, portico: listPortico },
    });
    rows.push({ workload: `readdir+attrs ${N_DIR}`, unit: 'ms/listing', raw: median(listRawSeq), portico: undefined, ratio: undefined, aim: undefined, note: 'raw: lstat sequential' });
    rows.push({ workload: `readdir names only ${N_DIR}`, unit: 'ms/listing', raw: median(listNames), portico: undefined, ratio: undefined, aim: undefined, note: 'raw' });
    rows.push({ workload: `readdir+attrs ${N_DIR}`, unit: 'ms/listing', raw: listRawMs, portico: coldMs, ratio: listRawMs / coldMs, aim: undefined, note: 'portico first listing: assigns ids' });

    // 4. streaming write and read, 1 MiB chunks
    const big = randomBytes(CHUNK);
    const wRaw: number[] = [];
    const rRaw: number[] = [];
    const rRawFresh: number[] = [];
    const wPortico: number[] = [];
    const rPortico: number[] = [];
    const rPorticoFresh: number[] = [];
    // Untimed: the first big write of a process pays for page-cache pages the (virtual) machine has
    // never touched (measured 3.6 s vs 0.36 s for 1 GiB); whoever ran first would carry that alone.
    log(`stream ${SIZE_MB} MiB warm-up (untimed)`);
    flushDirtyPages();
    await rawWriteBig(join(rawRoot, 'stream0'), big);
    await rawReadBig(join(rawRoot, 'stream0'), true);
    await fsp.unlink(join(rawRoot, 'stream0'));
    await porticoWriteBig(s, '/stream0', big);
    await porticoReadBig(s, '/stream0', true);
    await s.unlink('s', '/stream0');
    const streamRaw = async (round: number): Promise<void> => {
      log(`stream ${SIZE_MB} MiB round ${round}: raw`);
      const rawFile = join(rawRoot, `stream${round}`);
      flushDirtyPages();
      wRaw.push(await timed(() => rawWriteBig(rawFile, big)));
      let got = 0;
      rRaw.push(await timed(async () => void (got = await rawReadBig(rawFile, false))));
      if (got !== SIZE) throw new Error(`raw read ${got} bytes, expected ${SIZE}`);
      rRawFresh.push(await timed(async () => void (await rawReadBig(rawFile, true))));
      await fsp.unlink(rawFile);
    };
    const streamPortico = async (round: number): Promise<void> => {
      log(`stream ${SIZE_MB} MiB round ${round}: portico`);
      const pFile = `/stream${round}`;
      flushDirtyPages();
      wPortico.push(await timed(() => porticoWriteBig(s, pFile, big)));
      let got = 0;
      rPortico.push(await timed(async () => void (got = await porticoReadBig(s, pFile, true))));
      if (got !== SIZE) throw new Error(`portico read ${got} bytes, expected ${SIZE}`);
      rPorticoFresh.push(await timed(async () => void (await porticoReadBig(s, pFile, false))));
      await s.unlink('s', pFile);
    };
    for (let round = 1; round <= STREAM_ROUNDS; round++) {
      if (round % 2 === 1) {
        await streamRaw(round);
        await streamPortico(round);
      } else {
        await streamPortico(round);
        await streamRaw(round);
      }
    }
    const mbps = (ms: number): number => SIZE / CHUNK / (ms / 1000);
    rows.push({ workload: `seq write ${SIZE_MB} MiB`, unit: 'MiB/s', raw: mbps(best(wRaw)), portico: mbps(best(wPortico)), ratio: best(wRaw) / best(wPortico), aim: AIM_STREAM, samplesMs: { raw: wRaw, portico: wPortico } });
    rows.push({ workload: `seq read ${SIZE_MB} MiB`, unit: 'MiB/s', raw: mbps(best(rRaw)), portico: mbps(best(rPortico)), ratio: best(rRaw) / best(rPortico), aim: AIM_STREAM, note: 'both: one reused buffer (readInto)', samplesMs: { raw: rRaw, portico: rPortico } });
    rows.push({ workload: `seq read ${SIZE_MB} MiB`, unit: 'MiB/s', raw: mbps(best(rRawFresh)), portico: mbps(best(rPorticoFresh)), ratio: best(rRawFresh) / best(rPorticoFresh), aim: undefined, note: 'both: new buffer per chunk (read)', samplesMs: { raw: rRawFresh, portico: rPorticoFresh } });
  } finally {
    await stack.close().catch((e: unknown) => log(`close failed: ${String(e)}`));
    const peak = peakRss();
    const auditLines = (() => {
      try {
        return readFileSync(stack.auditFile, 'utf8').split('\n').filter((l) => l.length > 0).length;
      } catch {
        return 0;
      }
    })();
    const requests = await counterTotal(stack.metrics, 'portico_requests_total');
    const backendCalls = await counterTotal(stack.metrics, 'portico_backend_requests_total');
    await fsp.rm(base, { recursive: true, force: true });

    console.log(renderTable(rows));
    console.log('');
    console.log(`ratio = Portico speed / raw speed (ms rows: raw ms / Portico ms). Aims are informational; the exit code ignores them.`);
    console.log(`gate evidence: ${requests.toLocaleString('en-US')} requests in portico_requests_total, ${backendCalls.toLocaleString('en-US')} in portico_backend_requests_total, ${auditLines.toLocaleString('en-US')} audit lines written`);
    console.log(`peak RSS: ${(peak / 1024 / 1024).toFixed(0)} MiB`);
    const json = {
      bench: 'vfs',
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cpus: cpus().length,
      quick: QUICK,
      streamMiB: SIZE_MB,
      counts: { create: N_CREATE, stat: N_STAT, dirEntries: N_DIR, listings: LISTINGS, streamRounds: STREAM_ROUNDS, blocks: BLOCKS },
      gate: { metrics: true, instrumentedBackend: true, audit: true, requests, backendCalls, auditLines },
      peakRssBytes: peak,
      results: rows.map((r) => ({
        workload: r.workload,
        note: r.note ?? null,
        unit: r.unit,
        raw: r.raw,
        portico: r.portico ?? null,
        ratio: r.ratio ?? null,
        aim: r.aim ?? null,
        verdict: verdict(r),
        samplesMs: r.samplesMs ?? null,
      })),
    };
    console.log(JSON.stringify(json));
  }
}

await main();
