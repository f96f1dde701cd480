/**
 * NFS benchmark: Portico against nfs-ganesha (FSAL_VFS), both serving the SAME directory (prepared
 * once) as /share over NFSv4.1 on 127.0.0.1, measured in one run by the same client: the project's
 * NFSv4.1 client (test/nfs/client41.ts's encoders and readers) on one pipelining connection with a
 * slot table (bench/peers/nfs41-pipe.ts). No kernel mount: this machine's kernel has no NFS client,
 * and Debian's fio has no NFS engine. Both servers are started first; each figure is then measured
 * on them in turn, the order swapped every round (A B, B A, ...: ABBA), so a shared machine's
 * changing load weighs on both alike.
 *
 *   npm run bench:nfs                 1 GiB file, 1,000 files per small-file figure, 10,000 entries
 *   BENCH_QUICK=1 npm run bench:nfs   128 MiB, 300 files, 1,000 entries
 *   BENCH_SERVERS=portico             Portico alone (no ganesha)
 *   BENCH_METRICS=readdir,getattr     only those figures (keys: readBig writeBig smallCycle smallRead
 *                                     getattr lookup readdir)
 *   BENCH_PORTICO_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'   node options for Portico (profiles)
 *   BENCH_REPEAT=4                    every figure 4 times over (A/B of CPU per op: more clock ticks)
 *   BENCH_PORTICO_BASE=/tmp/base/bin/portico.js   also a baseline tree's Portico ("base"), measured
 *                                     in the same run, interleaved, with its CPU per op next to this
 *                                     tree's (A/B of a change; BENCH_SERVERS=portico,base without ganesha)
 *   BENCH_BASE_NODE_ARGS='...'        node options for "base" alone (default: BENCH_PORTICO_NODE_ARGS);
 *                                     with BENCH_PORTICO_BASE=<this tree>/bin/portico.js, an A/B of a node option
 *
 * Figures (the COMPOUNDs are those a Linux 4.1 client sends for the same work):
 * - read / write of the big file: OPEN, READ or UNSTABLE WRITE in IO-size pieces with 8 in flight,
 *   (COMMIT,) CLOSE; MB/s (10^6 B/s), best of 2. The write is timed until COMMIT answered (durable
 *   on both: Portico fsyncs, ganesha fsyncs); dirty pages are written back before each.
 * - small-file cycle: N × (OPEN GUARDED create + GETFH; WRITE 4 KiB FILE_SYNC; CLOSE; GETATTR;
 *   REMOVE), five COMPOUNDs per file, 16 files at a time; files/s over all slices.
 * - small-file read: N × (OPEN + GETFH; READ 4 KiB; CLOSE) of existing files, 16 at a time; files/s.
 * - GETATTR (PUTFH + GETATTR of the 15 attributes Linux revalidates) and LOOKUP (PUTFH + LOOKUP +
 *   GETFH + GETATTR, each a different name of the big directory) with 16 outstanding; ops/s.
 * - READDIR of the 10,000-entry directory with the attributes of Linux's readdirplus, 32 KiB
 *   replies (dircount 16 KiB), cookie and verifier chained page after page; ms, median of 5.
 * Next to each: the server process's CPU time per operation (utime + stime from /proc/PID/stat over
 * the figure), which the machine's other load disturbs much less than wall-clock rates.
 *
 * Portico runs as deployed by default (audit trail on, to a file); ganesha logs at EVENT level.
 * Both warm up first (one READDIR pass of the big directory, one GETATTR of each small file), so
 * the figures compare warm caches; Portico's first access to a name (creating its persistent id)
 * is in that warm-up, not in the figures. The script never exits non-zero because of a ratio.
 * Missing ganesha is installed with apt-get (`nfs-ganesha nfs-ganesha-vfs`); if it cannot be
 * installed or started, Portico's figures are printed alone with the reason.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FATTR4, OP } from '../protocols/nfs/nfs4-types.ts';
import { XdrReader } from '../protocols/nfs/xdr.ts';
import { flushDirtyPages, mapLimit, median } from './lib.ts';
import { aptInstall } from './peers/peers.ts';
import { Nfs41Pipe, ops, resultOf, type CompoundReply, type OpEnc, type Stateid } from './peers/nfs41-pipe.ts';
import { startGanesha, startPorticoNfs, type NfsServerProcess } from './peers/nfs-servers.ts';

const QUICK = process.env.BENCH_QUICK === '1';
/** BENCH_METRICS=readdir,getattr measures only those (for profiling). */
const ONLY_METRICS = process.env.BENCH_METRICS ? new Set(process.env.BENCH_METRICS.split(',').map((s) => s.trim())) : undefined;
const ONLY = process.env.BENCH_SERVERS ? new Set(process.env.BENCH_SERVERS.split(',').map((s) => s.trim())) : undefined;
/** A baseline tree's bin/portico.js, run as server "base" next to this tree's (A/B). */
const BASE_BIN = process.env.BENCH_PORTICO_BASE;
const MIB = 1024 * 1024;
const BIG_BYTES = QUICK ? 128 * MIB : 1024 * MIB;
const BIG_LABEL = QUICK ? '128 MiB' : '1 GiB';
const SMALL_FILES = QUICK ? 300 : 1000;
const SMALL_BYTES = 4096;
const ENTRIES = QUICK ? 1000 : 10_000;
const META_OPS = QUICK ? 8000 : 40_000;
/** BENCH_REPEAT=N: every figure N times over (its rounds and slices; for A/B of CPU per op, whose clock ticks are 10 ms). */
const REPEAT = Math.max(1, Math.floor(Number(process.env.BENCH_REPEAT ?? '1')) || 1);
const BIG_ROUNDS = 2 * REPEAT;
const SLICES = 4;
const READDIR_ROUNDS = 5 * REPEAT;
const IO_IN_FLIGHT = 8;
const CONCURRENCY = 16;
const FILE_SYNC = 2;
const UNSTABLE = 0;
const CLK_TCK = 100;

