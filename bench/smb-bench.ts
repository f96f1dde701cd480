/**
 * SMB benchmark: Portico against Samba's smbd (bench/peers/samba.ts), both serving the SAME
 * directory (prepared once) as the share "share" on 127.0.0.1, both up for the whole run, measured
 * the same way by the same client, Samba 4.17's smbclient (one process per figure, a private client
 * smb.conf), on SMB 3.1.1 signed (`--client-protection=sign`) and for the big file also encrypted
 * (`--client-protection=encrypt`: AES-128-GCM on both). Each figure is measured on both servers in
 * turn, the order alternating every round (ABBA), so a shared machine's changing load weighs on both
 * alike; the load average is printed before and after.
 *
 *   node bench/smb-bench.ts                  1 GiB file (best of 2), 500 x 4 KiB (3 rounds), 20 logins per round
 *   BENCH_QUICK=1 node bench/smb-bench.ts    100 MB file
 *   BENCH_BIG_ROUNDS=N                       N rounds of each big-file figure (default 2; best of them)
 *   BENCH_PUT_SETTLE_MS=MS                   pause before each big put (default 6000; 0: none), see below
 *   BENCH_CPU_PROF=DIR                       Portico runs under `node --cpu-prof --cpu-prof-dir DIR`
 *   BENCH_ONLY=big,small,setup,enc           only those groups of figures (or metrics: getBig,putBigEnc,...)
 *   BENCH_SMALL_WARM=N                       untimed mput+mget rounds before the 4 KiB figures (default 3; 0: cold)
 *   BENCH_PORTICO_BASELINE=TREE              also measures TREE's Portico (another checkout, e.g. a
 *                                            `git worktree` of an older commit) as "portico-base",
 *                                            in the same rotation: before/after figures of one run
 *
 * Figures: `get` and `put` of the big file (MB/s = 10^6 B/s of the whole smbclient run, which
 * includes its connection set-up: a few ms against seconds; get to /dev/null, put from the served
 * file, read from the page cache), the same encrypted, `mput` and `mget` of 500 x 4 KiB files
 * (files/s, `prompt off`, one smbclient each; after untimed warm-up rounds of the same on every
 * server, SMALL_WARM_ROUNDS below), and session set-up: the median of N
 * `smbclient -c exit` runs (process start, NEGOTIATE, SESSION_SETUP, TREE_CONNECT, LOGOFF) and the
 * median of N impacket logins in one Python process (NEGOTIATE to LOGOFF without the process start,
 * where /usr/bin/python3 has impacket).
 *
 * Portico runs as deployed by default (a user added with `portico user add`, signing required,
 * audit log on); smbd with Samba's defaults for a standalone server. Ratios are Portico / smbd
 * (> 1: Portico faster; for ms, smbd ms / Portico ms). The script never exits non-zero because of
 * a ratio.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { flushDirtyPages, median } from './lib.ts';
import { aptInstall, freePort, type PeerServer } from './peers/peers.ts';
import { startPorticoChild } from './peers/portico-child.ts';
import { startSmbd, waitForTcp } from './peers/samba.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const CPU_PROF = process.env.BENCH_CPU_PROF;
const BASELINE = process.env.BENCH_PORTICO_BASELINE;
const BIG_BYTES = QUICK ? 100 * 1000 * 1000 : 1024 * 1024 * 1024;
const BIG_LABEL = QUICK ? '100 MB' : '1 GiB';
const BIG_ROUNDS = Number(process.env.BENCH_BIG_ROUNDS ?? 2);
/**
 * The pause before each big put. On the development VM (Firecracker, virtio-balloon with free page
 * reporting) memory the guest has left free for ~2 s or more goes back to the host, and the next
 * first touch of each page is a host fault: a put into a new file then costs ~2.5 ms of system time
 * per MiB in the writer's page-cache copy and runs several times slower (a 1 GiB `dd` into a new
 * file: 2.5-2.8 s of system time and 4-6 s after a pause of 5 s or more, 0.25 s and 0.6 s right
 * after an `rm` of the previous one). Each put's file is removed after it, so without a pause the
 * round right after another's put reuses its freed pages and the round after a pause (the first
 * put of a group, after the gets) does not: the order, not the server, decided most of the figure.
 * With the pause every round, on every server, starts from the same cold state.
 */
