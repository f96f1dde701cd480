/**
 * Pack throughput by source (issue 12): the same flat tree of N small files (1-8 KiB, half text,
 * half random) packed to a local set from a local directory (A) and from an S3 prefix on s3rver
 * (B, backends/shard/source.ts S3PrefixSource: one ListObjectsV2 walk, whole-object GETs, 32 in
 * flight by default), alternating A B A B ... in one run. Per run: files/s and MB/s (wall clock,
 * noisy on shared cores), the client's CPU per file (process.cpuUsage: every thread, workers too)
 * and s3rver's own CPU per file (/proc/<pid>/stat of its child process), the main thread's peak
 * heap + buffers above its start (sampled every 20 ms). Medians over the rounds,
 * load average at start and end. Prints; never judges.
 *
 * Env: BENCH_SHARD_N (files, default 5000), BENCH_ROUNDS (default 3), BENCH_READ_AHEAD (S3 GETs in
 * flight, default the packer's). Run with `npm run bench:shard-source`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { pack, type PackResult } from '../backends/shard/pack.ts';
import { LocalSource, S3PrefixSource, type PackSource } from '../backends/shard/source.ts';
import { LocalShardStore } from '../backends/shard/store.ts';
import { mapLimit } from './lib.ts';

const SELF = fileURLToPath(import.meta.url);
const N = Number(process.env.BENCH_SHARD_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const READ_AHEAD = process.env.BENCH_READ_AHEAD !== undefined ? Number(process.env.BENCH_READ_AHEAD) : undefined;
const CREDS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const MiB = 1024 * 1024;
const TICKS = 100;

function log(m: string): void {
  process.stderr.write(`[bench:shard-source] ${m}\n`);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

let serverPid: number | undefined;
function serverCpuMs(): number {
  if (serverPid === undefined) return 0;
  const f = readFileSync(`/proc/${serverPid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS;
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

async function startServer(): Promise<{ endpoint: string; bucket: string; child: ChildProcess }> {
  const child = fork(SELF, ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const info = await new Promise<{ endpoint: string; bucket: string }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { endpoint: string; bucket: string }));
    child.once('exit', (code) => reject(new Error(`s3rver child exited (${code})`)));
  });
  return { ...info, child };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'portico-shard-source-bench-'));
  const srv = await startServer();
  serverPid = srv.child.pid;
  const load0 = loadavg();
  try {
    // The tree, on disk and as objects (same names and bytes).
    const r = rng(7);
    const src = join(base, 'src');
    mkdirSync(join(src, 'flat'), { recursive: true });
    const client = new S3Client({ endpoint: srv.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDS });
    const items: [string, Buffer][] = [];
    let bytes = 0;
    for (let i = 0; i < N; i++) {
      const size = 1024 + 4 * Math.floor(r() * 1792);
      const data = Buffer.allocUnsafe(size);
      if (i % 2 === 0) data.fill(`shard ${i} portico index `);
      else for (let k = 0; k < size; k += 4) data.writeUInt32LE(Math.floor(r() * 2 ** 32), k);
      const name = `flat/f${String(i).padStart(7, '0')}.${i % 2 === 0 ? 'txt' : 'bin'}`;
      writeFileSync(join(src, name), data);
      items.push([name, data]);
      bytes += size;
    }
    await mapLimit(items, 32, async ([k, d]) => {
      await client.send(new PutObjectCommand({ Bucket: srv.bucket, Key: `src/${k}`, Body: d }));
    });
    client.destroy();
    log(`${N} files (${(bytes / MiB).toFixed(1)} MiB) on disk and on s3rver`);

    const runs: Record<'local' | 's3', { fps: number; mbps: number; cpu: number; srv: number; mem: number }[]> = { local: [], s3: [] };
    const memNow = (): number => {
      const m = process.memoryUsage();
      return m.heapUsed + m.external + m.arrayBuffers;
    };
    const one = async (kind: 'local' | 's3', round: number): Promise<void> => {
      const source: PackSource = kind === 'local'
        ? new LocalSource(src)
        : new S3PrefixSource(`s3://${srv.bucket}/src`, { endpoint: srv.endpoint, ...CREDS }, READ_AHEAD !== undefined ? { readAhead: READ_AHEAD } : {});
      const dest = join(base, `set-${kind}-${round}`);
      const store = new LocalShardStore(dest);
      const c0 = cpuMs();
      const s0 = serverCpuMs();
      // Peak of this thread's heap + buffers above the start, sampled every 20 ms (workers not included).
      const m0 = memNow();
      let peak = 0;
      const sampler = setInterval(() => {
        peak = Math.max(peak, memNow() - m0);
      }, 20);
      let res: PackResult;
      try {
        res = await pack(source, store, { shardSize: 64 * MiB, progress: 'none' });
      } finally {
        clearInterval(sampler);
        await source.close();
        await store.close();
      }
      const cpu = cpuMs() - c0;
      const sv = serverCpuMs() - s0;
      if (res.files !== N) throw new Error(`${kind}: packed ${res.files} files, expected ${N}`);
      const row = { fps: res.files / res.seconds, mbps: res.bytes / MiB / res.seconds, cpu: cpu / N, srv: sv / N, mem: peak / MiB };
      runs[kind].push(row);
      log(`round ${round} ${kind}: ${res.seconds.toFixed(2)} s, ${row.fps.toFixed(0)} files/s, ${row.mbps.toFixed(2)} MB/s, client CPU ${row.cpu.toFixed(3)} ms/file, s3rver CPU ${row.srv.toFixed(3)} ms/file, peak heap+buffers +${row.mem.toFixed(1)} MiB (load ${loadavg()[0]!.toFixed(1)})`);
      rmSync(dest, { recursive: true, force: true });
    };
    for (let round = 1; round <= ROUNDS; round++) {
      await one('local', round);
      await one('s3', round);
    }
    const load1 = loadavg();
    const out: string[] = [];
    out.push(`Portico shard pack by source: ${N} files of 1-8 KiB (${(bytes / MiB).toFixed(1)} MiB) to a local set, ${ROUNDS} rounds A B, medians`);
    out.push(`load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}, at end ${load1.map((x) => x.toFixed(2)).join(' ')}`);
    out.push(`${'source'.padEnd(40)}${'files/s'.padStart(12)}${'MB/s'.padStart(10)}${'client CPU ms/file'.padStart(22)}${'s3rver CPU ms/file'.padStart(22)}${'peak MiB'.padStart(10)}`);
    for (const [label, k] of [['local directory', 'local'], ['S3 prefix on s3rver', 's3']] as const) {
      const rs = runs[k];
      out.push(`${label.padEnd(40)}${median(rs.map((x) => x.fps)).toFixed(0).padStart(12)}${median(rs.map((x) => x.mbps)).toFixed(2).padStart(10)}${median(rs.map((x) => x.cpu)).toFixed(3).padStart(22)}${median(rs.map((x) => x.srv)).toFixed(3).padStart(22)}${median(rs.map((x) => x.mem)).toFixed(1).padStart(10)}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
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
