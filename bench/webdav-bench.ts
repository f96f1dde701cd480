/**
 * WebDAV benchmark: Portico against nginx (dav + dav_ext), Apache mod_dav and `rclone serve webdav`,
 * all serving the SAME directory (prepared once) as /share/ on 127.0.0.1, measured in one run by the
 * same client (node:http with keep-alive agents, written here). All servers are started first and
 * each figure is measured on them in turn, in an order that rotates every round (big files: 2
 * rounds; 4 KiB figures: 3 slices; PROPFIND: 5 rounds), so that a shared machine's changing load
 * weighs on every server alike instead of on whichever happened to be measured during a busy minute.
 *
 *   node bench/webdav-bench.ts            1 GiB file, 3,000 ops per small-file figure, 10,000 entries
 *   BENCH_QUICK=1 node bench/webdav-bench.ts   100 MB, 500 ops, 1,000 entries
 *
 * Figures per server: GET and PUT of the big file (MB/s = 10^6 B/s, streamed both ways, best of 2),
 * 4 KiB PUT and GET at concurrency 1 and 16 (ops/s over all slices; every file is touched once per
 * figure, so Portico's first access to a file — creating its persistent id — is in the GET c=1
 * figure; a third GET of every file at c=1, "warm", shows the request without it; for the
 * GETs also the server process's CPU µs per GET, Portico's and node-floor's, which a shared
 * machine's load changes far less than ops/s; the load averages are printed too), PROPFIND Depth 1 of the big directory (ms,
 * median of 5, whole response read and its <response> elements counted), and Portico's peak RSS
 * during the big PUT (/proc/PID/status sampled every 50 ms, plus VmHWM).
 *
 * Every server gets the same warm-up: 64 files GET once before any figure, and 3,000 GETs of them
 * (1,000 with BENCH_QUICK) before the 4 KiB figures, so that these measure optimised code, as a
 * long-running server has (after the big files, whose RSS figure they would otherwise raise).
 *
 * Portico authenticates every request with Basic auth (default bcrypt cost); the peers run without
 * auth, which favours them. Portico runs twice: as deployed by default (durable writes: a PUT is
 * acknowledged once data and name are fsync'ed), and with `fsync: false` on the share for the PUT
 * figures only — what the peers do (none of them fsyncs) — so the comparison is honest both ways.
 * Peers missing on the machine are installed with apt-get (nginx-extras, apache2, rclone); one is
 * skipped only when apt cannot install it, and the output says so. Ratios are printed next to their
 * aims; the script never exits non-zero because of a ratio. BENCH_SERVERS=portico,nginx measures only
 * the servers named (portico, portico-nofsync, nginx, apache, rclone, node-floor; portico is
 * always needed).
 *
 * node-floor (bench/peers/node-floor.ts) is not a peer: node:http answering a fixed 4 KiB body from
 * memory, measured for the GET 4 KiB figures only, so that the output shows the ceiling of any
 * server on Node's HTTP stack on this machine next to the peers (and Portico's share of it).
 */
