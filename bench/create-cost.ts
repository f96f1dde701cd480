/**
 * Cost of creating a small file through the core, in CPU µs per operation (issue 9, "Per-operation
 * cost"): the path every protocol's small-file create takes, in one process, no network.
 *
 * - `open`: Session.open(create, exclusive) + write 4 KiB + close — NFS OPEN(create)+WRITE+CLOSE,
 *   SMB CREATE+WRITE+CLOSE, FUSE create/write/release;
 * - `nfs`: the same by directory id with the directory's attributes asked before and after the
 *   create, as the NFS server does for change_info4; `nfscycle`: bench:nfs's small-file cycle
 *   (that create, a flushed write, close, getattr, remove by directory id; durable share);
 * - `put`: Session.replaceContent of a new 4 KiB file + commit — WebDAV PUT's core part;
 * - `raw`: fs/promises open('wx') + write + close on the same file system.
 *
 * Each runs on two shares of one stack: the local backend's default durable writes (`fsync: true`:
 * a whole-file commit fdatasyncs and fsyncs the directory) and `fsync: false`. CPU is
 * process.cpuUsage (user + system of every thread: the fs thread pool and SQLite included), over
 * N operations, best of ROUNDS; the group commit timers fire inside the measured time as they do in
 * a server. BENCH_PACE_US (default 0) puts that many µs of idle time between operations (a client's
 * round trips); the idle time is not CPU, so the figure stays per operation.
 *
 * Env: BENCH_N (operations per round, default 2000), BENCH_ROUNDS (5), BENCH_PACE_US (0),
 * BENCH_ONLY (comma list of rows: open-durable,open-nofsync,nfs-nofsync,nfscycle-durable,put-durable,put-nofsync,raw),
 * BENCH_SECONDS (profile mode: run BENCH_ONLY rows for this long), BENCH_WARMUP (operations per row, 300),
 * BENCH_DIR (where the shares, state and raw directory go; default the OS temp directory),
 * BENCH_AUDIT=0 (the audit log off, to see its share), BENCH_CHECKPOINT=sqlite (SQLite's own WAL checkpoints
 * inside commits, instead of the checkpoint thread the gateway starts while writes are frequent:
 * src/store/checkpointer.ts; the thread's CPU is counted either way).
 *
 * On ext4 the kernel's own inode allocation can dominate: with many inodes freed in the last
 * seconds in the directory's block group, each create scans past them (recently_deleted in
 * __ext4_new_inode: half of all CPU samples in one perf profile on the shared VM), for Portico and
 * raw alike, varying with what else deletes files on the machine. BENCH_DIR=/dev/shm (tmpfs)
 * leaves Portico's own cost (fsync is then free: the durable rows' difference is ext4's).
 * Prints one JSON line of results last.
 */
import { promises as fsp, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MetadataStore } from '../src/store/metadata-store.ts';
import { Vfs } from '../src/vfs/vfs.ts';
import { buildVolumeStack } from '../src/vfs/volume-stack.ts';
import { SessionManager } from '../src/session/session-manager.ts';
import type { Session } from '../src/session/session.ts';
import { refuseAllLogins } from '../src/auth/authenticator.ts';
import { Metrics } from '../src/metrics/metrics.ts';
import { createAuditLogger, createLogger } from '../src/log/logger.ts';
import { LocalBackend } from '../backends/local/local-backend.ts';
import { benchUser } from './lib.ts';

const N = Number(process.env.BENCH_N ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PACE_US = Number(process.env.BENCH_PACE_US ?? 0);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 0);
export const ALL = ['open-durable', 'open-nofsync', 'nfs-nofsync', 'nfscycle-durable', 'put-durable', 'put-nofsync', 'raw'];
const ONLY = (process.env.BENCH_ONLY ?? ALL.join(',')).split(',').filter((s) => s.length > 0);
const SMALL = 4096;
const RW = { read: true, write: true, delete: false };