/** What Linux asks on revalidation (nfs4_fattr_bitmap). */
const LINUX_ATTRS = [FATTR4.TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.FSID, FATTR4.FILEID, FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.RAWDEV, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_METADATA, FATTR4.TIME_MODIFY, FATTR4.MOUNTED_ON_FILEID];
/** Linux's readdirplus attributes: the revalidation set plus rdattr_error and the filehandle. */
const READDIR_ATTRS = [...LINUX_ATTRS, FATTR4.RDATTR_ERROR, FATTR4.FILEHANDLE];
const READDIR_MAXCOUNT = 32 * 1024;
const READDIR_DIRCOUNT = 16 * 1024;

const log = (line: string): void => void process.stderr.write(`[nfs-bench] ${line}\n`);

type Metric = 'readBig' | 'writeBig' | 'smallCycle' | 'smallRead' | 'getattr' | 'lookup' | 'readdir';
const METRICS: { key: Metric; label: string; unit: string; higherIsBetter: boolean }[] = [
  { key: 'readBig', label: `READ ${BIG_LABEL}`, unit: 'MB/s', higherIsBetter: true },
  { key: 'writeBig', label: `WRITE ${BIG_LABEL} + COMMIT`, unit: 'MB/s', higherIsBetter: true },
  { key: 'smallCycle', label: `${SMALL_FILES} x create+write 4K+close+getattr+remove c=${CONCURRENCY}`, unit: 'files/s', higherIsBetter: true },
  { key: 'smallRead', label: `${SMALL_FILES} x open+read 4K+close c=${CONCURRENCY}`, unit: 'files/s', higherIsBetter: true },
  { key: 'getattr', label: `GETATTR c=${CONCURRENCY}`, unit: 'ops/s', higherIsBetter: true },
  { key: 'lookup', label: `LOOKUP+GETFH+GETATTR c=${CONCURRENCY}`, unit: 'ops/s', higherIsBetter: true },
  { key: 'readdir', label: `READDIR ${ENTRIES.toLocaleString('en-US')} entries`, unit: 'ms', higherIsBetter: false },
];

