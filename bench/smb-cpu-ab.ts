/**
 * SMB large-file CPU, before and after: Portico gateway children built from several trees (this
 * checkout and, say, a `git worktree` of an older commit with node_modules symlinked) on the same
 * directory, driven by smbclient 4.17 `put`/`get` of one file, signed or encrypted, the trees
 * alternating every round (ABBA). The figure is the server's CPU per MiB (user and system apart,
 * all its threads: the main thread, the libuv pool, V8's helpers, the SMB seal worker) read from
 * /proc/PID/stat around each transfer, and by thread name from each /proc/PID/task/TID/stat; on a
 * shared machine it moves far less than the speed, which is printed too. No smbd here: `npm run bench:smb` compares with Samba.
 *
 *   node bench/smb-cpu-ab.ts                        this tree only
 *   SMB_AB_TREES=/tmp/smb-base,. node bench/smb-cpu-ab.ts
 *   SMB_AB_MB=256 SMB_AB_ROUNDS=3 SMB_AB_OPS=get-enc,put-enc,get-sign,put-sign SMB_AB_DIALECT=SMB3_11
 *   SMB_AB_NODE_ARGS="--trace-gc"                   node flags for the children; their stdout goes
 *                                                   to SMB_AB_TRACE_DIR/TREE-N.log when that is set
 *   SMB_AB_PERF_DIR=DIR                             `perf record -g` of the server during each transfer
 *                                                   (with SMB_AB_NODE_ARGS=--perf-basic-prof for JS names;
 *                                                   or --perf-prof with SMB_AB_PERF_ARGS="-k 1" and `perf inject --jit`)
 *   SMB_AB_OPS=mput-sign,mget-sign SMB_AB_FILES=500 small files: smbclient `mput`/`mget` of FILES x 4 KiB
 *                                                   (`prompt off`), the figure in ms of CPU per file
 *   SMB_AB_TREES=.,smbd                             "smbd": Samba's smbd on the same directory (bench/peers/samba.ts)
 *                                                   in the rotation; its CPU includes its reaped per-connection children
 *   SMB_AB_PUT_KEEP=1                               a put overwrites the same file every round instead of a new
 *                                                   one removed after: the page cache reuses the pages the truncate
 *                                                   freed. On this VM (Firecracker, virtio-balloon free page
 *                                                   reporting) a page freed for a few seconds goes back to the
 *                                                   host, and the next first touch of it costs a host fault in
 *                                                   the writer: 2.5-3 ms per MiB of system time in pwrite, more
 *                                                   than the whole rest of a put (a 1 GiB `dd` after `rm`: 2.85 s
 *                                                   of system time the first time, 0.29 s right after)
 *   SMB_AB_SETTLE_MS=6000                           wait this long before each transfer: memory freed before it
 *                                                   has gone back to the host, so every round starts from the same
 *                                                   (cold) page cache state whatever ran before it
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startPorticoChild } from './peers/portico-child.ts';
import { freePort } from './peers/peers.ts';
import { startSmbd, waitForTcp } from './peers/samba.ts';

const MIB = Number(process.env.SMB_AB_MB ?? 256);
const ROUNDS = Number(process.env.SMB_AB_ROUNDS ?? 3);
const TREES = (process.env.SMB_AB_TREES ?? '.').split(',').map((t) => (t === 'smbd' ? t : resolve(t)));
const OPS = (process.env.SMB_AB_OPS ?? 'get-sign,put-sign,get-enc,put-enc').split(',');
const DIALECT = process.env.SMB_AB_DIALECT ?? 'SMB3_11';
const NODE_ARGS = process.env.SMB_AB_NODE_ARGS?.split(' ').filter(Boolean);
const TRACE_DIR = process.env.SMB_AB_TRACE_DIR;
const PERF_DIR = process.env.SMB_AB_PERF_DIR;
const FILES = Number(process.env.SMB_AB_FILES ?? 500);
const PUT_KEEP = process.env.SMB_AB_PUT_KEEP === '1';
const SETTLE_MS = Number(process.env.SMB_AB_SETTLE_MS ?? 0);
const PASS = 'bench-password-1';
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime and stime of a process (all its threads, and its reaped children: smbd's per-connection processes), in ms. */
function cpuOf(pid: number): { user: number; sys: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { user: ((Number(f[11]) + Number(f[13])) * 1000) / CLK_TCK, sys: ((Number(f[12]) + Number(f[14])) * 1000) / CLK_TCK };
}

