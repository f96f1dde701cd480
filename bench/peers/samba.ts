/**
 * Samba's smbd as a private comparison peer for bench/smb-bench.ts: its own smb.conf in a temp dir
 * (private, lock, state, cache, pid and ncalrpc directories under it, its own tdbsam passdb and log
 * file), `smb ports = PORT` on 127.0.0.1 only, one share "share" over the given directory, a user
 * added to the private passdb with `pdbedit -s CONF`, run in the foreground with
 * `smbd -F --no-process-group --debug-stdout -s CONF` and stopped by its PID. Nothing under
 * /etc/samba or /var/lib/samba is read or written, and no system service is touched.
 *
 * The Samba user must be a Unix user (smbd switches to it); the bench runs as root, so it is root,
 * which also lets smbd write into a tree Portico (running as root) writes into.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopChild, type PeerServer } from './peers.ts';

export interface SambaOptions {
  /** Directory served as the share "share". */
  dir: string;
  /** Unix user to log in as (added to the private passdb). */
  user: string;
  pass: string;
  port?: number;
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForTcp(port: number, alive: () => boolean, timeoutMs: number, logTail: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive()) throw new Error(`server exited before listening on ${port}\n${logTail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${port} after ${timeoutMs} ms\n${logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSmbd(o: SambaOptions): Promise<PeerServer> {
  const tmp = mkdtempSync(join(tmpdir(), 'portico-peer-smbd-'));
  const port = o.port ?? (await freePort());
  for (const d of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'binddns']) mkdirSync(join(tmp, d));
  const conf = join(tmp, 'smb.conf');
  const log = join(tmp, 'log.smbd');
  writeFileSync(
    conf,
    [
      '[global]',
      '  server role = standalone server',
      '  workgroup = WORKGROUP',
      '  netbios name = BENCHSMBD',
      `  smb ports = ${port}`,
      '  interfaces = 127.0.0.1',
      '  bind interfaces only = yes',
      `  private dir = ${tmp}/private`,
      `  lock directory = ${tmp}/lock`,
      `  state directory = ${tmp}/state`,
      `  cache directory = ${tmp}/cache`,
      `  pid directory = ${tmp}/pid`,
      `  ncalrpc dir = ${tmp}/ncalrpc`,
      `  binddns dir = ${tmp}/binddns`,
      `  passdb backend = tdbsam:${tmp}/private/passdb.tdb`,
      `  log file = ${log}`,
      '  log level = 0',
      '  max log size = 0',
      '  load printers = no',
      '  printing = bsd',
      '  printcap name = /dev/null',
      '  disable spoolss = yes',
      '  disable netbios = yes',
      '  server min protocol = SMB2_02',
      '  map to guest = never',
      '  restrict anonymous = 2',
      '',
      '[share]',
      `  path = ${o.dir}`,
      '  read only = no',
      '  guest ok = no',
      '',
    ].join('\n'),
  );
  const add = spawnSync('pdbedit', ['-s', conf, '-a', '-u', o.user, '-t'], { input: `${o.pass}\n${o.pass}\n`, encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`pdbedit -a ${o.user} failed (${add.status}): ${add.stdout}${add.stderr}`);

  // detached: a process group of its own. smbd's parent ends its children with kill(0, SIGTERM)
  // when it stops, which without this reaches the bench and everything it started.
  const child = spawn('smbd', ['-F', '--no-process-group', '--debug-stdout', '-d', '0', '-s', conf], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const logTail = (): string => {
    let text = '';
    try {
      text = readFileSync(log, 'utf8');
    } catch {
      // not written yet
    }
    return (text + output).split('\n').slice(-30).join('\n');
  };
  const server: PeerServer = {
    name: 'smbd',
    url: `smb://127.0.0.1:${port}/share`,
    port,
    pid: child.pid!,
    child,
    auth: { user: o.user, pass: o.pass },
    tmp,
    logTail,
    stop: async () => {
      await stopChild(child, 5000);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    await waitForTcp(port, () => child.exitCode === null && child.signalCode === null, 20_000, logTail);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