/** The real gate as bench/lib.ts builds it (metrics, audit log), with two shares: durable and not. */
function makeStack(base: string): { session: Session; close: () => Promise<void>; roots: Record<string, string>; breakers: () => string } {
  const stateDir = join(base, 'state');
  const roots = { d: join(base, 'durable'), n: join(base, 'nofsync') };
  for (const r of Object.values(roots)) mkdirSync(r, { recursive: true });
  const store = MetadataStore.open(stateDir);
  // As the gateway does (src/server/gateway.ts), unless BENCH_CHECKPOINT=sqlite.
  if (process.env.BENCH_CHECKPOINT !== 'sqlite') store.checkpointInBackground();
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage') });
  const metrics = new Metrics();
  const backends = [new LocalBackend(roots.d), new LocalBackend(roots.n, { fsync: false })] as const;
  vfs.addVolume('d', buildVolumeStack(backends[0], { metrics, metricsLabel: 'd' }), { caseSensitive: true });
  vfs.addVolume('n', buildVolumeStack(backends[1], { metrics, metricsLabel: 'n' }), { caseSensitive: true });
  const audit = createAuditLogger({ level: 'info', format: 'json', audit: { enabled: process.env.BENCH_AUDIT !== '0', file: join(base, 'audit.log') } });
  const logger = createLogger({ level: 'info', format: 'json', audit: { enabled: false, file: '-' } }, { destination: process.stderr });
  const sessions = new SessionManager({
    vfs,
    shares: [{ name: 'd', caseSensitive: true }, { name: 'n', caseSensitive: true }],
    authenticator: refuseAllLogins,
    metrics,
    audit,
    logger,
  });
  const session = sessions.openSession({ principal: benchUser, protocol: 'bench', clientAddress: '127.0.0.1' });
  return {
    session,
    roots,
    // The inline-I/O breakers' trips (a tripped breaker sends the calls to the thread pool for 10 s).
    breakers: () => backends.map((b) => `io trips ${b.io.trips} contended ${b.io.contended}, wio trips ${b.wio.trips} contended ${b.wio.contended}`).join('; '),
    close: async () => {
      await sessions.closeAll();
      await vfs.shutdown();
      store.close();
    },
  };
}

const pause = (us: number): Promise<void> => new Promise((r) => setTimeout(r, us / 1000));

/** One stack and its row operations; `measure(row, n)` is CPU µs per operation over n of them. */
export interface CreateCost {
  measure(row: string, n: number, paceUs?: number): Promise<number>;
  breakers(): string;
  close(): Promise<void>;
}

