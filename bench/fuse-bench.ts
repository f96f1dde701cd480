/**
 * npm run bench:fuse — the FUSE front-end against the physical limit (issue 13).
 *
 * A `portico mount` process mounts a local share; the same operations run through the mount and
 * on the backing directory directly, in the same run:
 *   - sequential write and read of FUSE_BENCH_MB MiB (default 1024) with dd bs=1M (the read is of
 *     a file the page cache of the host holds on both sides: the FUSE side's first open does not
 *     keep the mount's cache, so every byte passes Portico);
 *   - 1,000 × (create, write 4 KiB, close, stat, unlink) from a Node child process (sync fs calls);
 *   - `ls -l` of a 10,000-entry directory (the mount's first listing: entries are not cached).
 * Printed: wall time, MB/s or µs per op, the ratio FUSE/direct, and Portico's CPU time (utime +
 * stime of its process from /proc) per MiB or per op — the steadier figure on a shared machine —
 * with the load average at the start and end.
 *
 * Not here yet: S3 shares against `rclone mount` of the same bucket (issue 13's second baseline).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

main()
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