/** CPU ms (user + system) of a process's live threads, summed by thread name (MainThread, libuv-worker, V8Worker, WorkerThread...). */
function threadsOf(pid: number): Map<string, number> {
  const by = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    by.set(name, (by.get(name) ?? 0) + ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK);
  }
  return by;
}

const work = mkdtempSync(join(tmpdir(), 'portico-smb-ab-'));
const data = join(work, 'share');
mkdirSync(data);
const src = join(work, 'big.bin');
const bigOps = OPS.some((op) => op.startsWith('get-') || op.startsWith('put-'));
const content = Buffer.alloc(bigOps ? MIB * 1024 * 1024 : 0);
for (let at = 0; at < content.length; at += 1 << 20) randomBytes(1 << 20).copy(content, at);
writeFileSync(src, content);
writeFileSync(join(data, 'big.bin'), content);
const smallSrc = join(work, 'small-src');
const smallDst = join(work, 'small-dst');
mkdirSync(smallSrc);
mkdirSync(smallDst);
mkdirSync(join(data, 'small'));
if (OPS.some((op) => op.startsWith('m'))) {
  for (let i = 0; i < FILES; i++) {
    const body = randomBytes(4096);
    writeFileSync(join(smallSrc, `f${String(i).padStart(4, '0')}`), body);
    writeFileSync(join(data, 'small', `f${String(i).padStart(4, '0')}`), body);
  }
}
const conf = join(work, 'client.conf');
writeFileSync(conf, '[global]\n  workgroup = WORKGROUP\n');

function smbclient(port: number, protection: 'sign' | 'encrypt', command: string, user = 'bench'): Promise<number> {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const c = spawn('smbclient', ['-s', conf, '//127.0.0.1/share', '-p', String(port), '-U', `${user}%${PASS}`, '-m', DIALECT, `--client-protection=${protection}`, '-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', fail);
    c.on('close', (code) => (code !== 0 || /NT_STATUS_/.test(out) ? fail(new Error(`smbclient ${command}: ${out.trim().slice(-500)}`)) : ok(performance.now() - t0)));
  });
}