const PUT_SETTLE_MS = Number(process.env.BENCH_PUT_SETTLE_MS ?? 6000);
const SMALL_FILES = 500;
const SMALL_BYTES = 4096;
const SMALL_ROUNDS = Number(process.env.BENCH_SMALL_ROUNDS ?? 3);
/**
 * Untimed rounds of mput + mget of the 500 files on every server before the 4 KiB figures. A
 * long-running gateway has compiled its per-file path (CREATE, QUERY_INFO, CLOSE, directory
 * lookups); a fresh Node process has not: measured in the SMB helper's profiles, V8's optimising
 * compiler cost Portico 0.13-0.32 ms per file over about the first 3,000 files and 0.01-0.11 ms
 * after, and the big-file figures before compile only the READ/WRITE path. Three rounds (3,000
 * operations) move the 4 KiB figures past that window, as bench:webdav's WARM_GETS do; smbd gets
 * the same rounds (its caches warm up too). BENCH_SMALL_WARM=0 measures the cold process.
 */
const SMALL_WARM_ROUNDS = Number(process.env.BENCH_SMALL_WARM ?? (QUICK ? 1 : 3));
const LOGINS = 20;
const SETUP_ROUNDS = 2;
const PYTHON = '/usr/bin/python3';
const PASS = 'bench-password-1';
const PORTICO_USER = 'bench';
/** smbd switches to the Unix user; the bench runs as root. */
const SAMBA_USER = 'root';

const log = (line: string): void => void process.stderr.write(`[smb-bench] ${line}\n`);

interface Contender {
  name: 'portico' | 'portico-base' | 'smbd';
  server: PeerServer;
  port: number;
  user: string;
}

type Metric = 'getBig' | 'putBig' | 'getBigEnc' | 'putBigEnc' | 'putSmall' | 'getSmall' | 'setupSmbclient' | 'setupImpacket';

const METRICS: { key: Metric; group: string; label: string; unit: string; higherIsBetter: boolean }[] = [
  { key: 'getBig', group: 'big', label: `get ${BIG_LABEL} (signed)`, unit: 'MB/s', higherIsBetter: true },
  { key: 'putBig', group: 'big', label: `put ${BIG_LABEL} (signed)`, unit: 'MB/s', higherIsBetter: true },
  { key: 'getBigEnc', group: 'enc', label: `get ${BIG_LABEL} (encrypted)`, unit: 'MB/s', higherIsBetter: true },
  { key: 'putBigEnc', group: 'enc', label: `put ${BIG_LABEL} (encrypted)`, unit: 'MB/s', higherIsBetter: true },
  { key: 'putSmall', group: 'small', label: `mput ${SMALL_FILES} x 4 KiB`, unit: 'files/s', higherIsBetter: true },
  { key: 'getSmall', group: 'small', label: `mget ${SMALL_FILES} x 4 KiB`, unit: 'files/s', higherIsBetter: true },
  { key: 'setupSmbclient', group: 'setup', label: 'smbclient -c exit', unit: 'ms', higherIsBetter: false },
  { key: 'setupImpacket', group: 'setup', label: 'impacket login+tree+logoff', unit: 'ms', higherIsBetter: false },
];

interface Results {
  figures: Partial<Record<Metric, number>>;
  samples: Partial<Record<Metric, number[]>>;
  errors: Partial<Record<Metric, string>>;
  /** Server CPU (user + system, ms) per round: the figure a loaded machine does not skew much. */
  cpuMs: Partial<Record<Metric, number[]>>;
}