// ---------------------------------------------------------------- helpers

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

function fhOf(r: CompoundReply): Buffer {
  const fh = resultOf(r, OP.GETFH)?.body?.fh;
  if (!Buffer.isBuffer(fh)) throw new Error('no GETFH result');
  return fh;
}

function openedOf(r: CompoundReply): { fh: Buffer; sid: Stateid } {
  const sid = resultOf(r, OP.OPEN)?.body?.stateid as Stateid | undefined;
  if (!sid) throw new Error('no OPEN result');
  return { fh: fhOf(r), sid };
}

/** READDIR with the cookie verifier carried from page to page (client41's encoder sends zeros). */
function readdirOp(cookie: bigint, verifier: Buffer): OpEnc {
  return {
    op: OP.READDIR,
    write: (w) => {
      w.u32(OP.READDIR).u64(cookie).opaqueFixed(verifier).u32(READDIR_DIRCOUNT).u32(READDIR_MAXCOUNT);
      const words: number[] = [];
      for (const a of READDIR_ATTRS) {
        while (words.length <= a >> 5) words.push(0);
        words[a >> 5] = ((words[a >> 5] ?? 0) | (1 << (a & 31))) >>> 0;
      }
      w.u32Array(words);
    },
  };
}

/** A SEQUENCE + PUTFH + READDIR reply: entries' count, the last cookie, the verifier, eof. */
function parseReaddir(raw: Buffer): { count: number; last: bigint; verifier: Buffer; eof: boolean } {
  const r = new XdrReader(raw);
  if (r.u32() !== 0) throw new Error('READDIR failed');
  r.opaque(1024);
  r.u32();
  r.u32(); // SEQUENCE
  r.u32();
  r.opaqueFixed(16);
  for (let i = 0; i < 5; i++) r.u32();
  r.u32(); // PUTFH
  r.u32();
  r.u32(); // READDIR
  r.u32();
  const verifier = Buffer.from(r.opaqueFixed(8));
  let count = 0;
  let last = 0n;
  while (r.bool()) {
    last = r.u64();
    r.opaque(1024);
    r.u32Array(64);
    r.opaque(1 << 20);
    count++;
  }
  return { count, last, verifier, eof: r.bool() };
}

// ---------------------------------------------------------------- per server

interface Contender {
  name: string;
  server: NfsServerProcess;
  pipe: Nfs41Pipe;
  share: Buffer;
  dir: Buffer;
  small: Buffer;
  put: Buffer;
  /** Filehandles of small/f<i> (from the warm-up). */
  smallFhs: Buffer[];
  figures: Partial<Record<Metric, number>>;
  cpuUsPerOp: Partial<Record<Metric, number>>;
  samples: Partial<Record<Metric, number[]>>;
  errors: Partial<Record<Metric, string>>;
}

async function attach(name: string, server: NfsServerProcess): Promise<Contender> {
  const pipe = await Nfs41Pipe.open(server.port, { slots: 64 });
  const fh = async (path: string[]): Promise<Buffer> => fhOf(await pipe.call([ops.putrootfh(), ...path.map((p) => ops.lookup(p)), ops.getfh()], `LOOKUP ${path.join('/')}`));
  const c: Contender = {
    name,
    server,
    pipe,
    share: await fh(['share']),
    dir: await fh(['share', 'dir']),
    small: await fh(['share', 'small']),
    put: await fh(['share', `put-${name}`]),
    smallFhs: [],
    figures: {},
    cpuUsPerOp: {},
    samples: {},
    errors: {},
  };
  log(`${name}: session with ${pipe.fore.slots} slots, max request ${pipe.fore.maxRequest} B, max response ${pipe.fore.maxResponse} B`);
  return c;
}

