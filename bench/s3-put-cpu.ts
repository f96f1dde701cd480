/**
 * Client CPU per small PUT through the S3 backend: createWriter + write(4 KiB) + commit, one at a
 * time, new names in one directory (the WebDAV PUT of a new small file without HTTP and VFS), against
 * the tests' s3rver in a child process. Only the client process's CPU (process.cpuUsage) over the
 * measured PUTs counts; s3rver's is printed beside it (its process's CPU over each whole worker,
 * warm-up included, per PUT, from /proc).
 *
 * A/B in one run: every variant is a tree holding `backends/s3` (and the rest of the project); each
 * round runs one worker process per variant, in alternating order, against the same s3rver, and the
 * figures of all rounds are printed (median and best). Make a baseline tree with
 *   mkdir -p /tmp/ab-base && git archive HEAD | tar -x -C /tmp/ab-base && ln -s $PWD/node_modules /tmp/ab-base/
 *
 * Usage: node bench/s3-put-cpu.ts [name=treeDir ...]   (default: this checkout only)
 * Env: BENCH_PUT_VIA=vfs (through Session and VFS, the WebDAV PUT path without HTTP), BENCH_PUT_N (PUTs measured per worker, default 400), BENCH_PUT_WARM (default 100),
 * BENCH_PUT_ROUNDS (default 4), BENCH_PUT_SIZE (bytes, default 4096), BENCH_PUT_PROF=dir (a CPU
 * profile of each worker's measured PUTs into dir), BENCH_S3_OPTS (JSON of extra backend options).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import inspector from 'node:inspector/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const HERE = resolve(dirname(SELF), '..');
const N = Number(process.env.BENCH_PUT_N ?? 400);
const WARM = Number(process.env.BENCH_PUT_WARM ?? 100);
const ROUNDS = Number(process.env.BENCH_PUT_ROUNDS ?? 4);
const SIZE = Number(process.env.BENCH_PUT_SIZE ?? 4096);
/** 'backend' (createWriter + write + commit) or 'vfs' (Session.replaceContent on a sync share, the WebDAV PUT path without HTTP). */
const VIA = process.env.BENCH_PUT_VIA ?? 'backend';
const CREDS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

interface ServerInfo { endpoint: string; bucket: string }
interface WorkerResult { cpuUsPerPut: number; userUs: number; sysUs: number; wallMs: number; requests: Record<string, number>; serverMsPerPut?: number }

/** CPU time (user + system, all threads) of a process so far, ms, from /proc/<pid>/stat (10 ms ticks). */
function procCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) * 10;
  } catch {
    return 0;
  }
}

