/**
 * Server CPU per operation of bench:nfs's small-file cycle, one COMPOUND kind at a time: what an
 * OPEN create, a 4 KiB FILE_SYNC WRITE, a CLOSE, a GETATTR and a REMOVE each cost the server
 * (the on-CPU time of all its threads, /proc/PID/task/<tid>/schedstat: nanoseconds, not the 10 ms
 * ticks of /proc/PID/stat). bench:nfs's figure runs the five as one chain per file, 16 chains at a time, and gives
 * one number per cycle; this splits it. The files go in batches of BENCH_BATCH (default 64): each
 * phase (all OPENs of the batch, then all WRITEs, ...) with 16 COMPOUNDs in flight, each sent as
 * soon as a slot frees (so requests arrive one by one, as in the chained cycle); BENCH_BURST=1
 * sends a phase's COMPOUNDs 16 at a time and waits for all 16 (they arrive together: a server
 * can batch them). Servers are measured in turn, the order swapped every round, medians printed.
 *
 *   npm run bench:nfs-ops                                     Portico and nfs-ganesha
 *   BENCH_SERVERS=portico,base BENCH_PORTICO_BASE=<tree>/bin/portico.js   A/B of two trees
 *   BENCH_FILES=1024 BENCH_ROUNDS=6 BENCH_BATCH=64 BENCH_BURST=1
 *   BENCH_CYCLE=read              the small-file read (OPEN, READ 4 KiB, CLOSE of existing files)
 *   BENCH_PHASE_LOG=/tmp/phases   phases' CLOCK_MONOTONIC times, to split a `perf record -k CLOCK_MONOTONIC`
 *
 * Same COMPOUNDs as bench:nfs (bench/nfs-bench.ts smallCycle); ganesha as there (FSAL_VFS; the
 * bench installs it with apt-get when missing, this one only skips it).
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FATTR4, OP } from '../protocols/nfs/nfs4-types.ts';
import { mapLimit, median } from './lib.ts';
import { Nfs41Pipe, ops, resultOf, type CompoundReply, type Stateid } from './peers/nfs41-pipe.ts';
import { GANESHA, startGanesha, startPorticoNfs, type NfsServerProcess } from './peers/nfs-servers.ts';

const FILES = Math.max(16, Number(process.env.BENCH_FILES ?? 1024));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 6));
const BATCH = Math.max(16, Number(process.env.BENCH_BATCH ?? 64));
const BURST = process.env.BENCH_BURST === '1';
const CONCURRENCY = 16;
/** BENCH_PHASE_LOG=file: each phase's server, name and CLOCK_MONOTONIC start and end (ns) appended, for `perf record -k CLOCK_MONOTONIC` samples by phase. */
const PHASE_LOG = process.env.BENCH_PHASE_LOG;
const BASE_BIN = process.env.BENCH_PORTICO_BASE;
const SERVERS = (process.env.BENCH_SERVERS ?? (BASE_BIN ? 'portico,base' : 'portico,ganesha')).split(',').map((s) => s.trim());
const FILE_SYNC = 2;
const LINUX_ATTRS = [FATTR4.TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.FSID, FATTR4.FILEID, FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.RAWDEV, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_METADATA, FATTR4.TIME_MODIFY, FATTR4.MOUNTED_ON_FILEID];
/** BENCH_CYCLE=read: bench:nfs's small-file read instead (OPEN of an existing file, READ 4 KiB, CLOSE; the files made beforehand). */
const READ_CYCLE = process.env.BENCH_CYCLE === 'read';
const ALL_PHASES = ['open', 'write', 'close', 'getattr', 'remove', 'read'] as const;
type Phase = (typeof ALL_PHASES)[number];
const PHASES: readonly Phase[] = READ_CYCLE ? ['open', 'read', 'close'] : ['open', 'write', 'close', 'getattr', 'remove'];

const log = (line: string): void => void process.stderr.write(`[nfs-cycle-cpu] ${line}\n`);

/** CPU ns of every thread of `pid` (threads that ended are not counted: the servers keep theirs). */
function cpuNs(pid: number): number {
  let t = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      t += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return t;
}

