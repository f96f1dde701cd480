/**
 * npm run bench:fuse — the FUSE front-end against the physical limit (issue 13).
 *
 * A `portico mount` process mounts a local share; the same operations run through the mount and
 * on the backing directory directly, in the same run:
 *   - sequential write and read of FUSE_BENCH_MB MiB (default 1024) with dd bs=1M. The read is of
 *     the file just written through the mount, warm in the host's page cache: since the mount
 *     keeps the pages it wrote (explicit invalidation only, protocols/fuse/README.md), this read is
 *     the kernel's copy from the mount's page cache. "seq read uncached" reads it again after a
 *     change beside the mount (its mtime): the change drops the mount's pages and the next open
 *     keeps none, so every byte is a READ through Portico (a local share splices it from the
 *     backing file);
 *   - 1,000 × (create, write 4 KiB, close, stat, unlink) from a Node child process (sync fs calls);
 *   - `ls -l` of a 10,000-entry directory (the mount's first listing: entries are not cached).
 * Printed: wall time, MB/s or µs per op, the ratio FUSE/direct, and Portico's CPU time (utime +
 * stime of its process from /proc) per MiB or per op — the steadier figure on a shared machine —
 * with the load average at the start and end.
 *
 * S3 (FUSE_BENCH_S3=0 skips it): the tests' s3rver in a child process (this process blocks in
 * execFileSync while it measures, and must never serve what it measures); a `portico mount` of
 * s3://bench/portico against `rclone mount` (Debian's rclone, --vfs-cache-mode writes, the mode a
 * POSIX workload needs) of s3://bench/rclone: FUSE_BENCH_S3_SMALL small-file cycles (default 200)
 * and FUSE_BENCH_S3_MB MiB (default 64) sequential write and read (each mount reads back the file it
 * wrote: Portico's mount from the kernel's page cache, which it keeps for what it wrote),
 * with both processes' CPU. Portico's share has async write-back (FUSE_BENCH_S3_WRITEBACK, default
 * `{ mode: async, uploadDelayMs: 5000 }`; `sync` for the other mode): rclone --vfs-cache-mode writes
 * answers close(2) before the upload too and starts it 5 s after the last close (--vfs-write-back
 * 5s), so a sync share (close = the object is in the store) compared different promises. Portico
 * still fsyncs the staged content and its journal record before close(2) returns (rclone does not).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fuseAvailability } from '../protocols/fuse/native.ts';
import { mountPoints } from '../protocols/fuse/mount.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE = process.execPath;
const MB = Number(process.env.FUSE_BENCH_MB ?? 1024);
const SMALL = Number(process.env.FUSE_BENCH_SMALL ?? 1000);
const LIST = Number(process.env.FUSE_BENCH_LIST ?? 10_000);
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100);

if (process.argv.includes('--serve-s3')) {
  // The s3rver child (see s3Part): serves until told to stop; nothing below runs here.
  const { startS3rver } = await import('../test/helpers/s3rver.ts');
  const h = await startS3rver({ bucket: 'bench' });
  process.send?.({ endpoint: h.endpoint, bucket: h.bucket });
  process.on('message', (m) => {
    if (m === 'stop') void h.stop().then(() => process.exit(0));
  });
  await new Promise(() => undefined);
}

const avail = fuseAvailability();
if (!avail.available) {
  console.error(`bench:fuse needs FUSE: ${avail.reason}; enable with: ${avail.enable}`);
  process.exit(1);
}

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

const tmp = mkdtempSync(join(tmpdir(), 'portico-fuse-bench-'));
const data = join(tmp, 'data');
const mnt = join(tmp, 'mnt');
mkdirSync(data);
mkdirSync(mnt);
const child = spawn(NODE, [join(ROOT, 'bin/portico.js'), 'mount', data, mnt, '--state', join(tmp, 'state'), '--log-level', 'warn'], {
  stdio: ['ignore', 'inherit', 'inherit'],
  // The audit log would print a line per change on this terminal (and cost its own CPU).
  env: { ...process.env, PORTICO_LOG__AUDIT__ENABLED: 'false' },
});
const pid = child.pid!;

async function main(): Promise<void> {
  const end = Date.now() + 120_000;
  while (mountPoints().get(mnt) !== 'fuse.portico') {
    if (child.exitCode !== null || Date.now() > end) throw new Error('the mount did not come up');
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`bench:fuse — local share, ${MB} MiB sequential, ${SMALL} small-file cycles, ls -l of ${LIST} entries; libfuse ${avail.available ? avail.libfuse : ''}`);
  console.log(`load average at start: ${load()}`);
  const rows: string[][] = [];
  const measure = (run: () => void): { ms: number; cpu: number } => {
    const c0 = cpuMs(pid);
    const t0 = process.hrtime.bigint();
    run();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { ms, cpu: cpuMs(pid) - c0 };
  };
  const dd = (args: string[]): void => void execFileSync('dd', [...args, 'bs=1M', 'status=none'], { stdio: 'ignore' });

  // Sequential write (conv=fsync: the bytes reach the backing file system before dd ends).
  const wDirect = measure(() => dd(['if=/dev/zero', `of=${join(data, 'seq-direct')}`, `count=${MB}`, 'conv=fsync']));
  const wFuse = measure(() => dd(['if=/dev/zero', `of=${join(mnt, 'seq-fuse')}`, `count=${MB}`, 'conv=fsync']));
  rows.push(['seq write MB/s', (MB / (wDirect.ms / 1000)).toFixed(0), (MB / (wFuse.ms / 1000)).toFixed(0), (wDirect.ms / wFuse.ms).toFixed(2), `${(wFuse.cpu / MB).toFixed(2)} ms/MiB`]);
  // Sequential read of one file both ways (warm host cache: read it once directly first).
  dd([`if=${join(data, 'seq-fuse')}`, 'of=/dev/null']);
  const rDirect = measure(() => dd([`if=${join(data, 'seq-fuse')}`, 'of=/dev/null']));
  const rFuse = measure(() => dd([`if=${join(mnt, 'seq-fuse')}`, 'of=/dev/null']));
  rows.push(['seq read MB/s', (MB / (rDirect.ms / 1000)).toFixed(0), (MB / (rFuse.ms / 1000)).toFixed(0), (rDirect.ms / rFuse.ms).toFixed(2), `${(rFuse.cpu / MB).toFixed(2)} ms/MiB`]);
  // Changed beside the mount: the watch invalidates the mount's pages, the next open keeps none.
  const t = new Date(Date.now() - 60_000);
  utimesSync(join(data, 'seq-fuse'), t, t);
  await new Promise((r) => setTimeout(r, 1000));
  const rDirect2 = measure(() => dd([`if=${join(data, 'seq-fuse')}`, 'of=/dev/null']));
  const rUncached = measure(() => dd([`if=${join(mnt, 'seq-fuse')}`, 'of=/dev/null']));
  rows.push(['seq read uncached MB/s', (MB / (rDirect2.ms / 1000)).toFixed(0), (MB / (rUncached.ms / 1000)).toFixed(0), (rDirect2.ms / rUncached.ms).toFixed(2), `${(rUncached.cpu / MB).toFixed(2)} ms/MiB`]);
  rmSync(join(data, 'seq-direct'));
  rmSync(join(data, 'seq-fuse'));

  // Small files: create, write 4 KiB, close, stat, unlink — in a child (sync calls, one at a time).
  const small = (dir: string): void =>
    void execFileSync(NODE, ['-e', `const fs=require('fs');const b=Buffer.alloc(4096,1);const d=process.argv[1];for(let i=0;i<${SMALL};i++){const p=d+'/s'+i;const fd=fs.openSync(p,'w');fs.writeSync(fd,b);fs.closeSync(fd);fs.statSync(p);fs.unlinkSync(p);}`, dir]);
  mkdirSync(join(data, 'small'));
  const sDirect = measure(() => small(join(data, 'small')));
  const sFuse = measure(() => small(join(mnt, 'small')));
  rows.push([`small-file cycle µs`, ((sDirect.ms * 1000) / SMALL).toFixed(0), ((sFuse.ms * 1000) / SMALL).toFixed(0), (sDirect.ms / sFuse.ms).toFixed(2), `${((sFuse.cpu * 1000) / SMALL).toFixed(0)} µs/cycle`]);

  // ls -l of a large directory made directly on disk (the mount has never seen these names).
  const big = join(data, 'big');
  mkdirSync(big);
  for (let i = 0; i < LIST; i++) writeFileSync(join(big, `f${i}`), '');
  const ls = (dir: string): number => execFileSync('ls', ['-l', dir], { maxBuffer: 64 << 20 }).toString().split('\n').length;
  let n1 = 0;
  let n2 = 0;
  const lDirect = measure(() => (n1 = ls(big)));
  const lFuse = measure(() => (n2 = ls(join(mnt, 'big'))));
  if (n1 !== n2) throw new Error(`ls -l listed ${n1} lines directly and ${n2} through the mount`);
  rows.push([`ls -l ${LIST} ms`, lDirect.ms.toFixed(0), lFuse.ms.toFixed(0), (lDirect.ms / lFuse.ms).toFixed(2), `${lFuse.cpu.toFixed(0)} ms`]);

  const head = ['', 'direct', 'fuse', 'fuse/direct', 'portico CPU'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  for (const r of all) console.log(r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '));
  console.log('(fuse/direct: speed ratio, 1.00 = as fast as the disk directly; for µs and ms rows, direct time / fuse time)');
  console.log(`load average at end: ${load()}`);
}

const S3_SMALL = Number(process.env.FUSE_BENCH_S3_SMALL ?? 200);
const S3_MB = Number(process.env.FUSE_BENCH_S3_MB ?? 64);
const S3_WRITEBACK = process.env.FUSE_BENCH_S3_WRITEBACK ?? '{ mode: async, uploadDelayMs: 5000 }';

async function waitMount(dir: string, type: string, child: ChildProcess): Promise<void> {
  const end = Date.now() + 120_000;
  while (mountPoints().get(dir) !== type) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(`${type} mount at ${dir} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** S3 share: Portico's mount against rclone mount of the same s3rver (child process). */