async function readdirAll(c: Contender): Promise<number> {
  let cookie = 0n;
  let verifier: Buffer = Buffer.alloc(8);
  let total = 0;
  for (let pages = 0; pages < 100_000; pages++) {
    const r = await c.pipe.call([ops.putfh(c.dir), readdirOp(cookie, verifier)], 'READDIR');
    const p = parseReaddir(r.raw);
    total += p.count;
    verifier = p.verifier;
    if (p.eof) return total;
    if (p.count === 0) throw new Error('READDIR: empty page without eof');
    cookie = p.last;
  }
  throw new Error('READDIR: no eof after 100,000 pages');
}

async function warmUp(c: Contender): Promise<void> {
  const n = await readdirAll(c);
  if (n !== ENTRIES) throw new Error(`${c.name}: READDIR listed ${n} entries, expected ${ENTRIES}`);
  c.smallFhs = await mapLimit(
    Array.from({ length: SMALL_FILES }, (_, i) => i),
    CONCURRENCY,
    async (i) => fhOf(await c.pipe.call([ops.putfh(c.small), ops.lookup(`f${i}`), ops.getfh(), ops.getattr(LINUX_ATTRS)], 'LOOKUP small')),
  );
}

async function readBig(c: Contender, io: number, block: Buffer): Promise<void> {
  const o = openedOf(await c.pipe.call([ops.putfh(c.share), ops.open(0n, 'bench', 'big.bin', { access: 1 }), ops.getfh()], 'OPEN big'));
  const idx = Array.from({ length: BIG_BYTES / io }, (_, i) => i);
  await mapLimit(idx, IO_IN_FLIGHT, async (i) => {
    const off = i * io;
    const r = await c.pipe.call([ops.putfh(o.fh), ops.read(o.sid, BigInt(off), io)], 'READ');
    const data = resultOf(r, OP.READ)?.body?.data as Buffer;
    if (data.length !== io || !data.equals(block.subarray(off % block.length, (off % block.length) + io))) throw new Error(`READ at ${off}: ${data.length} bytes, not the file's`);
  });
  await c.pipe.call([ops.putfh(o.fh), ops.close(o.sid)], 'CLOSE big');
}

async function writeBig(c: Contender, io: number, block: Buffer, name: string): Promise<void> {
  const o = openedOf(await c.pipe.call([ops.putfh(c.put), ops.open(0n, 'bench', name, { access: 2, create: 'guarded' }), ops.getfh()], 'OPEN create big'));
  const idx = Array.from({ length: BIG_BYTES / io }, (_, i) => i);
  await mapLimit(idx, IO_IN_FLIGHT, async (i) => {
    const off = i * io;
    const r = await c.pipe.call([ops.putfh(o.fh), ops.write(o.sid, BigInt(off), block.subarray(off % block.length, (off % block.length) + io), UNSTABLE)], 'WRITE');
    const n = resultOf(r, OP.WRITE)?.body?.count;
    if (n !== io) throw new Error(`WRITE at ${off}: ${String(n)} of ${io} bytes`);
  });
  await c.pipe.call([ops.putfh(o.fh), ops.commit()], 'COMMIT');
  await c.pipe.call([ops.putfh(o.fh), ops.close(o.sid)], 'CLOSE big');
}

async function smallCycle(c: Contender, i: number, payload: Buffer): Promise<void> {
  const name = `s${i}`;
  const o = openedOf(await c.pipe.call([ops.putfh(c.put), ops.open(0n, 'bench', name, { access: 3, create: 'guarded' }), ops.getfh()], 'OPEN create'));
  const w = await c.pipe.call([ops.putfh(o.fh), ops.write(o.sid, 0n, payload, FILE_SYNC)], 'WRITE 4K');
  if (resultOf(w, OP.WRITE)?.body?.count !== payload.length) throw new Error('WRITE 4K: short');
  await c.pipe.call([ops.putfh(o.fh), ops.close(o.sid)], 'CLOSE');
  await c.pipe.call([ops.putfh(o.fh), ops.getattr(LINUX_ATTRS)], 'GETATTR');
  await c.pipe.call([ops.putfh(c.put), ops.remove(name)], 'REMOVE');
}