const fhOf = (r: CompoundReply): Buffer => {
  const fh = resultOf(r, OP.GETFH)?.body?.fh;
  if (!Buffer.isBuffer(fh)) throw new Error('no GETFH result');
  return fh;
};

interface Contender {
  name: string;
  server: NfsServerProcess;
  pipe: Nfs41Pipe;
  dir: Buffer;
  ns: Record<Phase, number[]>;
  /** The read cycle's directory of existing files. */
  small: Buffer;
}

async function round(c: Contender, r: number, payload: Buffer, keep: boolean): Promise<void> {
  const acc: Record<Phase, number> = { open: 0, write: 0, close: 0, getattr: 0, remove: 0, read: 0 };
  for (let b = 0; b < FILES; b += BATCH) {
    const idx = Array.from({ length: Math.min(BATCH, FILES - b) }, (_, i) => b + i);
    const opened = new Map<number, { fh: Buffer; sid: Stateid }>();
    const phase = async (p: Phase, fn: (i: number) => Promise<void>): Promise<void> => {
      const start = PHASE_LOG ? process.hrtime.bigint() : 0n;
      const t0 = cpuNs(c.server.pid);
      if (BURST) for (let k = 0; k < idx.length; k += CONCURRENCY) await Promise.all(idx.slice(k, k + CONCURRENCY).map(fn));
      else await mapLimit(idx, CONCURRENCY, fn);
      acc[p] += cpuNs(c.server.pid) - t0;
      if (PHASE_LOG) appendFileSync(PHASE_LOG, `${c.name} ${p} ${start} ${process.hrtime.bigint()}\n`);
    };
    const name = (i: number): string => `c${r}-${i}`;
    if (READ_CYCLE) {
      await phase('open', async (i) => {
        const res = await c.pipe.call([ops.putfh(c.small), ops.open(0n, 'bench', `f${i}`, { access: 1 }), ops.getfh()], 'OPEN');
        const sid = resultOf(res, OP.OPEN)?.body?.stateid as Stateid | undefined;
        if (!sid) throw new Error('no OPEN result');
        opened.set(i, { fh: fhOf(res), sid });
      });
      await phase('read', async (i) => {
        const o = opened.get(i)!;
        const res = await c.pipe.call([ops.putfh(o.fh), ops.read(o.sid, 0n, 4096)], 'READ 4K');
        if ((resultOf(res, OP.READ)?.body?.data as Buffer).length !== 4096) throw new Error('READ 4K: short');
      });
      await phase('close', async (i) => {
        const o = opened.get(i)!;
        await c.pipe.call([ops.putfh(o.fh), ops.close(o.sid)], 'CLOSE');
      });
      continue;
    }
    await phase('open', async (i) => {
      const res = await c.pipe.call([ops.putfh(c.dir), ops.open(0n, 'bench', name(i), { access: 3, create: 'guarded' }), ops.getfh()], 'OPEN create');
      const sid = resultOf(res, OP.OPEN)?.body?.stateid as Stateid | undefined;
      if (!sid) throw new Error('no OPEN result');
      opened.set(i, { fh: fhOf(res), sid });
    });
    await phase('write', async (i) => {
      const o = opened.get(i)!;
      const w = await c.pipe.call([ops.putfh(o.fh), ops.write(o.sid, 0n, payload, FILE_SYNC)], 'WRITE 4K');
      if (resultOf(w, OP.WRITE)?.body?.count !== payload.length) throw new Error('WRITE 4K: short');
    });
    await phase('close', async (i) => {
      const o = opened.get(i)!;
      await c.pipe.call([ops.putfh(o.fh), ops.close(o.sid)], 'CLOSE');
    });
    await phase('getattr', async (i) => {
      await c.pipe.call([ops.putfh(opened.get(i)!.fh), ops.getattr(LINUX_ATTRS)], 'GETATTR');
    });
    await phase('remove', async (i) => {
      await c.pipe.call([ops.putfh(c.dir), ops.remove(name(i))], 'REMOVE');
    });
  }
  if (keep) for (const p of PHASES) c.ns[p].push(acc[p] / FILES);
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'portico-nfs-cycle-'));
  const data = join(base, 'share');
  const started: NfsServerProcess[] = [];
  const cs: Contender[] = [];
  const loadStart = loadavg()[0]!.toFixed(1);
  try {
    for (const s of SERVERS) mkdirSync(join(data, `put-${s}`), { recursive: true });
    mkdirSync(join(data, 'small'));
    if (READ_CYCLE) for (let i = 0; i < FILES; i++) writeFileSync(join(data, 'small', `f${i}`), Buffer.alloc(4096, i & 0xff));
    for (const s of SERVERS) {
      if (s === 'ganesha' && !existsSync(GANESHA)) {
        log('skipping ganesha: not installed (npm run bench:nfs installs it)');
        continue;
      }
      if (s === 'base' && !BASE_BIN) throw new Error('base needs BENCH_PORTICO_BASE');
      const server = s === 'ganesha' ? await startGanesha(data) : s === 'base' ? await startPorticoNfs(data, BASE_BIN, 'base') : await startPorticoNfs(data);
      started.push(server);
      const pipe = await Nfs41Pipe.open(server.port, { slots: 64 });
      const dir = fhOf(await pipe.call([ops.putrootfh(), ops.lookup('share'), ops.lookup(`put-${s}`), ops.getfh()], 'LOOKUP'));
      const small = fhOf(await pipe.call([ops.putrootfh(), ops.lookup('share'), ops.lookup('small'), ops.getfh()], 'LOOKUP'));
      cs.push({ name: s, server, pipe, dir, small, ns: { open: [], write: [], close: [], getattr: [], remove: [], read: [] } });
      log(`${s}: pid ${server.pid}, port ${server.port}`);
    }
    const payload = Buffer.alloc(4096, 0x5a);
    // Round -1 warms up (JIT, the store's checkpoint thread, caches) and is not kept.
    for (let r = -1; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? cs : [...cs].reverse();
      for (const c of order) await round(c, r + 1, payload, r >= 0);
    }
  } finally {
    for (const c of cs) c.pipe.close();
    for (const s of started) await s.stop().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  }
  const out: string[] = [];
  out.push(`server CPU µs per COMPOUND (all threads), median of ${ROUNDS} rounds x ${FILES} files, batches of ${BATCH}, ${CONCURRENCY} in flight${BURST ? ' (bursts)' : ''}; load average ${loadStart} -> ${loadavg()[0]!.toFixed(1)}`);
  if (cs.length > 1) out.push(`ratio: ${cs[1]!.name}'s CPU per op over ${cs[0]!.name}'s (> 1: ${cs[0]!.name} cheaper)`);
  out.push(['server'.padEnd(8), ...PHASES.map((p) => p.padStart(8)), 'cycle'.padStart(8)].join(' '));
  const meds = new Map<string, number[]>();
  for (const c of cs) {
    const m = PHASES.map((p) => median(c.ns[p]) / 1000);
    meds.set(c.name, m);
    out.push([c.name.padEnd(8), ...m.map((x) => x.toFixed(1).padStart(8)), m.reduce((a, b) => a + b, 0).toFixed(1).padStart(8)].join(' '));
  }
  const [a, b] = cs;
  if (a && b) {
    const ma = meds.get(a.name)!;
    const mb = meds.get(b.name)!;
    const ratio = (x: number, y: number): string => `${(y / x).toFixed(2)}x`.padStart(8);
    out.push(['ratio'.padEnd(8), ...ma.map((x, i) => ratio(x, mb[i]!)), ratio(ma.reduce((s, x) => s + x, 0), mb.reduce((s, x) => s + x, 0))].join(' '));
  }
  console.log(out.join('\n'));
  console.log(JSON.stringify({ bench: 'nfs-cycle-cpu', files: FILES, rounds: ROUNDS, batch: BATCH, burst: BURST, load: [loadStart, loadavg()[0]!.toFixed(1)], usPerOp: Object.fromEntries(cs.map((c) => [c.name, Object.fromEntries(PHASES.map((p) => [p, c.ns[p].map((x) => Math.round(x / 100) / 10)]))])) }));
}

await main();