// ---------------------------------------------------------------- server CPU

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** A process's utime + stime + cutime + cstime in ticks (undefined once it is gone). */
function procTicks(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

/** A process's children, from /proc/PID/task/TID/children of each of its threads. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      // the thread is gone
    }
  }
  return out;
}

/**
 * CPU ms of a server and every process under it (smbd forks one per connection; reaped ones count
 * in cutime). The tree is walked down from the server (/proc/PID/task/TID/children), never by
 * reading every process's stat: on a shared machine a stat read of someone else's process stuck in
 * uninterruptible sleep blocks, and did block this bench for good.
 */
function treeCpu(root: number): { ms: number; pids: Set<number> } {
  const pids = new Set<number>([root]);
  for (const todo = [root]; todo.length > 0; ) for (const c of childrenOf(todo.pop()!)) if (!pids.has(c)) (pids.add(c), todo.push(c));
  let ticks = 0;
  for (const pid of pids) ticks += procTicks(pid) ?? 0;
  return { ms: (ticks * 1000) / CLK_TCK, pids };
}

/** Waits (up to 3 s) until the server's process tree is back to `before` (smbd's connection child reaped). */
async function settled(root: number, before: Set<number>): Promise<number> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const now = treeCpu(root);
    if ([...now.pids].every((p) => before.has(p)) || Date.now() > deadline) return now.ms;
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------- client

let clientConf = '';

function smbclient(c: Contender, protection: 'sign' | 'encrypt', commands: string, timeoutMs: number): Promise<{ ms: number; out: string }> {
  const args = ['-s', clientConf, `//127.0.0.1/share`, '-p', String(c.port), '-U', `${c.user}%${PASS}`, '-m', 'SMB3_11', `--client-protection=${protection}`, '-c', commands];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('smbclient', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out = out.length < 4_000_000 ? out + d : out));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out = out.length < 4_000_000 ? out + d : out));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code !== 0 || /NT_STATUS_/.test(out)) reject(new Error(`smbclient on ${c.name} (${commands}) exited ${code}: ${out.trim().split('\n').slice(-5).join(' | ')}`));
      else resolve({ ms, out });
    });
  });
}

const IMPACKET_SCRIPT = `
import sys, time
from impacket.smbconnection import SMBConnection
port, user, pw, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
times = []
for i in range(n):
    t0 = time.perf_counter()
    c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=port)
    c.login(user, pw)
    tid = c.connectTree('share')
    c.disconnectTree(tid)
    c.logoff()
    c.close()
    times.append((time.perf_counter() - t0) * 1000)
print(' '.join('%.3f' % t for t in times))
`;

