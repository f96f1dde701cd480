/**
 * The reference driver: the Session API itself (what every front-end calls), with no wire in
 * between. Run beside a protocol's driver, a scenario that passes here and fails there points at the
 * front-end, not at the core.
 *
 * Files are written the way handle-based protocols write (open, write, close: NFS, SMB, FUSE), not
 * through whole-content replacement (which the WebDAV driver's PUT exercises), so the two drivers
 * cover both write paths of the VFS.
 */
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';
import type { Session } from '../../src/session/session.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import type { Handle } from '../../src/vfs/vfs.ts';
import type { Access, FileAttr } from '../../src/vfs/types.ts';
import { ClientError, type Capabilities, type ClientErrorCode, type Entry, type FileClient, type HeldLock, type NodeKind, type ShareInfo, type Stat } from './driver.ts';

const RW: Access = { read: true, write: true, delete: false };
const R: Access = { read: true, write: false, delete: false };
const CHUNK = 1024 * 1024;

/** The one table from the core's codes to the scenario codes. */
const CODES: Partial<Record<VfsErrorCode, ClientErrorCode>> = {
  ENOENT: 'ENOENT',
  EEXIST: 'EEXIST',
  ENOTEMPTY: 'ENOTEMPTY',
  EISDIR: 'EISDIR',
  ENOTDIR: 'ENOTDIR',
  EACCES: 'EACCES',
  EPERM: 'EACCES',
  EROFS: 'EACCES',
  ELOCKED: 'ELOCKED',
  ESHARING: 'ELOCKED',
  EINVAL: 'EINVAL',
  EILSEQ: 'EINVAL',
  ENAMETOOLONG: 'ENAMETOOLONG',
  EBUSY: 'EBUSY',
  // The grace period after a restart: transient, retried later, as WebDAV's 503 maps to EBUSY.
  EGRACE: 'EBUSY',
  ENOTSUP: 'ENOTSUP',
  ENOSYS: 'ENOTSUP',
  ENOSPC: 'ENOSPC',
  EDQUOT: 'ENOSPC',
};

function mapped(e: unknown, op: string, path: string): unknown {
  if (!isVfsError(e)) return e;
  // An I/O error's cause is the only clue to what broke: keep it in the message.
  const cause = e.code === 'EIO' && e.cause instanceof Error ? ` (${e.cause.message})` : '';
  return new ClientError(CODES[e.code] ?? 'EIO', `${op} ${path}: ${e.message}${cause}`);
}

function kind(a: FileAttr): NodeKind {
  return a.type === 'dir' ? 'dir' : a.type === 'symlink' ? 'symlink' : 'file';
}

export interface SessionClientOptions {
  sessions: SessionManager;
  share: ShareInfo;
  user: string;
  password: string;
  /**
   * Protocol name the session is opened under: a share serves only the protocols its config lists
   * (all configured ones by default), so this must be one of them; metrics and audit count it there.
   */
  protocol: string;
}