import { request, Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { flushDirtyPages, mapLimit, median } from './lib.ts';
import { aptInstall, chownTree, makeTraversable, startApache, startNginx, startNodeFloor, startRcloneServe, userIds, type PeerServer } from './peers/peers.ts';
import { memoryOf, startPorticoChild } from './peers/portico-child.ts';

const QUICK = process.env.BENCH_QUICK === '1';
/** BENCH_SERVERS=portico,nginx measures only those (default: all). For quick iterations. */
const ONLY = process.env.BENCH_SERVERS ? new Set(process.env.BENCH_SERVERS.split(',').map((s) => s.trim())) : undefined;
const BIG_BYTES = QUICK ? 100 * 1000 * 1000 : 1024 * 1024 * 1024;
const BIG_LABEL = QUICK ? '100 MB' : '1 GiB';
const SMALL_BYTES = 4096;
const SMALL_OPS = QUICK ? 500 : 3000;
const ENTRIES = QUICK ? 1000 : 10_000;
const BIG_ROUNDS = 2;
/** Slices of each small-file figure, interleaved between the servers. */
const SMALL_ROUNDS = 3;
const PROPFIND_ROUNDS = 5;
const USER = 'bench';
const PASS = 'bench-password-1';
const RSS_AIM_MB = 200;

/** The second Portico run: `fsync: false` on the share, PUT figures only. */
const NOFSYNC = 'portico-nofsync';
/**
 * Not a peer: node:http answering a fixed 4 KiB body from memory (bench/peers/node-floor.ts), GET
 * 4 KiB figures only. The most any server on Node's HTTP stack can do here, printed beside the
 * peers so that their ratios can be read against it.
 */
const FLOOR = 'node-floor';
const FLOOR_METRICS: readonly Metric[] = ['get4kC1', 'get4kC16', 'get4kC1Warm'];

const PEERS = [
  { name: 'nginx', pkg: 'nginx-extras', start: startNginx },
  { name: 'apache', pkg: 'apache2', start: startApache },
  { name: 'rclone', pkg: 'rclone', start: startRcloneServe },
] as const;

type Metric = 'getBig' | 'putBig' | 'put4kC1' | 'put4kC16' | 'get4kC1' | 'get4kC16' | 'get4kC1Warm' | 'propfind';

const METRICS: { key: Metric; label: string; unit: string; higherIsBetter: boolean; big: boolean }[] = [
  { key: 'getBig', label: `GET ${BIG_LABEL}`, unit: 'MB/s', higherIsBetter: true, big: true },
  { key: 'putBig', label: `PUT ${BIG_LABEL}`, unit: 'MB/s', higherIsBetter: true, big: true },
  { key: 'put4kC1', label: 'PUT 4 KiB c=1', unit: 'ops/s', higherIsBetter: true, big: false },
  { key: 'put4kC16', label: 'PUT 4 KiB c=16', unit: 'ops/s', higherIsBetter: true, big: false },
  { key: 'get4kC1', label: 'GET 4 KiB c=1', unit: 'ops/s', higherIsBetter: true, big: false },
  { key: 'get4kC16', label: 'GET 4 KiB c=16', unit: 'ops/s', higherIsBetter: true, big: false },
  // The c=1 figure above is each file's FIRST GET (Portico creates its persistent id then); this
  // one is a third GET of every file, so the two together tell the first access from the request.
  { key: 'get4kC1Warm', label: 'GET 4 KiB c=1 warm', unit: 'ops/s', higherIsBetter: true, big: false },
  { key: 'propfind', label: `PROPFIND D1 ${ENTRIES.toLocaleString('en-US')}`, unit: 'ms', higherIsBetter: false, big: false },
];

interface ServerFigures {
  figures: Partial<Record<Metric, number>>;
  errors: Partial<Record<Metric, string>>;
  samples: Partial<Record<Metric, number[]>>;
  propfindBytes?: number;
  /**
   * CPU time the server process spent per GET 4 KiB (µs: the scheduler's run time of all its
   * threads over the figure's slices, cpuMsOf): unlike ops/s it hardly depends on what else the
   * machine runs, so it compares Portico with node-floor when a shared machine's load changes the
   * throughput figures.
   */
  cpuUsPerOp?: Partial<Record<Metric, number>>;
}

/** Clock ticks per second of /proc/PID/stat's CPU times. */
const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time a process has used so far, ms; undefined once it is gone. From the scheduler's own
 * accounting of each of its threads (/proc/PID/task/TID/schedstat: nanoseconds on a CPU), which
 * is exact where /proc/PID/stat counts clock ticks (10 ms): node-floor spends ~10-30 ms on a
 * slice of 4 KiB GETs, so tick counts left its CPU per GET a multiple of 6.7 µs or 20 µs. Falls
 * back to stat's user + system ticks where schedstat is missing (kernels without schedstats).
 */
function cpuMsOf(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // A thread that just ended: its time is in no file any more (V8 helpers live as long as the process).
      }
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1e6;
  } catch {
    // No /proc/PID/task (gone, or no schedstat): ticks below.
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3: utime is 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** The 1, 5 and 15 minute load averages, as `uptime` prints them. */
const loadAverages = (): string => loadavg().map((l) => l.toFixed(2)).join(', ');

const log = (line: string): void => void process.stderr.write(`[webdav-bench] ${line}\n`);

// ---------------------------------------------------------------- client

interface Target {
  name: string;
  port: number;
  auth: string | undefined;
  agent: Agent;
}

interface Reply {
  status: number;
  bytes: number;
  body?: Buffer;
}

function pathOf(rel: string): string {
  return '/share/' + rel.split('/').map(encodeURIComponent).join('/');
}

/** One request; the response body is always read to the end (kept only when asked). */
function send(t: Target, method: string, rel: string, opts: { headers?: Record<string, string | number>; body?: Buffer | Readable; keepBody?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    if (t.auth) headers.Authorization = t.auth;
    if (Buffer.isBuffer(opts.body)) headers['Content-Length'] = opts.body.length;
    const req = request({ host: '127.0.0.1', port: t.port, method, path: pathOf(rel), headers, agent: t.agent }, (res) => {
      let bytes = 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (opts.keepBody) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ...(opts.keepBody ? { body: Buffer.concat(chunks) } : {}) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body === undefined) req.end();
    else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
    else {
      opts.body.on('error', (e) => req.destroy(e));
      opts.body.pipe(req);
    }
  });
}

function expectStatus(r: Reply, ok: number[], what: string): void {
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status}`);
}

/** `bytes` of data from one reused 1 MiB random block: streamed, never held whole. */
function bigSource(bytes: number): Readable {
  const block = randomBytes(1024 * 1024);
  let left = bytes;
  return new Readable({
    highWaterMark: 4 * 1024 * 1024,
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(block.length, left);
      left -= n;
      this.push(n === block.length ? block : block.subarray(0, n));
    },
  });
}

const PROPFIND_BODY = Buffer.from(
  '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>' +
    '<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/><D:getcontenttype/><D:displayname/>' +
    '</D:prop></D:propfind>',
);

/** <response> elements in a multistatus, whatever the prefix. */
function countResponses(xml: Buffer): number {
  return (xml.toString('utf8').match(/<([A-Za-z_][\w.-]*:)?response[\s>]/g) ?? []).length;
}

// ---------------------------------------------------------------- measurements

interface RssFigures {
  /** VmRSS after the warm-up, before the big PUT. */
  idle: number;
  /** Highest VmRSS sampled during the big PUTs. */
  peakRss: number;
  /** VmHWM after the big PUTs (the process's high-water mark so far). */
  hwm: number;
}

/** Metrics a run measures: all, or (the no-fsync Portico) only those fsync changes. */
const PUT_METRICS: readonly Metric[] = ['putBig', 'put4kC1', 'put4kC16'];

/** One server under test, started once and measured metric by metric, interleaved with the others. */
interface Contender {
  name: string;
  server: PeerServer;
  target: Target;
  isPortico: boolean;
  only: readonly Metric[] | undefined;
  out: ServerFigures & { rss?: RssFigures };
}

function targetOf(server: PeerServer): Target {
  return {
    name: server.name,
    port: server.port,
    auth: server.auth ? `Basic ${Buffer.from(`${server.auth.user}:${server.auth.pass}`).toString('base64')}` : undefined,
    agent: new Agent({ keepAlive: true, maxSockets: 16, keepAliveMsecs: 30_000 }),
  };
}

const memOf = (pid: number): { rss: number; hwm: number } | undefined => memoryOf(pid, (p) => readFileSync(p, 'utf8'));

/** Files the warm-up GETs (the others' first access stays in the GET c=1 figure). */
const WARM_FILES = 64;
/**
 * GETs of the warm-up files before the 4 KiB figures. A server process runs for days; its code
 * then runs optimised. Measured here (load 47): the first 2,000 GETs of a fresh Portico cost 552 µs
 * of CPU each, 2,000 first GETs of other files right after 292 µs, the same files again 228-248 µs
 * (node-floor: 72, then 28): with 64 warm-up GETs the c=1 figure measured V8's tiers warming up
 * more than a first access. Every server gets the same warm-up.
 */
const WARM_GETS = QUICK ? 1000 : 3000;
/**
 * Files of their own (`warm/`) each GET once in the warm-up, before WARM_GETS: a file's first
 * access runs code a GET of a known file never does (Portico: the row cache's miss, the new id,
 * the batch that writes it; the checkpoint thread starts when those writes pick up), so after
 * WARM_GETS alone the first GETs of the c=1 figure deoptimised and recompiled it and started the
 * thread: measured with a driver of the bench's pattern (load ~21), a first GET 191 µs of CPU right
 * after the WARM_GETS (V8's helper threads 33 µs of it, compiling; the checkpoint thread 13) and
 * 111-124 µs in later rounds of other new files, the second GET 80-89 µs throughout
 * (docs/ARCHITECTURE.md "Cost per operation"). Every server gets the same warm-up.
 */
const WARM_FIRST = QUICK ? 1000 : 3000;

/**
 * WARM_GETS for everyone, just before the 4 KiB figures: after the big-file figures, so that the
 * RSS measured during the big PUT is not that of a heap grown by them (it was 30-50 MB more).
 */
async function warmCode(c: Contender): Promise<void> {
  await mapLimit(Array.from({ length: WARM_FIRST }, (_, i) => i), 4, async (i) => {
    expectStatus(await send(c.target, 'GET', `warm/w${i}`), [200], 'warm-up first GET');
  });
  await mapLimit(Array.from({ length: WARM_GETS }, (_, i) => i), 4, async (i) => {
    expectStatus(await send(c.target, 'GET', `small/f${i % WARM_FILES}`), [200], 'warm-up GET');
  });
}

/** Warm-up for everyone: connections, the first (bcrypt) login, directory caches. */
async function warmUp(c: Contender): Promise<void> {
  await mapLimit(Array.from({ length: WARM_FILES }, (_, i) => i), 16, async (i) => {
    expectStatus(await send(c.target, 'GET', `small/f${i % SMALL_OPS}`), [200], 'warm-up GET');
  });
  if (c.only && !c.only.includes('propfind')) return;
  expectStatus(await send(c.target, 'PROPFIND', 'dir/', { headers: { Depth: 1, 'Content-Type': 'application/xml' }, body: PROPFIND_BODY }), [207], 'warm-up PROPFIND');
}

/**
 * Runs `sample(contender, round)` for every contender that measures `key`, `rounds` times, the
 * order of the contenders rotating each round: a machine whose load changes during the run then
 * weighs on every server alike (measuring one server after the other made the ratios follow the
 * load). A contender whose sample throws is marked failed for that metric and left out.
 */
async function interleave(cs: Contender[], key: Metric, rounds: number, sample: (c: Contender, round: number) => Promise<void>): Promise<void> {
  const active = cs.filter((c) => !c.only || c.only.includes(key));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < active.length; k++) {
      const c = active[(k + round) % active.length]!;
      if (c.out.errors[key] !== undefined) continue;
      try {
        await sample(c, round);
      } catch (e) {
        c.out.errors[key] = e instanceof Error ? e.message : String(e);
        log(`${c.name} ${key} failed: ${c.out.errors[key]}`);
      }
    }
  }
}

async function measureAll(cs: Contender[]): Promise<void> {
  for (const c of cs) await warmUp(c);
  for (const c of cs) if (c.isPortico) c.out.rss = { idle: memOf(c.server.pid)?.rss ?? 0, peakRss: 0, hwm: 0 };
  const putDir = (c: Contender): string => `put-${c.name}`;

  // Big files: best of BIG_ROUNDS, streamed both ways. Portico's RSS is sampled during its PUTs.
  const bigTimes = new Map<string, { putBig: number[]; getBig: number[] }>();
  const times = (c: Contender): { putBig: number[]; getBig: number[] } => {
    let t = bigTimes.get(c.name);
    if (!t) bigTimes.set(c.name, (t = { putBig: [], getBig: [] }));
    return t;
  };
  await interleave(cs, 'putBig', BIG_ROUNDS, async (c) => {
    flushDirtyPages();
    // sync(1) blocked this event loop for seconds: let the agent's timers and the sockets' FINs be
    // processed first, or a keep-alive socket the server closed meanwhile (idle longer than its
    // keep-alive timeout while other servers were measured) is reused and the PUT fails with EPIPE.
    await new Promise((r) => setTimeout(r, 50));
    const rss = c.out.rss;
    const sampler = rss
      ? setInterval(() => {
          const m = memOf(c.server.pid);
          if (m) rss.peakRss = Math.max(rss.peakRss, m.rss);
        }, 50)
      : undefined;
    const t0 = performance.now();
    try {
      const r = await send(c.target, 'PUT', `${putDir(c)}/big.bin`, { headers: { 'Content-Length': BIG_BYTES, 'Content-Type': 'application/octet-stream' }, body: bigSource(BIG_BYTES) });
      expectStatus(r, [200, 201, 204], 'PUT big');
    } finally {
      if (sampler) clearInterval(sampler);
    }
    times(c).putBig.push(performance.now() - t0);
    if (rss) rss.hwm = Math.max(rss.hwm, memOf(c.server.pid)?.hwm ?? 0);
  });
  await interleave(cs, 'getBig', BIG_ROUNDS, async (c) => {
    const t0 = performance.now();
    const r = await send(c.target, 'GET', 'big.bin');
    expectStatus(r, [200], 'GET big');
    if (r.bytes !== BIG_BYTES) throw new Error(`GET big: ${r.bytes} bytes, expected ${BIG_BYTES}`);
    times(c).getBig.push(performance.now() - t0);
  });
  for (const c of cs) {
    for (const key of ['putBig', 'getBig'] as const) {
      const t = bigTimes.get(c.name)?.[key];
      if (!t || t.length === 0 || c.out.errors[key] !== undefined) continue;
      c.out.samples[key] = t;
      c.out.figures[key] = BIG_BYTES / 1e6 / (Math.min(...t) / 1000);
    }
  }

  for (const c of cs) await warmCode(c);
  // Small files: SMALL_OPS operations per figure in SMALL_ROUNDS slices, every file touched once
  // per figure; ops/s over all slices (first touches included, as a client sees them).
  const payload = randomBytes(SMALL_BYTES);
  const perRound = Math.ceil(SMALL_OPS / SMALL_ROUNDS);
  const small = async (key: Metric, c: number, op: (t: Contender, i: number) => Promise<void>): Promise<void> => {
    const spent = new Map<string, { ops: number; ms: number; samples: number[]; cpuMs: number | undefined }>();
    await interleave(cs, key, SMALL_ROUNDS, async (ct, round) => {
      const first = round * perRound;
      const idx = Array.from({ length: Math.max(0, Math.min(perRound, SMALL_OPS - first)) }, (_, k) => first + k);
      const cpu0 = cpuMsOf(ct.server.pid);
      const t0 = performance.now();
      await mapLimit(idx, c, (i) => op(ct, i));
      const ms = performance.now() - t0;
      const cpu1 = cpuMsOf(ct.server.pid);
      let acc = spent.get(ct.name);
      if (!acc) spent.set(ct.name, (acc = { ops: 0, ms: 0, samples: [], cpuMs: 0 }));
      acc.ops += idx.length;
      acc.ms += ms;
      acc.samples.push(ms);
      acc.cpuMs = acc.cpuMs !== undefined && cpu0 !== undefined && cpu1 !== undefined ? acc.cpuMs + (cpu1 - cpu0) : undefined;
    });
    for (const ct of cs) {
      const acc = spent.get(ct.name);
      if (!acc || ct.out.errors[key] !== undefined) continue;
      ct.out.figures[key] = acc.ops / (acc.ms / 1000);
      ct.out.samples[key] = acc.samples;
      if (acc.cpuMs !== undefined && acc.ops > 0) (ct.out.cpuUsPerOp ??= {})[key] = (acc.cpuMs * 1000) / acc.ops;
    }
  };
  for (const [key, c] of [['put4kC1', 1], ['put4kC16', 16]] as const) {
    await small(key, c, async (ct, i) => {
      expectStatus(await send(ct.target, 'PUT', `${putDir(ct)}/small/c${c}-${i}`, { body: payload }), [200, 201, 204], 'PUT 4 KiB');
    });
  }
  for (const [key, c] of [['get4kC1', 1], ['get4kC16', 16], ['get4kC1Warm', 1]] as const) {
    await small(key, c, async (ct, i) => {
      const r = await send(ct.target, 'GET', `small/f${i}`);
      expectStatus(r, [200], 'GET 4 KiB');
      if (r.bytes !== SMALL_BYTES) throw new Error(`GET 4 KiB: ${r.bytes} bytes`);
    });
  }

  // PROPFIND Depth 1: median of PROPFIND_ROUNDS, the whole response read and counted.
  const pf = new Map<string, number[]>();
  await interleave(cs, 'propfind', PROPFIND_ROUNDS, async (c) => {
    const t0 = performance.now();
    const r = await send(c.target, 'PROPFIND', 'dir/', { headers: { Depth: 1, 'Content-Type': 'application/xml' }, body: PROPFIND_BODY, keepBody: true });
    const ms = performance.now() - t0;
    expectStatus(r, [207], 'PROPFIND');
    const n = countResponses(r.body!);
    if (n !== ENTRIES + 1) throw new Error(`PROPFIND listed ${n} resources, expected ${ENTRIES + 1}`);
    c.out.propfindBytes = r.bytes;
    let t = pf.get(c.name);
    if (!t) pf.set(c.name, (t = []));
    t.push(ms);
  });
  for (const c of cs) {
    const t = pf.get(c.name);
    if (!t || c.out.errors.propfind !== undefined) continue;
    c.out.samples.propfind = t;
    c.out.figures.propfind = median(t);
  }
}

// ---------------------------------------------------------------- data set

function prepare(base: string): string {
  const data = join(base, 'share');
  mkdirSync(join(data, 'dir'), { recursive: true });
  mkdirSync(join(data, 'small'));
  log(`preparing ${data}: ${BIG_LABEL} file, ${SMALL_OPS} x 4 KiB, ${ENTRIES} entries`);
  const block = randomBytes(1024 * 1024);
  const fd = join(data, 'big.bin');
  writeFileSync(fd, Buffer.alloc(0));
  for (let left = BIG_BYTES; left > 0; left -= block.length) {
    writeFileSync(fd, left >= block.length ? block : block.subarray(0, left), { flag: 'a' });
  }
  for (let i = 0; i < SMALL_OPS; i++) writeFileSync(join(data, 'small', `f${i}`), randomBytes(SMALL_BYTES));
  mkdirSync(join(data, 'warm'));
  for (let i = 0; i < WARM_FIRST; i++) writeFileSync(join(data, 'warm', `w${i}`), randomBytes(SMALL_BYTES));
  const entry = Buffer.alloc(100, 'x');
  for (let i = 0; i < ENTRIES; i++) writeFileSync(join(data, 'dir', `entry-${String(i).padStart(5, '0')}.txt`), entry);
  for (const s of ['portico', NOFSYNC, ...PEERS.map((p) => p.name)]) mkdirSync(join(data, `put-${s}`, 'small'), { recursive: true });
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

/** Portico speed / peer speed (>1: Portico faster); for ms figures, peer ms / Portico ms. */
function ratio(metric: (typeof METRICS)[number], portico: number | undefined, peer: number | undefined): number | undefined {
  if (portico === undefined || peer === undefined || portico <= 0 || peer <= 0) return undefined;
  return metric.higherIsBetter ? portico / peer : peer / portico;
}

/** The aim for a ratio: big files >= 0.8x nginx and ahead (> 1x) of Apache and rclone; the rest ahead of every peer. */
function aim(metric: (typeof METRICS)[number], peer: string): { min: number; strict: boolean } {
  if (metric.big && peer === 'nginx') return { min: 0.8, strict: false };
  return { min: 1, strict: true };
}

async function main(): Promise<void> {
  const loadAtStart = loadAverages();
  const base = mkdtempSync(join(tmpdir(), 'portico-webdav-bench-'));
  const running: PeerServer[] = [];
  const results: Record<string, ServerFigures> = {};
  const skipped: Record<string, string> = {};
  let rss: RssFigures | undefined;
  try {
    const failed = aptInstall(PEERS.map((p) => p.pkg), log);
    for (const p of PEERS) {
      const why = failed.get(p.pkg);
      if (why !== undefined) {
        skipped[p.name] = `apt-get could not install ${p.pkg}: ${why}`;
        log(`skipping ${p.name}: ${skipped[p.name]}`);
      }
    }
    makeTraversable(base);
    const data = prepare(base);
    const www = userIds('www-data');
    // Apache and nginx workers run as www-data and must write their PUTs into the shared tree.
    if (www) chownTree(data, www.uid, www.gid);

    const order: { name: string; start: () => Promise<PeerServer>; only?: readonly Metric[] }[] = [
      { name: 'portico', start: () => startPorticoChild({ dir: data, user: USER, pass: PASS }) },
      { name: NOFSYNC, start: () => startPorticoChild({ dir: data, user: USER, pass: PASS, name: NOFSYNC, shareOptions: { fsync: false } }), only: PUT_METRICS },
      ...PEERS.filter((p) => skipped[p.name] === undefined).map((p) => ({ name: p.name, start: () => p.start({ dir: data }) })),
      { name: FLOOR, start: () => startNodeFloor(), only: FLOOR_METRICS },
    ];
    // Every server is started first and stays up; each metric is then measured on all of them in
    // rotating order (interleave()), so load changes on a shared machine hit them alike.
    const contenders: Contender[] = [];
    for (const s of order) {
      if (ONLY && !ONLY.has(s.name)) continue;
      log(`${s.name}: starting`);
      let server: PeerServer;
      try {
        server = await s.start();
      } catch (e) {
        if (s.name === 'portico') throw e;
        skipped[s.name] = `did not start: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
        log(`skipping ${s.name}: ${skipped[s.name]}`);
        continue;
      }
      running.push(server);
      log(`${s.name}: up on ${server.url} (pid ${server.pid})`);
      contenders.push({ name: s.name, server, target: targetOf(server), isPortico: s.name === 'portico', only: s.only, out: { figures: {}, errors: {}, samples: {} } });
    }
    try {
      log(`measuring ${contenders.map((c) => c.name).join(', ')}, interleaved`);
      await measureAll(contenders);
    } finally {
      for (const c of contenders) c.target.agent.destroy();
    }
    for (const c of contenders) {
      results[c.name] = c.out;
      if (c.out.rss) rss = c.out.rss;
    }
  } finally {
    for (const s of running) await s.stop().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  }

  const servers = Object.keys(results);
  const peers = servers.filter((s) => s !== 'portico' && s !== NOFSYNC && s !== FLOOR);
  const floor = results[FLOOR];
  const p = results.portico!;
  const nf = results[NOFSYNC];
  const out: string[] = [];
  out.push(`WebDAV benchmark${QUICK ? ' (BENCH_QUICK=1)' : ''}: ${BIG_LABEL} file (best of ${BIG_ROUNDS}), ${SMALL_OPS.toLocaleString('en-US')} ops per 4 KiB figure, PROPFIND Depth 1 of ${ENTRIES.toLocaleString('en-US')} entries (median of ${PROPFIND_ROUNDS})`);
  out.push(`Same directory, same Node client (keep-alive); all servers up at once, each figure measured on them in turn (rotating order, ${SMALL_ROUNDS} slices per 4 KiB figure). Portico: Basic auth on every request; ${peers.join(', ') || 'no peer'}: no auth.`);
  out.push(`portico: default settings (durable PUT: data and directory fsync'ed before the answer). ${NOFSYNC}: the share with \`fsync: false\`, PUT figures only (the peers never fsync).`);
  if (floor) out.push(`${FLOOR}: not a WebDAV server — node:http answering a fixed 4 KiB body from memory (no disk, no auth), GET 4 KiB only: the ceiling of any server on Node's HTTP stack here.`);
  const loadAtEnd = loadAverages();
  out.push(`Load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAtEnd} at the end (the machine's other work weighs on every ops/s figure; server CPU per GET much less).`);
  for (const [name, why] of Object.entries(skipped)) out.push(`Skipped ${name}: ${why}`);
  out.push('');
  out.push(
    table(
      ['metric', 'unit', ...servers],
      METRICS.map((m) => [m.label, m.unit, ...servers.map((s) => (results[s]!.errors[m.key] ? 'error' : fmt(results[s]!.figures[m.key])))]),
      2,
    ),
  );
  out.push('');
  out.push('ratio = Portico speed / peer speed (> 1: Portico faster; PROPFIND: peer ms / Portico ms); aim in brackets');
  const ratios: Record<string, Record<string, number | undefined>> = {};
  const ratioCell = (m: (typeof METRICS)[number], mine: number | undefined, s: string, record?: Record<string, Record<string, number | undefined>>): string => {
    const r = ratio(m, mine, results[s]!.figures[m.key]);
    if (record) (record[m.key] ??= {})[s] = r;
    const a = aim(m, s);
    if (r === undefined) return `- (${a.strict ? '>' : '>='} ${a.min}x)`;
    const met = a.strict ? r > a.min : r >= a.min;
    return `${r.toFixed(2)}x (${a.strict ? '>' : '>='} ${a.min}x ${met ? 'PASS' : 'BELOW'})`;
  };
  out.push(table(['metric', ...peers.map((s) => `vs ${s}`)], METRICS.map((m) => [m.label, ...peers.map((s) => ratioCell(m, p.figures[m.key], s, ratios))])));
  out.push('');
  if (floor) {
    const getMetrics = METRICS.filter((m) => FLOOR_METRICS.includes(m.key));
    const times = (r: number | undefined): string => (r === undefined ? '-' : `${r.toFixed(2)}x`);
    out.push(`${FLOOR} (Node's HTTP stack alone) against the peers, and Portico's share of it:`);
    out.push(
      table(
        ['metric', ...peers.map((s) => `${FLOOR} vs ${s}`), `portico / ${FLOOR}`],
        getMetrics.map((m) => [
          m.label,
          ...peers.map((s) => times(ratio(m, floor.figures[m.key], results[s]!.figures[m.key]))),
          times(ratio(m, p.figures[m.key], floor.figures[m.key])),
        ]),
      ),
    );
    out.push('');
    const cpuCell = (r: ServerFigures, k: Metric): string => fmt(r.cpuUsPerOp?.[k]);
    out.push('Server CPU per GET 4 KiB (µs of the server process, all threads, from the scheduler\'s accounting, over the figure\'s slices):');
    out.push(
      table(
        ['metric', 'portico', FLOOR, `${FLOOR} / portico`],
        getMetrics.map((m) => {
          const a = p.cpuUsPerOp?.[m.key];
          const b = floor.cpuUsPerOp?.[m.key];
          return [m.label, cpuCell(p, m.key), cpuCell(floor, m.key), a !== undefined && b !== undefined && a > 0 ? `${(b / a).toFixed(2)}x` : '-'];
        }),
      ),
    );
    out.push('');
  }
  const nofsyncRatios: Record<string, Record<string, number | undefined>> = {};
  if (nf) {
    out.push(`${NOFSYNC} (no fsync, as the peers run) against the peers, PUT figures:`);
    const putMetrics = METRICS.filter((m) => PUT_METRICS.includes(m.key));
    out.push(table(['metric', ...peers.map((s) => `vs ${s}`)], putMetrics.map((m) => [m.label, ...peers.map((s) => ratioCell(m, nf.figures[m.key], s, nofsyncRatios))])));
    out.push('');
  }
  const rssMb = rss ? rss.peakRss / 1e6 : undefined;
  out.push(
    `Portico peak RSS during the ${BIG_LABEL} PUT: ${fmt(rssMb)} MB (VmRSS sampled every 50 ms; VmHWM ${fmt(rss ? rss.hwm / 1e6 : undefined)} MB; ${fmt(rss ? rss.idle / 1e6 : undefined)} MB before the PUT) (aim < ${RSS_AIM_MB} MB: ${rssMb !== undefined && rssMb < RSS_AIM_MB ? 'PASS' : 'BELOW'})`,
  );
  const errors = servers.flatMap((s) => Object.entries(results[s]!.errors).map(([k, e]) => `${s} ${k}: ${e}`));
  for (const e of errors) out.push(`error: ${e}`);
  process.stdout.write(out.join('\n') + '\n');
  const json = {
    bench: 'webdav',
    quick: QUICK,
    sizes: { bigBytes: BIG_BYTES, smallBytes: SMALL_BYTES, smallOps: SMALL_OPS, propfindEntries: ENTRIES, bigRounds: BIG_ROUNDS, propfindRounds: PROPFIND_ROUNDS },
    units: Object.fromEntries(METRICS.map((m) => [m.key, m.unit])),
    auth: { portico: 'basic', peers: 'none' },
    servers: Object.fromEntries(servers.map((s) => [s, { ...results[s]!.figures, samplesMs: results[s]!.samples, cpuUsPerOp: results[s]!.cpuUsPerOp, propfindBytes: results[s]!.propfindBytes, errors: results[s]!.errors }])),
    loadAverage: { start: loadAtStart, end: loadAtEnd },
    ratios,
    nofsyncRatios,
    porticoRss: rss ? { peakRssBytes: rss.peakRss, vmHwmBytes: rss.hwm, idleRssBytes: rss.idle, aimBytes: RSS_AIM_MB * 1e6 } : null,
    skipped,
  };
  process.stdout.write(JSON.stringify(json) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`webdav-bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
