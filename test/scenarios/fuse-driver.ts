/**
 * The FUSE driver: the scenarios through a real kernel mount of the gateway's shares
 * (protocols/fuse), with plain Node `fs` calls — what any program on the machine does.
 *
 * - Mounts: one per Portico user (`FuseMounts`), made in this process through the plugin's own
 *   `FuseMount` on the gateway's SessionManager, acting as that user (as `--fuse-user` does), one
 *   subdirectory per share the user may see. The scenarios' client (alice) and read-only client
 *   (carol) each get theirs; the peer is another front-end.
 * - Calls: never from this process. It serves the mount: a synchronous fs call here would block
 *   the event loop that has to answer it, and async ones would hold libuv's thread pool that the
 *   gateway's own disk I/O needs. A persistent child (fuse-worker.ts) per client makes them and
 *   answers over IPC, several in flight at a time (the concurrent-writer scenarios).
 * - Kernel caches: the test mounts keep attributes and names 0 s (attrTimeout/entryTimeout 0), so
 *   every call asks Portico and a peer's change is seen at once without sleeping. Change
 *   invalidation (the default) stays on; with 1 s timeouts it is what the cross-client scenarios
 *   would rely on, and test/fuse covers it on its own.
 * - Errors: the worker reports the errno's name; `CODES` maps it to the scenario codes once.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FuseMount, fusermountUnmount, mountPoints } from '../../protocols/fuse/mount.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import { ClientError, type Capabilities, type ClientErrorCode, type Entry, type FileClient, type ShareInfo, type Stat } from './driver.ts';

const WORKER = fileURLToPath(new URL('./fuse-worker.ts', import.meta.url));

/** errno names (as Node reports them) → the scenario codes; anything else is EIO with its name. */
const CODES: Record<string, ClientErrorCode> = {
  ENOENT: 'ENOENT',
  EEXIST: 'EEXIST',
  ENOTEMPTY: 'ENOTEMPTY',
  EISDIR: 'EISDIR',
  ENOTDIR: 'ENOTDIR',
  EACCES: 'EACCES',
  EPERM: 'EACCES',
  // A share or user that may not write: the change is refused as a permission.
  EROFS: 'EACCES',
  EINVAL: 'EINVAL',
  // A NUL byte cannot be part of a path handed to the kernel (C strings): Node refuses such a
  // path before any system call, as every POSIX program must; the name is invalid.
  ERR_INVALID_ARG_VALUE: 'EINVAL',
  ENAMETOOLONG: 'ENAMETOOLONG',
  EBUSY: 'EBUSY',
  // Portico's ELOCKED (I/O into another protocol's byte-range lock) arrives as EAGAIN (errors.ts).
  EAGAIN: 'ELOCKED',
  EOPNOTSUPP: 'ENOTSUP',
  ENOTSUP: 'ENOTSUP',
  ENOSPC: 'ENOSPC',
  EDQUOT: 'ENOSPC',
};

/** The gateway's shares mounted once per user, under one temp directory; close() unmounts them. */
export class FuseMounts {
  private readonly base = mkdtempSync(join(tmpdir(), 'portico-scenarios-fuse-'));
  private readonly mounts = new Map<string, Promise<FuseMount>>();
  private readonly sessions: SessionManager;

  constructor(sessions: SessionManager) {
    this.sessions = sessions;
  }

  /** The mount of `user` (made at first use): its root holds one directory per share. */
  async root(user: string): Promise<string> {
    let m = this.mounts.get(user);
    if (!m) {
      m = this.mount(user);
      this.mounts.set(user, m);
    }
    return (await m).mountpoint;
  }

  private async mount(user: string): Promise<FuseMount> {
    const principal = await this.sessions.authenticator.principalFor(user);
    if (!principal) throw new Error(`fuse driver: no Portico user ${user}`);
    const dir = join(this.base, user);
    mkdirSync(dir);
    const m = new FuseMount({
      mountpoint: dir,
      sessions: this.sessions,
      principal,
      shares: this.sessions.sharesFor(principal, 'fuse'),
      // No kernel caching of attributes or names: a peer's change is visible to the next call.
      attrTimeout: 0,
      entryTimeout: 0,
    });
    await m.mount();
    return m;
  }

  /** Unmounts every mount (clients closed first), then removes the mount points. */
  async close(): Promise<void> {
    const all = await Promise.allSettled(this.mounts.values());
    this.mounts.clear();
    for (const r of all) if (r.status === 'fulfilled') await r.value.unmount();
    // The plugin unmounts lazily (umount2 MNT_DETACH as root, else fusermount3 -u -z); a mount
    // still listed gets fusermount3 -u, and the directory is left rather than recursed into.
    let left = false;
    for (const [dir, type] of mountPoints()) {
      if (!dir.startsWith(`${this.base}/`) || !type.startsWith('fuse')) continue;
      try {
        fusermountUnmount(dir);
      } catch {
        left = true;
      }
    }
    if (!left && ![...mountPoints().keys()].some((d) => d.startsWith(`${this.base}/`))) rmSync(this.base, { recursive: true, force: true });
  }
}