export async function sessionClient(o: SessionClientOptions): Promise<FileClient> {
  const principal = await o.sessions.authenticate(o.user, o.password, { protocol: o.protocol, clientAddress: '127.0.0.1' });
  const s: Session = o.sessions.openSession({ principal, protocol: o.protocol, clientAddress: '127.0.0.1' });
  const share = o.share.name;
  let owners = 0;

  const caps: Capabilities = {
    randomWrite: true,
    append: true,
    // open(createOrTruncate) + writes + close, as NFS and SMB clients write: not atomic.
    atomicWrite: false,
    truncate: true,
    setTimes: true,
    mtimeResolutionMs: 1,
    symlinks: o.share.symlinks,
    hardLinks: o.share.hardLinks,
    locks: true,
    caseInsensitive: o.share.caseInsensitive,
    renameReplacesDir: false,
    rmdirRecursive: false,
    posixNames: true,
  };

  /** Runs fn with errors mapped, naming the operation and path. */
  const call = async <T>(op: string, path: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw mapped(e, op, path);
    }
  };

  const withHandle = async <T>(path: string, access: Access, disposition: 'open' | 'openOrCreate' | 'createOrTruncate', fn: (h: Handle) => Promise<T>): Promise<T> => {
    const h = await s.open(share, path, { access, disposition, expect: 'file', owner: `scenario-${++owners}` });
    let out: T;
    try {
      out = await fn(h);
    } catch (e) {
      await s.close(h).catch(() => undefined);
      throw e;
    }
    await s.close(h);
    return out;
  };

  const writeAll = async (h: Handle, offset: number, data: Uint8Array): Promise<void> => {
    for (let at = 0; at < data.length; at += CHUNK) {
      const part = data.subarray(at, Math.min(data.length, at + CHUNK));
      const n = await s.write(h, offset + at, part);
      if (n !== part.length) throw new Error(`short write: ${n} of ${part.length}`);
    }
  };

  const client: FileClient = {
    name: 'session',
    caps,
    mkdir: (path) => call('mkdir', path, async () => void (await s.mkdir(share, path))),
    rmdir: (path) => call('rmdir', path, () => s.rmdir(share, path)),
    writeFile: (path, data) => call('writeFile', path, () => withHandle(path, RW, 'createOrTruncate', (h) => writeAll(h, 0, data))),
    readFile: (path) =>
      call('readFile', path, () =>
        withHandle(path, R, 'open', async (h) => {
          const parts: Buffer[] = [];
          for (let at = 0; ; ) {
            const b = await s.read(h, at, CHUNK);
            if (b.length === 0) break;
            parts.push(b);
            at += b.length;
          }
          return Buffer.concat(parts);
        }),
      ),
    readRange: (path, offset, length) => call('readRange', path, () => withHandle(path, R, 'open', (h) => s.read(h, offset, length))),
    stat: (path) =>
      call('stat', path, async (): Promise<Stat> => {
        const a = await s.getattr(share, path);
        return { type: kind(a), size: a.size, mtimeMs: Number(a.mtimeNs / 1_000_000n) };
      }),
    list: (path) =>
      call('list', path, async () => {
        const out: Entry[] = [];
        let cookie: bigint | undefined;
        for (;;) {
          const page = await s.readdir(share, path, cookie === undefined ? {} : { cookie });
          for (const e of page.entries) out.push({ name: e.name, type: kind(e.attr) });
          if (page.eof || page.entries.length === 0) return out;
          cookie = page.entries.at(-1)!.cookie;
        }
      }),
    rename: (from, to, opts = {}) => call('rename', `${from} -> ${to}`, () => s.rename(share, from, to, { replace: opts.replace ?? true })),
    remove: (path) => call('remove', path, () => s.unlink(share, path)),
    writeAt: (path, offset, data) => call('writeAt', path, () => withHandle(path, RW, 'openOrCreate', (h) => writeAll(h, offset, data))),
    appendFile: (path, data) =>
      call('appendFile', path, () =>
        withHandle(path, RW, 'openOrCreate', async (h) => {
          const a = await s.fstat(h);
          await writeAll(h, a.size, data);
        }),
      ),
    truncate: (path, size) => call('truncate', path, async () => void (await s.setattr(share, path, { size }))),
    setTimes: (path, mtimeMs) => call('setTimes', path, async () => void (await s.setattr(share, path, { mtimeNs: BigInt(Math.round(mtimeMs)) * 1_000_000n }))),
    close: () => s.end(),
    lock: (path) =>
      call('lock', path, async (): Promise<HeldLock> => {
        // A token lock, as WebDAV takes them: every change without the token fails, in any protocol.
        const info = await s.lockPath(share, path, { kind: 'exclusive', style: 'token', depth: 0, timeoutMs: 60_000 });
        s.lockTokens.add(info.token);
        return {
          unlock: () =>
            call('unlock', path, async () => {
              await s.unlockToken(share, info.token);
              s.lockTokens.delete(info.token);
            }),
        };
      }),
  };
  if (caps.symlinks) {
    client.symlink = (target, path) => call('symlink', path, async () => void (await s.symlink(share, target, path)));
    client.readlink = (path) => call('readlink', path, () => s.readlink(share, path));
  }
  if (caps.hardLinks) client.link = (existing, path) => call('link', path, async () => void (await s.link(share, existing, path)));
  return client;
}