export async function setup(): Promise<CreateCost> {
  const base = await fsp.mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), 'portico-create-'));
  const rawRoot = join(base, 'raw');
  mkdirSync(rawRoot);
  const stack = makeStack(base);
  const s = stack.session;
  const data = randomBytes(SMALL);
  let dirSeq = 0;
  const dirIds = new Map<string, bigint>();
  const ops: Record<string, (dir: string, i: number) => Promise<void>> = {
    'open-durable': async (dir, i) => {
      const h = await s.open('d', `${dir}/f${i}`, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
      await s.write(h, 0, data);
      await s.close(h);
    },
    'open-nofsync': async (dir, i) => {
      const h = await s.open('n', `${dir}/f${i}`, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
      await s.write(h, 0, data);
      await s.close(h);
    },
    // NFS OPEN(create) as protocols/nfs does it: the directory's attributes (change_info4) before
    // and after the create, by id, then WRITE and CLOSE.
    'nfs-nofsync': async (dir, i) => {
      const d = dirIds.get(dir)!;
      await s.getattrById('n', d);
      const h = await s.openIn('n', d, `f${i}`, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
      await s.getattrById('n', d);
      await s.write(h, 0, data);
      await s.close(h);
    },
    // bench:nfs's small-file cycle: OPEN GUARDED create (with the directory's attributes around
    // it), WRITE 4 KiB FILE_SYNC (a flush), CLOSE, GETATTR, REMOVE.
    'nfscycle-durable': async (dir, i) => {
      const d = dirIds.get(dir)!;
      await s.getattrById('d', d);
      const h = await s.openIn('d', d, `f${i}`, { access: RW, disposition: 'create', owner: 'bench', expect: 'file' });
      await s.getattrById('d', d);
      await s.write(h, 0, data);
      await s.flush(h);
      await s.close(h);
      await s.getattrById('d', h.fileId);
      await s.getattrById('d', d);
      await s.removeIn('d', d, `f${i}`);
      await s.getattrById('d', d);
    },
    'put-durable': async (dir, i) => {
      const w = await s.replaceContent('d', `${dir}/f${i}`, { owner: 'put', sizeHint: SMALL });
      await w.write(data);
      await w.commit();
    },
    'put-nofsync': async (dir, i) => {
      const w = await s.replaceContent('n', `${dir}/f${i}`, { owner: 'put', sizeHint: SMALL });
      await w.write(data);
      await w.commit();
    },
    raw: async (dir, i) => {
      const fh = await fsp.open(join(rawRoot, dir, `f${i}`), 'wx');
      await fh.write(data, 0, SMALL, 0);
      await fh.close();
    },
  };
  const share = (row: string): string => (row.endsWith('durable') ? 'd' : 'n');
  // A new directory per 1,000 files, so no directory grows without bound.
  const dirs = new Map<string, { dir: string; used: number }>();
  const dirFor = async (row: string): Promise<{ dir: string; used: number }> => {
    let d = dirs.get(row);
    if (d === undefined || d.used >= 1000) {
      const name = `/r${dirSeq++}`;
      if (row === 'raw') await fsp.mkdir(join(rawRoot, name));
      else dirIds.set(name, (await s.mkdir(share(row), name)).id);
      dirs.set(row, (d = { dir: name, used: 0 }));
    }
    return d;
  };
  return {
    async measure(row, n, paceUs = 0) {
      const op = ops[row];
      if (!op) throw new Error(`unknown row ${row}`);
      let cpu = 0;
      for (let done = 0; done < n; ) {
        const d = await dirFor(row);
        const k = Math.min(n - done, 1000 - d.used);
        const c0 = process.cpuUsage();
        for (let i = 0; i < k; i++) {
          await op(d.dir, d.used++);
          if (paceUs > 0) await pause(paceUs);
        }
        // Let the group commit of the last rows land inside the measurement.
        await pause(10_000);
        const c = process.cpuUsage(c0);
        cpu += c.user + c.system;
        done += k;
      }
      return cpu / n;
    },
    breakers: () => stack.breakers(),
    async close() {
      await stack.close();
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const cc = await setup();
  try {
    if (SECONDS > 0) {
      const end = Date.now() + SECONDS * 1000;
      let n = 0;
      while (Date.now() < end) {
        for (const row of ONLY) await cc.measure(row, 1000, PACE_US);
        n += 1000;
      }
      console.log(`profile run: ${n} ops per row`);
      return;
    }
    // Warm-up: JIT, the id range reservation, the stat and name caches.
    const warmup = Number(process.env.BENCH_WARMUP ?? 300);
    for (const row of ONLY) if (warmup > 0) await cc.measure(row, Math.min(warmup, N));
    const results: Record<string, number[]> = {};
    for (const row of ONLY) results[row] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Rows alternate order between rounds, so load drift hits them alike.
      const order = r % 2 === 0 ? ONLY : [...ONLY].reverse();
      for (const row of order) results[row]!.push(await cc.measure(row, N, PACE_US));
    }
    const best = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.min(...v)]));
    for (const row of ONLY) console.log(`${row.padEnd(14)} ${best[row]!.toFixed(1).padStart(7)} µs CPU/op  (rounds: ${results[row]!.map((x) => x.toFixed(0)).join(' ')})`);
    console.log(`breakers: ${cc.breakers()}`);
    console.log(JSON.stringify({ bench: 'create-cost', n: N, rounds: ROUNDS, paceUs: PACE_US, best, results }));
  } finally {
    await cc.close();
  }
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) await main();