export interface FuseClientOptions {
  mounts: FuseMounts;
  share: ShareInfo;
  user: string;
}

interface Answer {
  id: number;
  ok: boolean;
  code?: string;
  message?: string;
  [k: string]: unknown;
}

export async function fuseClient(o: FuseClientOptions): Promise<FileClient> {
  const root = `${await o.mounts.root(o.user)}/${o.share.name}`;
  const worker: ChildProcess = fork(WORKER, [], { execArgv: [], serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  worker.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const pending = new Map<number, (a: Answer) => void>();
  let nextId = 1;
  let exited = false;
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  worker.on('message', (a: Answer) => {
    if (a.id === 0) return ready();
    const done = pending.get(a.id);
    pending.delete(a.id);
    done?.(a);
  });
  const exitedP = new Promise<void>((resolve) =>
    worker.on('exit', (code, signal) => {
      exited = true;
      ready();
      for (const [id, done] of pending) done({ id, ok: false, code: 'EXITED', message: `fuse worker exited (${code ?? signal}): ${stderr}` });
      pending.clear();
      resolve();
    }),
  );
  await started;
  if (exited) throw new Error(`fuse worker did not start: ${stderr}`);

  const abs = (path: string): string => `${root}${path}`;
  /** One request to the worker; a failure becomes a ClientError naming the call and the errno. */
  const call = async (op: string, path: string, extra: Record<string, unknown> = {}, more = ''): Promise<Answer> => {
    if (exited) throw new ClientError('EIO', `${op} ${path}${more}: fuse worker gone: ${stderr}`);
    const id = nextId++;
    const a = await new Promise<Answer>((resolve) => {
      pending.set(id, resolve);
      worker.send({ id, op, path: abs(path), ...extra });
    });
    if (!a.ok) throw new ClientError(CODES[a.code ?? ''] ?? 'EIO', `${op} ${path}${more}: ${a.code} ${a.message ?? ''}`);
    return a;
  };
  const bytes = (a: Answer): Buffer => {
    const d = a.data as Uint8Array;
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  };

  const caps: Capabilities = {
    randomWrite: true,
    append: true,
    // open(O_TRUNC) then write(2)s: a reader in between sees a short file.
    atomicWrite: false,
    truncate: true,
    setTimes: true,
    // FUSE carries nanoseconds; the core keeps what the backend stores (the session driver: 1 ms).
    mtimeResolutionMs: 1,
    symlinks: o.share.symlinks,
    hardLinks: o.share.hardLinks,
    // The scenarios' lock is WebDAV's: exclusive, on files and directories, and it stops others'
    // writes, removes and renames. What a program holds through the mount are POSIX locks and
    // flock(2) on the shared lock manager (protocols/fuse/README.md): advisory byte-range locks
    // that stop other lockers (over NFS, SMB, WebDAV) but not a remove or a rename, and the kernel
    // keeps flock on a directory to itself (FUSE sends no lock requests for directories).
    // test/fuse covers them and their cross-protocol conflicts. So no such lock: false.
    locks: false,
    caseInsensitive: o.share.caseInsensitive,
    // rename(2) and rmdir(2): POSIX rules.
    renameReplacesDir: false,
    rmdirRecursive: false,
    posixNames: true,
  };

  const client: FileClient = {
    name: 'fuse',
    caps,
    mkdir: async (path) => void (await call('mkdir', path)),
    rmdir: async (path) => void (await call('rmdir', path)),
    writeFile: async (path, data) => void (await call('writeFile', path, { data })),
    readFile: async (path) => bytes(await call('readFile', path)),
    readRange: async (path, offset, length) => bytes(await call('readRange', path, { offset, length })),
    stat: async (path): Promise<Stat> => {
      const a = await call('stat', path);
      return { type: a.type as Stat['type'], size: a.size as number, mtimeMs: a.mtimeMs as number };
    },
    list: async (path) => (await call('list', path)).entries as Entry[],
    rename: async (from, to, opts = {}) => void (await call('rename', from, { to: abs(to), replace: opts.replace !== false }, ` -> ${to}`)),
    remove: async (path) => void (await call('remove', path)),
    writeAt: async (path, offset, data) => void (await call('writeAt', path, { offset, data })),
    appendFile: async (path, data) => void (await call('appendFile', path, { data })),
    truncate: async (path, size) => void (await call('truncate', path, { size })),
    setTimes: async (path, mtimeMs) => void (await call('setTimes', path, { mtimeMs })),
    close: async () => {
      if (exited) return;
      // By its PID; SIGKILL if it does not go (a call stuck on a dead mount).
      process.kill(worker.pid!, 'SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) process.kill(worker.pid!, 'SIGKILL');
      }, 5000);
      await exitedP;
      clearTimeout(timer);
    },
  };
  if (caps.symlinks) {
    // symlink(2) stores the target as given (relative to the link's directory).
    client.symlink = async (target, path) => void (await call('symlink', path, { to: target }));
    client.readlink = async (path) => (await call('readlink', path)).target as string;
  }
  if (caps.hardLinks) client.link = async (existing, path) => void (await call('link', path, { to: abs(existing) }));
  return client;
}