async function smallRead(c: Contender, i: number): Promise<void> {
  const o = openedOf(await c.pipe.call([ops.putfh(c.small), ops.open(0n, 'bench', `f${i}`, { access: 1 }), ops.getfh()], 'OPEN'));
  const r = await c.pipe.call([ops.putfh(o.fh), ops.read(o.sid, 0n, SMALL_BYTES)], 'READ 4K');
  if ((resultOf(r, OP.READ)?.body?.data as Buffer).length !== SMALL_BYTES) throw new Error('READ 4K: short');
  await c.pipe.call([ops.putfh(o.fh), ops.close(o.sid)], 'CLOSE');
}

// ---------------------------------------------------------------- measurement

/** Runs `fn` for each contender, `rounds` times, the order swapped every round (ABBA...). */
async function interleave(cs: Contender[], key: Metric, rounds: number, fn: (c: Contender, round: number) => Promise<{ ms: number; ops: number }>): Promise<Map<string, { ms: number[]; ops: number[]; cpu: number }>> {
  const acc = new Map<string, { ms: number[]; ops: number[]; cpu: number }>();
  if (ONLY_METRICS && !ONLY_METRICS.has(key)) return acc;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? cs : [...cs].reverse();
    for (const c of order) {
      if (c.errors[key] !== undefined) continue;
      const t0 = cpuTicks(c.server.pid);
      try {
        const r = await fn(c, round);
        let a = acc.get(c.name);
        if (!a) acc.set(c.name, (a = { ms: [], ops: [], cpu: 0 }));
        a.ms.push(r.ms);
        a.ops.push(r.ops);
        a.cpu += (cpuTicks(c.server.pid) - t0) / CLK_TCK;
      } catch (e) {
        c.errors[key] = e instanceof Error ? e.message : String(e);
        log(`${c.name} ${key}: ${c.errors[key]}`);
      }
    }
  }
  return acc;
}

async function timedOps(n: number, fn: () => Promise<void>): Promise<{ ms: number; ops: number }> {
  const t0 = performance.now();
  await fn();
  return { ms: performance.now() - t0, ops: n };
}

