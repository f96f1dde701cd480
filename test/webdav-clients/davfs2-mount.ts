/**
 * A davfs2 (mount.davfs) FUSE mount of a WebDAV URL for the tests, with everything private to a
 * temp dir: the config (passed as `conf=`), the secrets file (mode 0600), the cache directory.
 *
 * Found on this machine (davfs2 1.6.1, Linux 6.18):
 * - mount.davfs runs as the `davfs2` user after mounting and, for root, insists that the cache
 *   directory looks like /var/cache/davfs2: group davfs2 with group rwx (else "can't access
 *   directory"); its parent must be traversable.
 * - davfs2 before 1.7.2 answers FUSE READDIR on Linux >= 6.16 with a reply the kernel refuses
 *   (getdents64 -> EINVAL, "ls: reading directory: Invalid argument") unless `buf_size` is at least
 *   64 KiB (alisarctl/davfs2#22). That is a client/kernel matter, not the server's.
 *
 * Nothing here touches the mount from this process: the server under test may run in this very
 * event loop (and its backend in the libuv thread pool), so every access to the mount is a child
 * process (cp, ls, cmp, ...), never a synchronous or thread-pool fs call that could wait on ourselves.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userIds } from '../../bench/peers/peers.ts';
import { mustRun, run } from './helpers.ts';

export interface Davfs2Options {
  url: string;
  user: string;
  pass: string;
  /** Private directory for config, secrets, caches and the mountpoint (made traversable). */
  dir: string;
}

let mounts = 0;

export class Davfs2Mount {
  readonly mountpoint: string;
  readonly conf: string;
  readonly url: string;
  pid: number | undefined;

  private constructor(url: string, mountpoint: string, conf: string) {
    this.url = url;
    this.mountpoint = mountpoint;
    this.conf = conf;
  }

  /** Mounts with a fresh cache directory (so nothing is served from an earlier mount's cache). */
  static async mount(o: Davfs2Options): Promise<Davfs2Mount> {
    const n = ++mounts;
    chmodSync(o.dir, 0o755);
    const ids = userIds('davfs2');
    if (!ids) throw new Error('no davfs2 user: is the davfs2 package installed?');
    const cache = join(o.dir, `cache-${n}`);
    mkdirSync(cache);
    chownSync(cache, 0, ids.gid);
    chmodSync(cache, 0o775);
    const secrets = join(o.dir, 'secrets');
    writeFileSync(secrets, `${o.url} ${o.user} ${o.pass}\n`, { mode: 0o600 });
    chmodSync(secrets, 0o600);
    const conf = join(o.dir, `davfs2-${n}.conf`);
    writeFileSync(
      conf,
      [
        `secrets ${secrets}`,
        `cache_dir ${cache}`,
        'delay_upload 0',
        'use_locks 1',
        'ask_auth 0',
        'buf_size 64',
        // Re-read directories and files from the server at once: the tests compare with it.
        'dir_refresh 1',
        'file_refresh 1',
        '',
      ].join('\n'),
    );
    const mountpoint = join(o.dir, `mnt-${n}`);
    mkdirSync(mountpoint);
    const m = new Davfs2Mount(o.url, mountpoint, conf);
    const r = await run('mount', ['-t', 'davfs', o.url, mountpoint, '-o', `conf=${conf},uid=0`], { timeoutMs: 60_000 });
    m.pid = m.readPid();
    if (r.code !== 0 || !m.isMounted()) {
      await m.unmount().catch(() => undefined);
      throw new Error(`mount -t davfs ${o.url} failed (${r.code ?? r.signal}):\n${r.stdout}${r.stderr}`);
    }
    return m;
  }

  /** mount.davfs writes /var/run/mount.davfs/<mountpoint with '/' as '-'>.pid. */
  private readPid(): number | undefined {
    const file = `/var/run/mount.davfs/${this.mountpoint.slice(1).replaceAll('/', '-')}.pid`;
    try {
      const pid = Number(readFileSync(file, 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  isMounted(): boolean {
    // /proc/mounts escapes spaces as \040; our mountpoints have none.
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[1] === this.mountpoint);
  }

  private alive(): boolean {
    if (this.pid === undefined) return false;
    try {
      process.kill(this.pid, 0);
      return existsSync(`/proc/${this.pid}`) && readFileSync(`/proc/${this.pid}/cmdline`, 'utf8').includes('mount.davfs');
    } catch {
      return false;
    }
  }

  /**
   * `umount`, which makes mount.davfs upload what is still dirty and exit (umount.davfs waits for
   * it). Returns true when that worked; otherwise the daemon is killed by PID, the mount detached,
   * and false is returned.
   */
  async unmount(): Promise<boolean> {
    let graceful = false;
    if (this.isMounted()) {
      const r = await run('umount', [this.mountpoint], { timeoutMs: 180_000 });
      graceful = r.code === 0;
    } else graceful = true;
    const deadline = Date.now() + 30_000;
    while (this.alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (this.alive()) {
      graceful = false;
      try {
        process.kill(this.pid!, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (this.isMounted()) {
      graceful = false;
      await run('umount', ['-l', this.mountpoint], { timeoutMs: 30_000 });
    }
    return graceful;
  }

  path(rel: string): string {
    return rel === '' ? this.mountpoint : join(this.mountpoint, rel);
  }

  /** sha256 of every regular file under rel, read through the mount by sha256sum (a child process). */
  async hashes(rel: string): Promise<Map<string, string>> {
    const r = await mustRun('sh', ['-c', 'cd "$1" && find . -name lost+found -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum', 'sh', this.path(rel)], {
      timeoutMs: 300_000,
    });
    const out = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      if (line === '') continue;
      const m = /^([0-9a-f]{64}) [ *]\.\/(.*)$/.exec(line);
      if (!m) throw new Error(`unexpected sha256sum line: ${line}`);
      out.set(m[2]!, m[1]!);
    }
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** `ls -1A` of a directory through the mount, sorted. */
  async ls(rel: string): Promise<string[]> {
    const r = await mustRun('ls', ['-1A', this.path(rel)], { env: { ...process.env, LC_ALL: 'C.UTF-8' }, timeoutMs: 60_000 });
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .sort();
  }
}