function impacketLogins(c: Contender, n: number): number[] {
  const r = spawnSync(PYTHON, ['-c', IMPACKET_SCRIPT, String(c.port), c.user, PASS, String(n)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`impacket on ${c.name} exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout.trim().split(/\s+/).map(Number);
}

const HAVE_IMPACKET = spawnSync(PYTHON, ['-c', 'import impacket'], { stdio: 'ignore' }).status === 0;

// ---------------------------------------------------------------- measurement

/** Runs fn for each contender, `rounds` times, order alternating (AB, BA, AB, ...; ABC, CBA, ...). */
async function interleave(cs: Contender[], rounds: number, fn: (c: Contender, round: number) => Promise<void>): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? cs : [...cs].reverse();
    for (const c of order) await fn(c, r);
  }
}

/** Whether BENCH_ONLY lets `key` (or its group) be measured. */
function wants(key: Metric): boolean {
  return !ONLY || ONLY.has(key) || ONLY.has(METRICS.find((m) => m.key === key)!.group);
}

async function measure(cs: Contender[], key: Metric, rounds: number, results: Map<string, Results>, one: (c: Contender, round: number) => Promise<number | number[]>, reduce: (samples: number[]) => number): Promise<void> {
  if (!wants(key)) return;
  log(`${key}: ${rounds} rounds, ${cs.map((c) => c.name).join('/')} alternating; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await interleave(cs, rounds, async (c, round) => {
    const res = results.get(c.name)!;
    if (res.errors[key] !== undefined) return;
    try {
      const cpu0 = treeCpu(c.server.pid);
      const v = await one(c, round);
      const cpu = (await settled(c.server.pid, cpu0.pids)) - cpu0.ms;
      (res.cpuMs[key] ??= []).push(cpu);
      (res.samples[key] ??= []).push(...(Array.isArray(v) ? v : [v]));
      log(`  ${c.name} round ${round + 1}: ${Array.isArray(v) ? `median ${median(v).toFixed(1)}` : v.toFixed(1)}, server CPU ${cpu.toFixed(0)} ms`);
    } catch (e) {
      res.errors[key] = e instanceof Error ? e.message : String(e);
      log(`  ${c.name}: ${res.errors[key]}`);
    }
  });
  for (const c of cs) {
    const res = results.get(c.name)!;
    const s = res.samples[key];
    if (s && s.length && res.errors[key] === undefined) res.figures[key] = reduce(s);
  }
}

async function measureAll(cs: Contender[], data: string, base: string, results: Map<string, Results>): Promise<void> {
  const bigTimeout = 20 * 60_000;
  const mbps = (ms: number): number => BIG_BYTES / 1e6 / (ms / 1000);
  const best = (s: number[]): number => Math.max(...s);
  for (const [key, protection] of [['getBig', 'sign'], ['getBigEnc', 'encrypt']] as const) {
    await measure(cs, key, BIG_ROUNDS, results, async (c) => mbps((await smbclient(c, protection, 'get big.bin /dev/null', bigTimeout)).ms), best);
  }
  for (const [key, protection] of [['putBig', 'sign'], ['putBigEnc', 'encrypt']] as const) {
    await measure(cs, key, BIG_ROUNDS, results, async (c) => {
      flushDirtyPages();
      if (PUT_SETTLE_MS > 0) await new Promise((z) => setTimeout(z, PUT_SETTLE_MS));
      const ms = (await smbclient(c, protection, `put ${join(data, 'big.bin')} put-${c.name}\\big.bin`, bigTimeout)).ms;
      rmSync(join(data, `put-${c.name}`, 'big.bin'), { force: true });
      return mbps(ms);
    }, best);
  }
  const src = join(base, 'small-src');
  const filesPerSec = (ms: number): number => SMALL_FILES / (ms / 1000);
  if (wants('putSmall') || wants('getSmall')) {
    for (let round = 0; round < SMALL_WARM_ROUNDS; round++) {
      for (const c of cs) {
        const dir = `put-${c.name}\\warm-${round}`;
        await smbclient(c, 'sign', `mkdir ${dir}; cd ${dir}; lcd ${src}; prompt off; mput f*`, 10 * 60_000);
        // Nothing made here is removed before the run ends: mass deletes make ext4's next creates
        // scan for inodes not recently freed (find_inode_bit/recently_deleted, ~1 ms a create here),
        // which would land on whichever server creates first in the timed rounds.
        const dst = join(base, `warm-${c.name}-${round}`);
        mkdirSync(dst, { recursive: true });
        await smbclient(c, 'sign', `cd small; lcd ${dst}; prompt off; mget f*`, 10 * 60_000);
      }
    }
    if (SMALL_WARM_ROUNDS > 0) log(`small files: ${SMALL_WARM_ROUNDS} untimed round(s) of mput + mget of ${SMALL_FILES} files on each server done`);
  }
  await measure(cs, 'putSmall', SMALL_ROUNDS, results, async (c, round) => {
    flushDirtyPages();
    const dir = `put-${c.name}\\small-${round}`;
    const r = await smbclient(c, 'sign', `mkdir ${dir}; cd ${dir}; lcd ${src}; prompt off; mput f*`, 10 * 60_000);
    const n = (r.out.match(/putting file/g) ?? []).length;
    if (n !== SMALL_FILES) throw new Error(`mput put ${n} files, expected ${SMALL_FILES}`);
    return filesPerSec(r.ms);
  }, median);
  await measure(cs, 'getSmall', SMALL_ROUNDS, results, async (c, round) => {
    const dst = join(base, `get-${c.name}-${round}`);
    mkdirSync(dst, { recursive: true });
    const r = await smbclient(c, 'sign', `cd small; lcd ${dst}; prompt off; mget f*`, 10 * 60_000);
    const n = (r.out.match(/getting file/g) ?? []).length;
    rmSync(dst, { recursive: true, force: true });
    if (n !== SMALL_FILES) throw new Error(`mget got ${n} files, expected ${SMALL_FILES}`);
    return filesPerSec(r.ms);
  }, median);
  await measure(cs, 'setupSmbclient', SETUP_ROUNDS, results, async (c) => {
    const t: number[] = [];
    for (let i = 0; i < LOGINS; i++) t.push((await smbclient(c, 'sign', 'exit', 30_000)).ms);
    return t;
  }, median);
  if (HAVE_IMPACKET) await measure(cs, 'setupImpacket', SETUP_ROUNDS, results, async (c) => impacketLogins(c, LOGINS), median);
}

// ---------------------------------------------------------------- data set

function prepare(base: string): string {
  const data = join(base, 'share');
  mkdirSync(join(data, 'small'), { recursive: true });
  mkdirSync(join(base, 'small-src'));
  log(`preparing ${data}: ${BIG_LABEL} file, ${SMALL_FILES} x 4 KiB`);
  const block = randomBytes(1024 * 1024);
  const big = join(data, 'big.bin');
  writeFileSync(big, Buffer.alloc(0));
  for (let left = BIG_BYTES; left > 0; left -= block.length) writeFileSync(big, left >= block.length ? block : block.subarray(0, left), { flag: 'a' });
  for (let i = 0; i < SMALL_FILES; i++) {
    const name = `f${String(i).padStart(3, '0')}`;
    writeFileSync(join(data, 'small', name), randomBytes(SMALL_BYTES));
    writeFileSync(join(base, 'small-src', name), randomBytes(SMALL_BYTES));
  }
  for (const s of ['portico', 'portico-base', 'smbd']) mkdirSync(join(data, `put-${s}`));
  flushDirtyPages();
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

function table(head: string[], rows: string[][], leftCols = 2): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < leftCols ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const failed = aptInstall(['samba', 'smbclient'], log);
  if (failed.size) throw new Error(`cannot run without ${[...failed.keys()].join(', ')}: ${[...failed.values()].join('; ')}`);
  const base = mkdtempSync(join(tmpdir(), 'portico-smb-bench-'));
  const running: PeerServer[] = [];
  const results = new Map<string, Results>();
  const loadBefore = loadavg();
  try {
    clientConf = join(base, 'client.conf');
    writeFileSync(clientConf, '[global]\n  workgroup = WORKGROUP\n');
    const data = prepare(base);
    const smbPort = await freePort();
    log('portico: starting');
    const portico = await startPorticoChild({
      dir: data, user: PORTICO_USER, pass: PASS,
      protocols: { smb: { port: smbPort, listen: '127.0.0.1' } },
      ...(CPU_PROF ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] } : {}),
    });
    running.push(portico);
    await waitForTcp(smbPort, () => portico.child.exitCode === null, 20_000, portico.logTail);
    log(`portico: SMB on ${smbPort} (pid ${portico.pid})`);
    let baseline: PeerServer | undefined;
    let basePort = 0;
    if (BASELINE) {
      basePort = await freePort();
      log(`portico-base (${BASELINE}): starting`);
      baseline = await startPorticoChild({ dir: data, user: PORTICO_USER, pass: PASS, name: 'portico-base', bin: join(BASELINE, 'bin', 'portico.js'), protocols: { smb: { port: basePort, listen: '127.0.0.1' } } });
      running.push(baseline);
      const b = baseline;
      await waitForTcp(basePort, () => b.child.exitCode === null, 20_000, b.logTail);
    }
    log('smbd: starting');
    const smbd = await startSmbd({ dir: data, user: SAMBA_USER, pass: PASS });
    running.push(smbd);
    log(`smbd: on ${smbd.port} (pid ${smbd.pid})`);
    const cs: Contender[] = [
      { name: 'portico', server: portico, port: smbPort, user: PORTICO_USER },
      ...(baseline ? [{ name: 'portico-base' as const, server: baseline, port: basePort, user: PORTICO_USER }] : []),
      { name: 'smbd', server: smbd, port: smbd.port, user: SAMBA_USER },
    ];
    for (const c of cs) results.set(c.name, { figures: {}, samples: {}, errors: {}, cpuMs: {} });
    // Warm-up: one login and listing each (first-start costs out of the figures).
    for (const c of cs) await smbclient(c, 'sign', 'ls', 30_000);
    await measureAll(cs, data, base, results);
  } finally {
    for (const s of running.reverse()) await s.stop().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  const p = results.get('portico')!;
  const s = results.get('smbd')!;
  const ratio = (m: (typeof METRICS)[number]): number | undefined => {
    const a = p.figures[m.key];
    const b = s.figures[m.key];
    if (a === undefined || b === undefined || a <= 0 || b <= 0) return undefined;
    return m.higherIsBetter ? a / b : b / a;
  };
  const shown = METRICS.filter((m) => !ONLY || ONLY.has(m.group) || ONLY.has(m.key));
  const b = results.get('portico-base');
  const out: string[] = [];
  out.push(`SMB benchmark${QUICK ? ' (BENCH_QUICK=1)' : ''}: smbclient 4.17, SMB 3.1.1, Portico vs smbd ${spawnSync('smbd', ['--version'], { encoding: 'utf8' }).stdout.trim()} on the same directory, alternating order`);
  out.push(`big file: best of ${BIG_ROUNDS}; 4 KiB files: median of ${SMALL_ROUNDS}; set-up: median of ${SETUP_ROUNDS} x ${LOGINS}. load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after: ${loadAfter.map((l) => l.toFixed(2)).join(' ')} (2 cores, shared)`);
  out.push('');
  out.push(
    table(
      ['metric', 'unit', 'portico', 'smbd', 'portico/smbd', 'aim'],
      shown.map((m) => {
        const r = ratio(m);
        const aim = m.key.startsWith('setup') ? '-' : '>= 1.0x';
        return [m.label, m.unit, p.errors[m.key] ? 'error' : fmt(p.figures[m.key]), s.errors[m.key] ? 'error' : fmt(s.figures[m.key]), r === undefined ? '-' : `${r.toFixed(2)}x`, r === undefined || aim === '-' ? aim : `${aim} ${r >= 1 ? 'PASS' : 'BELOW'}`];
      }),
    ),
  );
  out.push('ratio: Portico speed / smbd speed (> 1: Portico faster; ms figures: smbd ms / Portico ms)');
  out.push('');
  out.push('Server CPU (user + system of the server and its children, median per round; less skewed by a loaded machine than the speeds),');
  out.push('also per unit of work: per MB (10^6 B) moved, per file, per login:');
  const cpuOf = (r: Results, k: Metric): number | undefined => (r.cpuMs[k]?.length ? median(r.cpuMs[k]!) : undefined);
  const perUnit = (m: (typeof METRICS)[number]): { unit: string; n: number } =>
    m.unit === 'MB/s' ? { unit: 'ms/MB', n: BIG_BYTES / 1e6 } : m.unit === 'files/s' ? { unit: 'ms/file', n: SMALL_FILES } : { unit: 'ms/login', n: LOGINS };
  const per = (v: number | undefined, m: (typeof METRICS)[number]): string => (v === undefined ? '-' : (v / perUnit(m).n).toFixed(3));
  out.push(
    table(
      ['metric', 'per', 'portico CPU ms', 'smbd CPU ms', 'portico per', 'smbd per', 'smbd/portico'],
      shown.map((m) => {
        const a = cpuOf(p, m.key);
        const b = cpuOf(s, m.key);
        return [m.label, perUnit(m).unit, fmt(a), fmt(b), per(a, m), per(b, m), a && b ? `${(b / a).toFixed(2)}x` : '-'];
      }),
      2,
    ),
  );
  if (b) {
    out.push('');
    out.push(`portico-base: ${BASELINE} (the same bench, same rotation). portico / portico-base (> 1: faster now), and portico-base / smbd:`);
    const rel = (m: (typeof METRICS)[number], x: number | undefined, y: number | undefined): string => (x && y ? `${(m.higherIsBetter ? x / y : y / x).toFixed(2)}x` : '-');
    out.push(
      table(
        ['metric', 'unit', 'portico-base', 'portico/base', 'base/smbd', 'base CPU ms'],
        shown.map((m) => [m.label, m.unit, fmt(b.figures[m.key]), rel(m, p.figures[m.key], b.figures[m.key]), rel(m, b.figures[m.key], s.figures[m.key]), fmt(b.cpuMs[m.key]?.length ? median(b.cpuMs[m.key]!) : undefined)]),
      ),
    );
  }
  for (const [name, r] of results) for (const [k, e] of Object.entries(r.errors)) out.push(`error: ${name} ${k}: ${e}`);
  if (!HAVE_IMPACKET) out.push(`impacket figures skipped: ${PYTHON} has no impacket (Debian python3-impacket)`);
  process.stdout.write(out.join('\n') + '\n');
  process.stdout.write(
    JSON.stringify({
      bench: 'smb', quick: QUICK, bigBytes: BIG_BYTES, smallFiles: SMALL_FILES, loadBefore, loadAfter,
      servers: Object.fromEntries([...results].map(([n, r]) => [n, { ...r.figures, samples: r.samples, cpuMs: r.cpuMs, errors: r.errors }])),
      ratios: Object.fromEntries(shown.map((m) => [m.key, ratio(m)])),
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`smb-bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