async function measureAll(cs: Contender[], io: number): Promise<void> {
  const block = randomBytes(MIB);
  // Big read: the prepared file (written from the same 1 MiB block over and over).
  {
    const res = await interleave(cs, 'readBig', BIG_ROUNDS, (c) => timedOps(BIG_BYTES / io, () => readBig(c, io, bigBlock)));
    record(cs, 'readBig', res, (a) => BIG_BYTES / 1e6 / (Math.min(...a.ms) / 1000));
  }
  {
    const res = await interleave(cs, 'writeBig', BIG_ROUNDS, async (c, round) => {
      flushDirtyPages();
      const name = `big-${round}.bin`;
      const r = await timedOps(BIG_BYTES / io, () => writeBig(c, io, block, name));
      await c.pipe.call([ops.putfh(c.put), ops.remove(name)], 'REMOVE big');
      return r;
    });
    record(cs, 'writeBig', res, (a) => BIG_BYTES / 1e6 / (Math.min(...a.ms) / 1000));
  }
  const perSlice = Math.ceil(SMALL_FILES / SLICES);
  const sliceIdx = (round: number): number[] => {
    const first = (round % SLICES) * perSlice;
    return Array.from({ length: Math.max(0, Math.min(perSlice, SMALL_FILES - first)) }, (_, k) => first + k);
  };
  const rate = (a: { ms: number[]; ops: number[] }): number => a.ops.reduce((x, y) => x + y, 0) / (a.ms.reduce((x, y) => x + y, 0) / 1000);
  const payload = randomBytes(SMALL_BYTES);
  {
    const res = await interleave(cs, 'smallCycle', SLICES * REPEAT, (c, round) => {
      const idx = sliceIdx(round);
      return timedOps(idx.length, () => mapLimit(idx, CONCURRENCY, (i) => smallCycle(c, i, payload)).then(() => undefined));
    });
    record(cs, 'smallCycle', res, rate);
  }
  {
    const res = await interleave(cs, 'smallRead', SLICES * REPEAT, (c, round) => {
      const idx = sliceIdx(round);
      return timedOps(idx.length, () => mapLimit(idx, CONCURRENCY, (i) => smallRead(c, i)).then(() => undefined));
    });
    record(cs, 'smallRead', res, rate);
  }
  {
    const per = Math.ceil(META_OPS / SLICES);
    const res = await interleave(cs, 'getattr', SLICES * REPEAT, (c) => {
      const idx = Array.from({ length: per }, (_, k) => k);
      return timedOps(per, () =>
        mapLimit(idx, CONCURRENCY, async (k) => {
          await c.pipe.call([ops.putfh(c.smallFhs[k % c.smallFhs.length]!), ops.getattr(LINUX_ATTRS)], 'GETATTR');
        }).then(() => undefined),
      );
    });
    record(cs, 'getattr', res, rate);
  }
  {
    const per = Math.ceil(ENTRIES / SLICES);
    const res = await interleave(cs, 'lookup', SLICES * REPEAT, (c, round) => {
      const first = (round % SLICES) * per;
      const idx = Array.from({ length: Math.min(per, ENTRIES - first) }, (_, k) => first + k);
      return timedOps(idx.length, () =>
        mapLimit(idx, CONCURRENCY, async (k) => {
          await c.pipe.call([ops.putfh(c.dir), ops.lookup(entryName(k)), ops.getfh(), ops.getattr(LINUX_ATTRS)], 'LOOKUP');
        }).then(() => undefined),
      );
    });
    record(cs, 'lookup', res, rate);
  }
  {
    const res = await interleave(cs, 'readdir', READDIR_ROUNDS, async (c) => {
      const t0 = performance.now();
      const n = await readdirAll(c);
      const ms = performance.now() - t0;
      if (n !== ENTRIES) throw new Error(`READDIR listed ${n} entries, expected ${ENTRIES}`);
      return { ms, ops: 1 };
    });
    record(cs, 'readdir', res, (a) => median(a.ms));
  }
}

function record(cs: Contender[], key: Metric, res: Map<string, { ms: number[]; ops: number[]; cpu: number }>, figure: (a: { ms: number[]; ops: number[] }) => number): void {
  for (const c of cs) {
    const a = res.get(c.name);
    if (!a || c.errors[key] !== undefined) continue;
    c.figures[key] = figure(a);
    c.samples[key] = a.ms.map((x) => Math.round(x * 10) / 10);
    const n = a.ops.reduce((x, y) => x + y, 0);
    c.cpuUsPerOp[key] = (a.cpu * 1e6) / n;
  }
}

// ---------------------------------------------------------------- data set

let dataDir = '';
let bigBlock: Buffer = Buffer.alloc(0);
const entryName = (i: number): string => `entry-${String(i).padStart(5, '0')}.txt`;

function prepare(base: string, servers: string[]): string {
  const data = join(base, 'share');
  mkdirSync(join(data, 'dir'), { recursive: true });
  mkdirSync(join(data, 'small'));
  for (const s of servers) mkdirSync(join(data, `put-${s}`));
  log(`preparing ${data}: ${BIG_LABEL} file, ${SMALL_FILES} x 4 KiB, ${ENTRIES} entries`);
  bigBlock = randomBytes(MIB);
  const big = join(data, 'big.bin');
  writeFileSync(big, Buffer.alloc(0));
  // Only the big read needs the big file (BENCH_METRICS without readBig: an empty one, much quicker).
  if (!ONLY_METRICS || ONLY_METRICS.has('readBig')) for (let left = BIG_BYTES; left > 0; left -= MIB) writeFileSync(big, bigBlock, { flag: 'a' });
  for (let i = 0; i < SMALL_FILES; i++) writeFileSync(join(data, 'small', `f${i}`), randomBytes(SMALL_BYTES));
  const entry = Buffer.alloc(100, 'x');
  for (let i = 0; i < ENTRIES; i++) writeFileSync(join(data, 'dir', entryName(i)), entry);
  return data;
}