async function worker(tree: string, endpoint: string, bucket: string, prefix: string): Promise<WorkerResult> {
  const { S3Backend } = await import(pathToFileURL(join(tree, 'backends/s3/s3-backend.ts')).href) as typeof import('../backends/s3/s3-backend.ts');
  const extra = JSON.parse(process.env.BENCH_S3_OPTS ?? '{}') as Record<string, unknown>;
  const b = new S3Backend({ bucket, prefix, endpoint, ...CREDS, ...extra });
  const body = Buffer.alloc(SIZE, 0x61);
  let put: (i: number) => Promise<void>;
  let close = (): Promise<void> => b.close();
  if (VIA === 'vfs') {
    // Session -> VFS (sync write-back) -> backend, as a WebDAV PUT reaches it (without HTTP).
    const imp = async <T>(rel: string): Promise<T> => import(pathToFileURL(join(tree, rel)).href) as Promise<T>;
    const { MetadataStore } = await imp<typeof import('../src/store/metadata-store.ts')>('src/store/metadata-store.ts');
    const { Vfs } = await imp<typeof import('../src/vfs/vfs.ts')>('src/vfs/vfs.ts');
    const { buildVolumeStack } = await imp<typeof import('../src/vfs/volume-stack.ts')>('src/vfs/volume-stack.ts');
    const { SessionManager } = await imp<typeof import('../src/session/session-manager.ts')>('src/session/session-manager.ts');
    const { refuseAllLogins } = await imp<typeof import('../src/auth/authenticator.ts')>('src/auth/authenticator.ts');
    const { benchUser } = await import('./lib.ts');
    const stateDir = mkdtempSync(join(tmpdir(), 'portico-putcpu-'));
    const store = MetadataStore.open(stateDir);
    const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback') });
    vfs.addVolume('s', buildVolumeStack(b), { caseSensitive: true, writeBack: { mode: 'sync' } });
    const sessions = new SessionManager({ vfs, shares: [{ name: 's', caseSensitive: true }], authenticator: refuseAllLogins });
    const session = sessions.openSession({ principal: benchUser, protocol: 'bench', clientAddress: '127.0.0.1' });
    await session.mkdir('s', '/d');
    put = async (i) => {
      const w = await session.replaceContent('s', `/d/f${i}`, { owner: 'put', sizeHint: SIZE });
      await w.writev([body]);
      await w.commit();
    };
    close = async () => {
      await sessions.closeAll();
      await vfs.shutdown();
      store.close();
      await b.close();
      rmSync(stateDir, { recursive: true, force: true });
    };
  } else {
    await b.mkdir('/d');
    put = async (i) => {
      const w = await b.createWriter(`/d/f${i}`, { sizeHint: SIZE });
      await w.write(body);
      await w.commit();
    };
  }
  for (let i = 0; i < WARM; i++) await put(i);
  const prof = process.env.BENCH_PUT_PROF;
  const session = prof !== undefined ? new inspector.Session() : undefined;
  if (session !== undefined) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const before = new Map(b.meters.local.requests);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = WARM; i < WARM + N; i++) await put(i);
  const c = process.cpuUsage(c0);
  const wallMs = performance.now() - t0;
  if (session !== undefined && prof !== undefined) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(prof, `put-${prefix}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
  const requests: Record<string, number> = {};
  for (const [op, n] of b.meters.local.requests) {
    const d = n - (before.get(op) ?? 0);
    if (d > 0) requests[op] = d / N;
  }
  await close();
  return { cpuUsPerPut: (c.user + c.system) / N, userUs: c.user / N, sysUs: c.system / N, wallMs, requests };
}

function runWorker(tree: string, srv: ServerInfo, prefix: string): Promise<WorkerResult> {
  const child: ChildProcess = fork(SELF, ['--worker', tree, srv.endpoint, srv.bucket, prefix], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((res, rej) => {
    let got: WorkerResult | undefined;
    child.on('message', (m) => {
      got = m as WorkerResult;
    });
    child.once('exit', (code) => (got !== undefined ? res(got) : rej(new Error(`worker exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const variants = process.argv.slice(2).filter((a) => a.includes('=')).map((a) => {
    const [name, dir] = a.split('=') as [string, string];
    return { name, dir: resolve(dir) };
  });
  if (variants.length === 0) variants.push({ name: 'this', dir: HERE });
  const child = fork(SELF, ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const srv = await new Promise<ServerInfo>((res, rej) => {
    child.once('message', (m) => res(m as ServerInfo));
    child.once('exit', (code) => rej(new Error(`s3rver child exited (${code})`)));
  });
  const results = new Map<string, WorkerResult[]>(variants.map((v) => [v.name, []]));
  const loads: number[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        loads.push(loadavg()[0] as number);
        const s0 = procCpuMs(child.pid);
        const res = await runWorker(v.dir, srv, `p${r}-${v.name}-${Date.now()}`);
        // s3rver's CPU over the whole worker (its warm-up PUTs and set-up included) per PUT.
        res.serverMsPerPut = (procCpuMs(child.pid) - s0) / (WARM + N);
        results.get(v.name)?.push(res);
        process.stderr.write(`round ${r + 1} ${v.name}: ${(res.cpuUsPerPut / 1000).toFixed(3)} ms CPU/PUT (user ${(res.userUs / 1000).toFixed(3)}, sys ${(res.sysUs / 1000).toFixed(3)}), ${(N / (res.wallMs / 1000)).toFixed(0)} PUT/s, requests/PUT ${JSON.stringify(res.requests)}, s3rver ${res.serverMsPerPut?.toFixed(3)} ms CPU/PUT\n`);
      }
    }
  } finally {
    child.send('stop');
    await new Promise((r) => child.once('exit', r));
  }
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 === 1 ? s[(s.length - 1) / 2] as number : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
  };
  process.stdout.write(`\nS3 backend, ${SIZE}-byte PUTs of new names (${VIA === 'vfs' ? 'Session.replaceContent + writev + commit, sync share' : 'createWriter + write + commit'}), ${N} measured per worker after ${WARM}, ${ROUNDS} rounds alternating; load avg ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}\n`);
  for (const v of variants) {
    const rs = results.get(v.name) ?? [];
    const cpu = rs.map((x) => x.cpuUsPerPut / 1000);
    const srvCpu = rs.map((x) => x.serverMsPerPut ?? 0);
    process.stdout.write(`${v.name.padEnd(12)} CPU ms/PUT median ${med(cpu).toFixed(3)} best ${Math.min(...cpu).toFixed(3)} (all: ${cpu.map((x) => x.toFixed(3)).join(' ')}); requests/PUT ${JSON.stringify(rs[0]?.requests)}; s3rver CPU ms/PUT median ${med(srvCpu).toFixed(3)} (all: ${srvCpu.map((x) => x.toFixed(3)).join(' ')})\n`);
  }
}

if (process.argv.includes('--serve')) {
  const { startS3rver } = await import('../test/helpers/s3rver.ts');
  const h = await startS3rver({ bucket: 'bench' });
  process.send?.({ endpoint: h.endpoint, bucket: h.bucket });
  process.on('message', (m) => {
    if (m === 'stop') void h.stop().then(() => process.exit(0));
  });
} else if (process.argv.includes('--worker')) {
  const i = process.argv.indexOf('--worker');
  const [tree, endpoint, bucket, prefix] = process.argv.slice(i + 1) as [string, string, string, string];
  const r = await worker(tree, endpoint, bucket, prefix);
  process.send?.(r, () => process.exit(0));
} else {
  await main();
}