async function s3Part(): Promise<void> {
  const s3c = fork(fileURLToPath(import.meta.url), ['--serve-s3'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const info = await new Promise<{ endpoint: string; bucket: string }>((resolve, reject) => {
    s3c.once('message', (m) => resolve(m as { endpoint: string; bucket: string }));
    s3c.once('exit', (code) => reject(new Error(`s3rver child exited (${code})`)));
  });
  const pm = join(tmp, 'mnt-s3-portico');
  const rm = join(tmp, 'mnt-s3-rclone');
  mkdirSync(pm);
  mkdirSync(rm);
  const creds = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', PORTICO_LOG__AUDIT__ENABLED: 'false' };
  // The share's write-back mode needs a config file (the SOURCE argument replaces its source).
  const cfg = join(tmp, 'portico-s3.yaml');
  writeFileSync(cfg, `shares:\n  - name: bench\n    source: s3://${info.bucket}/portico\n    writeBack: ${S3_WRITEBACK}\n`);
  const portico = spawn(NODE, [join(ROOT, 'bin/portico.js'), 'mount', `s3://${info.bucket}/portico`, pm, '--config', cfg, '--s3-endpoint', info.endpoint, '--state', join(tmp, 'state-s3'), '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...creds } });
  const remote = `:s3,provider=Other,env_auth=false,access_key_id=S3RVER,secret_access_key=S3RVER,endpoint='${info.endpoint}':${info.bucket}/rclone`;
  // AWS_CA_BUNDLE (set on some machines) makes rclone's S3 client fail on an http endpoint.
  const rcloneEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_') && !k.startsWith('RCLONE_')));
  const rclone = spawn('rclone', ['mount', remote, rm, '--vfs-cache-mode', 'writes', '--cache-dir', join(tmp, 'rclone-cache')], { stdio: ['ignore', 'inherit', 'inherit'], env: rcloneEnv });
  try {
    await waitMount(pm, 'fuse.portico', portico);
    await waitMount(rm, 'fuse.rclone', rclone);
    const rows: string[][] = [];
    const measure = (pid: number, run: () => void): { ms: number; cpu: number } => {
      const c0 = cpuMs(pid);
      const t0 = process.hrtime.bigint();
      run();
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, cpu: cpuMs(pid) - c0 };
    };
    const small = (dir: string): void =>
      void execFileSync(NODE, ['-e', `const fs=require('fs');const b=Buffer.alloc(4096,1);const d=process.argv[1];for(let i=0;i<${S3_SMALL};i++){const p=d+'/s'+i;const fd=fs.openSync(p,'w');fs.writeSync(fd,b);fs.closeSync(fd);fs.statSync(p);fs.unlinkSync(p);}`, dir]);
    const dd = (args: string[]): void => void execFileSync('dd', [...args, 'bs=1M', 'status=none'], { stdio: 'ignore' });
    const sp = measure(portico.pid!, () => small(pm));
    const sr = measure(rclone.pid!, () => small(rm));
    rows.push([`small-file cycle µs`, ((sr.ms * 1000) / S3_SMALL).toFixed(0), ((sp.ms * 1000) / S3_SMALL).toFixed(0), (sr.ms / sp.ms).toFixed(2), `${((sr.cpu * 1000) / S3_SMALL).toFixed(0)} / ${((sp.cpu * 1000) / S3_SMALL).toFixed(0)} µs`]);
    const wp = measure(portico.pid!, () => dd(['if=/dev/zero', `of=${join(pm, 'seq')}`, `count=${S3_MB}`, 'conv=fsync']));
    const wr = measure(rclone.pid!, () => dd(['if=/dev/zero', `of=${join(rm, 'seq')}`, `count=${S3_MB}`, 'conv=fsync']));
    rows.push(['seq write MB/s', (S3_MB / (wr.ms / 1000)).toFixed(0), (S3_MB / (wp.ms / 1000)).toFixed(0), (wr.ms / wp.ms).toFixed(2), `${(wr.cpu / S3_MB).toFixed(2)} / ${(wp.cpu / S3_MB).toFixed(2)} ms/MiB`]);
    // Each mount reads back what it wrote (Portico's from the pages its mount kept).
    const rp = measure(portico.pid!, () => dd([`if=${join(pm, 'seq')}`, 'of=/dev/null']));
    const rr = measure(rclone.pid!, () => dd([`if=${join(rm, 'seq')}`, 'of=/dev/null']));
    rows.push(['seq read MB/s', (S3_MB / (rr.ms / 1000)).toFixed(0), (S3_MB / (rp.ms / 1000)).toFixed(0), (rr.ms / rp.ms).toFixed(2), `${(rr.cpu / S3_MB).toFixed(2)} / ${(rp.cpu / S3_MB).toFixed(2)} ms/MiB`]);
    console.log(`S3 share (s3rver child): ${S3_SMALL} small-file cycles, ${S3_MB} MiB sequential, Portico writeBack ${S3_WRITEBACK}; load average ${load()}`);
    const head = ['', 'rclone', 'portico', 'portico/rclone', 'CPU rclone / portico'];
    const all = [head, ...rows];
    const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
    for (const r of all) console.log(r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '));
    console.log('(portico/rclone: speed ratio, > 1.00 = Portico faster; rclone mount --vfs-cache-mode writes)');
  } finally {
    for (const [c, dir] of [[portico, pm], [rclone, rm]] as const) {
      c.kill('SIGTERM');
      await new Promise((r) => (c.exitCode !== null ? r(undefined) : c.once('exit', r)));
      if (mountPoints().has(dir)) execFileSync('fusermount3', ['-u', '-z', dir]);
    }
    s3c.send('stop');
    await new Promise((r) => s3c.once('exit', r));
  }
}

main()
  .then(() => (process.env.FUSE_BENCH_S3 === '0' ? undefined : s3Part()))
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    if (mountPoints().has(mnt)) execFileSync('fusermount3', ['-u', '-z', mnt]);
    rmSync(tmp, { recursive: true, force: true });
  });