interface Server { tree: string; port: number; pid: number; user: string; stop: () => Promise<void> }
const servers: Server[] = [];
const rows = new Map<string, { user: number[]; sys: number[]; mbps: number[]; threads: Map<string, number[]> }>();
try {
  for (const [i, tree] of TREES.entries()) {
    if (tree === 'smbd') {
      // smbd switches to the Unix user: root here, as in bench:smb.
      const s = await startSmbd({ dir: data, user: 'root', pass: PASS });
      servers.push({ tree, port: s.port, pid: s.pid, user: 'root', stop: s.stop });
      await smbclient(s.port, 'sign', 'ls', 'root');
      continue;
    }
    const port = await freePort();
    const s = await startPorticoChild({ dir: data, user: 'bench', pass: PASS, name: tree, bin: join(tree, 'bin', 'portico.js'), protocols: { smb: { port, listen: '127.0.0.1' } }, ...(NODE_ARGS ? { nodeArgs: NODE_ARGS } : {}) });
    if (TRACE_DIR) s.child.stdout?.pipe(createWriteStream(join(TRACE_DIR, `${i}.log`)));
    await waitForTcp(port, () => s.child.exitCode === null, 20_000, s.logTail);
    servers.push({ tree, port, pid: s.pid, user: 'bench', stop: s.stop });
    await smbclient(port, 'sign', 'ls');
  }
  const before = loadavg();
  for (let r = 0; r < ROUNDS; r++) {
    for (const op of OPS) {
      for (const s of r % 2 ? [...servers].reverse() : servers) {
        const [kind, protection] = op.split('-') as ['get' | 'put' | 'mput' | 'mget', 'sign' | 'enc'];
        const per = kind === 'mput' || kind === 'mget' ? FILES : MIB;
        const name = PUT_KEEP && kind === 'put' ? `ab-${s.port}.bin` : `ab-${r}-${s.port}.bin`;
        if (SETTLE_MS > 0) await new Promise((z) => setTimeout(z, SETTLE_MS));
        let perf: ChildProcess | undefined;
        if (PERF_DIR) {
          perf = spawn('perf', ['record', ...(process.env.SMB_AB_PERF_ARGS ?? '-g').split(' ').filter(Boolean), '-F', '999', '-p', String(s.pid), '-o', join(PERF_DIR, `${op}-${r}-${servers.indexOf(s)}.data`)], { stdio: 'ignore' });
          await new Promise((z) => setTimeout(z, 500));
        }
        const a = cpuOf(s.pid);
        const ta = threadsOf(s.pid);
        const command =
          kind === 'put' ? `put ${src} ${name}`
          : kind === 'get' ? 'get big.bin /dev/null'
          : kind === 'mput' ? `mkdir ${name}; cd ${name}; lcd ${smallSrc}; prompt off; mput f*`
          : `cd small; lcd ${smallDst}; prompt off; mget f*`;
        const ms = await smbclient(s.port, protection === 'enc' ? 'encrypt' : 'sign', command, s.user);
        await new Promise((z) => setTimeout(z, 300)); // the last responses' CPU
        const b = cpuOf(s.pid);
        const tb = threadsOf(s.pid);
        if (perf) {
          perf.kill('SIGINT');
          await new Promise((z) => perf!.on('close', z));
        }
        const key = `${op} ${s.tree}`;
        const row = rows.get(key) ?? { user: [], sys: [], mbps: [], threads: new Map<string, number[]>() };
        for (const [name, ms] of tb) row.threads.set(name, [...(row.threads.get(name) ?? []), (ms - (ta.get(name) ?? 0)) / per]);
        rows.set(key, row);
        row.user.push((b.user - a.user) / per);
        row.sys.push((b.sys - a.sys) / per);
        row.mbps.push(per === FILES ? FILES / (ms / 1000) : (MIB * 1.048576) / (ms / 1000));
        if ((kind === 'put' && !PUT_KEEP) || kind === 'mput') rmSync(join(data, name), { recursive: true, force: true });
        if (kind === 'mget') for (const f of readdirSync(smallDst)) rmSync(join(smallDst, f));
      }
    }
  }
  const after = loadavg();
  const list = (xs: number[], d = 2): string => xs.map((x) => x.toFixed(d)).join(' ');
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  console.log(`SMB CPU A/B: ${MIB} MiB, ${DIALECT}, ${ROUNDS} rounds; load average before ${list(before, 1)}, after ${list(after, 1)}`);
  console.log('op        tree                               user ms/MiB per round  sys ms/MiB per round   total (median)  MB/s  (mput/mget: ms per file, files/s)');
  for (const op of OPS) {
    for (const s of servers) {
      const row = rows.get(`${op} ${s.tree}`)!;
      const total = median(row.user.map((u, i) => u + row.sys[i]!));
      console.log(`${op.padEnd(9)} ${s.tree.slice(-34).padEnd(34)} ${list(row.user).padEnd(22)} ${list(row.sys).padEnd(22)} ${total.toFixed(2).padStart(6)}          ${list(row.mbps, 0)}`);
      console.log(`          by thread, ms/MiB per round: ${[...row.threads].filter(([, v]) => v.some((x) => x > 0.01)).map(([n, v]) => `${n} ${list(v)}`).join('; ')}`);
    }
  }
} finally {
  for (const s of servers) await s.stop();
  rmSync(work, { recursive: true, force: true });
}