// ---------------------------------------------------------------- report

function fmt(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  if (n >= 1000) return Math.round(n).toLocaleString('en-US');
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function table(head: string[], rows: string[][], leftCols = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < leftCols ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'portico-nfs-bench-'));
  const skipped: Record<string, string> = {};
  const started: NfsServerProcess[] = [];
  const cs: Contender[] = [];
  const loadStart = load();
  let io = MIB;
  let keepAlive: NodeJS.Timeout | undefined;
  try {
    const wantGanesha = !ONLY || ONLY.has('ganesha');
    if (wantGanesha) {
      const failed = aptInstall(['nfs-ganesha', 'nfs-ganesha-vfs'], log);
      if (failed.size > 0) skipped.ganesha = `apt-get could not install ${[...failed].map(([p, why]) => `${p}: ${why}`).join('; ')}`;
    }
    const names = ['portico', ...(BASE_BIN ? ['base'] : []), ...(wantGanesha && !skipped.ganesha ? ['ganesha'] : [])];
    dataDir = prepare(base, names);
    for (const name of names) {
      log(`${name}: starting`);
      let server: NfsServerProcess;
      try {
        server = name === 'portico' ? await startPorticoNfs(dataDir) : name === 'base' ? await startPorticoNfs(dataDir, BASE_BIN, 'base') : await startGanesha(dataDir);
      } catch (e) {
        if (name === 'portico') throw e;
        skipped[name] = `did not start: ${e instanceof Error ? e.message : String(e)}`;
        log(`skipping ${name}: ${skipped[name]}`);
        continue;
      }
      started.push(server);
      log(`${name}: listening on 127.0.0.1:${server.port} (pid ${server.pid})`);
      try {
        cs.push(await attach(name, server));
      } catch (e) {
        if (name === 'portico') throw e;
        skipped[name] = `client could not attach: ${e instanceof Error ? e.message : String(e)}\n${server.logTail()}`;
        log(`skipping ${name}: ${skipped[name]}`);
      }
    }
    // One I/O size for every server: the largest power of two up to 1 MiB that every session's
    // channel takes with room for the headers.
    for (const c of cs) {
      const fit = Math.min(c.pipe.fore.maxRequest, c.pipe.fore.maxResponse) - 4096;
      while (io > fit && io > 4096) io >>= 1;
    }
    // A SEQUENCE every 15 s on each session: the figures measured on the other servers can take
    // longer than a lease (three servers under load: ganesha answered the OPEN after them
    // NFS4ERR_EXPIRED, then BADSESSION to everything).
    keepAlive = setInterval(() => {
      for (const c of cs) void c.pipe.call([], 'SEQUENCE (lease)').catch(() => undefined);
    }, 15_000);
    log(`I/O size ${io} bytes; warming up`);
    for (const c of cs) await warmUp(c);
    log(`measuring ${cs.map((c) => c.name).join(', ')}, interleaved (load average ${load()})`);
    await measureAll(cs, io);
  } finally {
    if (keepAlive) clearInterval(keepAlive);
    for (const c of cs) c.pipe.close();
    for (const s of started) await s.stop().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  }
  const loadEnd = load();

  const servers = cs.map((c) => c.name);
  const byName = new Map(cs.map((c) => [c.name, c]));
  const p = byName.get('portico')!;
  const g = byName.get('ganesha');
  const out: string[] = [];
  out.push(`NFS benchmark${QUICK ? ' (BENCH_QUICK=1)' : ''}: NFSv4.1 over TCP on 127.0.0.1, one connection, the project's client pipelining (${IO_IN_FLIGHT} big I/Os or ${CONCURRENCY} COMPOUNDs in flight), I/O size ${io / 1024} KiB`);
  out.push(`Same directory; all servers up at once, each figure measured on them in turn (order swapped every round: big ${BIG_ROUNDS} rounds (best), small/metadata ${SLICES * REPEAT} slices, READDIR ${READDIR_ROUNDS} rounds (median)).`);
  out.push(`Load average (1/5/15 min): ${loadStart} at start, ${loadEnd} at end; ${process.env.BENCH_NOTE ?? ''}`.trimEnd());
  for (const [name, why] of Object.entries(skipped)) out.push(`Skipped ${name}: ${why}`);
  out.push('');
  out.push(
    table(
      ['metric', 'unit', ...servers, ...servers.map((s) => `${s} cpu µs/op`)],
      METRICS.map((m) => [
        m.label,
        m.unit,
        ...servers.map((s) => (byName.get(s)!.errors[m.key] ? 'error' : fmt(byName.get(s)!.figures[m.key]))),
        ...servers.map((s) => fmt(byName.get(s)!.cpuUsPerOp[m.key])),
      ]),
      2,
    ),
  );
  const ratios: Partial<Record<Metric, { speed?: number; cpu?: number }>> = {};
  if (g) {
    out.push('');
    out.push('ratio = Portico / ganesha speed (> 1: Portico faster; READDIR: ganesha ms / Portico ms); cpu = ganesha CPU per op / Portico CPU per op (> 1: Portico cheaper); aim >= 1.0x');
    const rows = METRICS.map((m) => {
      const a = p.figures[m.key];
      const b = g.figures[m.key];
      const speed = a !== undefined && b !== undefined && a > 0 && b > 0 ? (m.higherIsBetter ? a / b : b / a) : undefined;
      const ca = p.cpuUsPerOp[m.key];
      const cb = g.cpuUsPerOp[m.key];
      const cpu = ca !== undefined && cb !== undefined && ca > 0 && cb > 0 ? cb / ca : undefined;
      ratios[m.key] = { ...(speed !== undefined ? { speed } : {}), ...(cpu !== undefined ? { cpu } : {}) };
      return [m.label, speed === undefined ? '-' : `${speed.toFixed(2)}x ${speed >= 1 ? 'PASS' : 'BELOW'}`, cpu === undefined ? '-' : `${cpu.toFixed(2)}x`];
    });
    out.push(table(['metric', 'speed ratio', 'cpu ratio'], rows));
  }
  const baseC = byName.get('base');
  if (baseC) {
    out.push('');
    out.push('A/B: base CPU per op / this tree\'s CPU per op (> 1: this tree cheaper)');
    out.push(table(['metric', 'cpu base/portico'], METRICS.map((m) => {
      const a = p.cpuUsPerOp[m.key];
      const b = baseC.cpuUsPerOp[m.key];
      return [m.label, a !== undefined && b !== undefined && a > 0 && b > 0 ? `${(b / a).toFixed(2)}x` : '-'];
    })));
  }
  for (const c of cs) for (const [k, e] of Object.entries(c.errors)) out.push(`error: ${c.name} ${k}: ${e}`);
  process.stdout.write(out.join('\n') + '\n');
  const json = {
    bench: 'nfs',
    quick: QUICK,
    sizes: { bigBytes: BIG_BYTES, ioBytes: io, smallFiles: SMALL_FILES, smallBytes: SMALL_BYTES, entries: ENTRIES, metaOps: META_OPS, concurrency: CONCURRENCY, ioInFlight: IO_IN_FLIGHT },
    loadavg: { start: loadStart, end: loadEnd },
    units: Object.fromEntries(METRICS.map((m) => [m.key, m.unit])),
    servers: Object.fromEntries(cs.map((c) => [c.name, { figures: c.figures, cpuUsPerOp: c.cpuUsPerOp, samplesMs: c.samples, errors: c.errors }])),
    ratios,
    skipped,
  };
  process.stdout.write(JSON.stringify(json) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`nfs-bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
