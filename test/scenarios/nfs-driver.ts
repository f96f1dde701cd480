/**
 * The NFS driver: the scenarios through the gateway's NFSv4.1 server, spoken by the project's own
 * client (test/nfs/client41.ts: real RPC over TCP, AUTH_SYS with the user's uid, one session).
 * Files are written as an NFS client writes them (OPEN, WRITE, CLOSE), lists come from READDIR with
 * the type attribute, times from GETATTR time_modify (nanoseconds).
 *
 * Where a scenario asks for what NFS has no single operation for, the driver does what a POSIX
 * client does, and says so: rename without replace looks the target up first and refuses
 * another file there (rename(2) has no "no-replace" either; renameat2's RENAME_NOREPLACE is not in
 * NFSv4; not atomic), rmdir and remove check the
 * type first (NFSv4 REMOVE removes both kinds). Calls go one at a time over slot 0: the scenarios'
 * concurrency is between clients, each of which has its own connection.
 */
import { OP, NFS4ERR } from '../../protocols/nfs/nfs4-types.ts';
import { XdrReader, XdrWriter } from '../../protocols/nfs/xdr.ts';
import { Nfs41Client, bitmap, ops, resultOf, w4, type CompoundReply, type OpEnc, type Stateid } from '../nfs/client41.ts';
import { ClientError, type Capabilities, type ClientErrorCode, type Entry, type FileClient, type NodeKind, type ShareInfo, type Stat } from './driver.ts';

const CHUNK = 512 * 1024;
const ATTR = { TYPE: 1, SIZE: 4, FILEID: 20, TIME_MODIFY: 53, TIME_MODIFY_SET: 54 } as const;
const NF4 = { REG: 1, DIR: 2, LNK: 5 } as const;
const ANON: Stateid = { seqid: 0, other: Buffer.alloc(12) };

/** nfsstat4 → the scenario codes (the wire detail stays in the message). */
const CODES: Record<number, ClientErrorCode> = {
  [NFS4ERR.NOENT]: 'ENOENT',
  [NFS4ERR.EXIST]: 'EEXIST',
  [NFS4ERR.NOTEMPTY]: 'ENOTEMPTY',
  [NFS4ERR.ISDIR]: 'EISDIR',
  [NFS4ERR.NOTDIR]: 'ENOTDIR',
  [NFS4ERR.ACCESS]: 'EACCES',
  [NFS4ERR.PERM]: 'EACCES',
  [NFS4ERR.ROFS]: 'EACCES',
  [NFS4ERR.LOCKED]: 'ELOCKED',
  [NFS4ERR.DENIED]: 'ELOCKED',
  [NFS4ERR.SHARE_DENIED]: 'ELOCKED',
  [NFS4ERR.INVAL]: 'EINVAL',
  [NFS4ERR.BADCHAR]: 'EINVAL',
  [NFS4ERR.BADNAME]: 'EINVAL',
  [NFS4ERR.NAMETOOLONG]: 'ENAMETOOLONG',
  [NFS4ERR.FILE_OPEN]: 'EBUSY',
  [NFS4ERR.DELAY]: 'EBUSY',
  [NFS4ERR.GRACE]: 'EBUSY',
  [NFS4ERR.NOTSUPP]: 'ENOTSUP',
  [NFS4ERR.NOSPC]: 'ENOSPC',
  [NFS4ERR.DQUOT]: 'ENOSPC',
};

/** SETATTR of size and/or the modification time (SET_TO_CLIENT_TIME). */
const setattr = (s: Stateid, a: { size?: number; mtimeMs?: number }): OpEnc =>
  w4(OP.SETATTR, (w) => {
    w.u32(s.seqid).opaqueFixed(s.other);
    const vals = new XdrWriter();
    const attrs: number[] = [];
    if (a.size !== undefined) {
      attrs.push(ATTR.SIZE);
      vals.u64(BigInt(a.size));
    }
    if (a.mtimeMs !== undefined) {
      attrs.push(ATTR.TIME_MODIFY_SET);
      const ns = BigInt(Math.round(a.mtimeMs)) * 1_000_000n;
      vals.u32(1).u64(ns / 1_000_000_000n).u32(Number(ns % 1_000_000_000n));
    }
    bitmap(w, attrs);
    w.opaque(vals.toBuffer());
  });
const symlinkOp = (name: string, target: string): OpEnc =>
  w4(OP.CREATE, (w) => {
    w.u32(NF4.LNK).string(target).string(name);
    bitmap(w, []);
    w.opaque(Buffer.alloc(0));
  });
const readdirOp = (cookie: bigint, verifier: Buffer): OpEnc =>
  w4(OP.READDIR, (w) => {
    w.u64(cookie).opaqueFixed(verifier).u32(16_384).u32(64 * 1024);
    bitmap(w, [ATTR.TYPE]);
  });

function kindOf(t: number): NodeKind {
  return t === NF4.DIR ? 'dir' : t === NF4.LNK ? 'symlink' : 'file';
}

const split = (path: string): string[] => path.split('/').filter(Boolean);
const parentOf = (path: string): string => `/${split(path).slice(0, -1).join('/')}`;
const nameOf = (path: string): string => split(path).at(-1) ?? '';

export interface NfsClientOptions {
  port: number;
  share: ShareInfo;
  /** The user's uid (AUTH_SYS): the gateway maps it to the Portico user that has it. */
  uid: number;
}

export async function nfsClient(o: NfsClientOptions): Promise<FileClient> {
  const c = await Nfs41Client.connect(o.port, { uid: o.uid });
  let chain: Promise<unknown> = Promise.resolve();
  let owners = 0;

  /** One COMPOUND at a time (slot 0); a failed status becomes a ClientError naming the operation. */
  const run = (what: string, path: string, list: OpEnc[], okStatuses: number[] = []): Promise<CompoundReply> => {
    const p = chain.then(async () => {
      const r = await c.call(list);
      if (r.status !== 0 && !okStatuses.includes(r.status)) {
        const failed = r.results.at(-1);
        const name = Object.entries(OP).find(([, v]) => v === failed?.op)?.[0] ?? String(failed?.op);
        throw new ClientError(CODES[r.status] ?? 'EIO', `${what} ${path}: ${name} NFS4ERR ${r.status}`);
      }
      return r;
    });
    chain = p.catch(() => undefined);
    return p;
  };
  const to = (path: string): OpEnc[] => c.lookupPath(`/${o.share.name}${path === '/' ? '' : path}`);

  const getattr = async (path: string): Promise<{ type: number; size: number; mtimeMs: number }> => {
    const r = await run('stat', path, [...to(path), ops.getattr([ATTR.TYPE, ATTR.SIZE, ATTR.TIME_MODIFY])]);
    const x = new XdrReader(resultOf(r, OP.GETATTR)!.body!.vals as Buffer);
    const type = x.u32();
    const size = Number(x.u64());
    const sec = x.u64();
    const nsec = x.u32();
    return { type, size, mtimeMs: Number(sec) * 1000 + Math.floor(nsec / 1e6) };
  };

  const fileid = async (path: string): Promise<bigint> => {
    const r = await run('stat', path, [...to(path), ops.getattr([ATTR.FILEID])]);
    return new XdrReader(resultOf(r, OP.GETATTR)!.body!.vals as Buffer).u64();
  };

  /** OPEN by name in the parent (create: UNCHECKED), fn with the stateid, CLOSE whatever happens. */
  const withOpen = async <T>(what: string, path: string, access: 1 | 3, create: boolean, fn: (s: Stateid) => Promise<T>): Promise<T> => {
    const opened = await run(what, path, [...to(parentOf(path)), ops.open(c.clientid, `${c.owner}-${++owners}`, nameOf(path), { access, ...(create ? { create: 'unchecked' as const } : {}) })]);
    const s = resultOf(opened, OP.OPEN)!.body!.stateid as Stateid;
    try {
      return await fn(s);
    } finally {
      await run(what, path, [...to(path), ops.close(s)]).catch(() => undefined);
    }
  };
  const writeAll = async (path: string, s: Stateid, offset: number, data: Uint8Array): Promise<void> => {
    for (let at = 0; at < data.length; at += CHUNK) {
      const part = Buffer.from(data.subarray(at, Math.min(data.length, at + CHUNK)));
      const r = await run('write', path, [...to(path), ops.write(s, BigInt(offset + at), part)]);
      const n = resultOf(r, OP.WRITE)!.body!.count as number;
      if (n !== part.length) throw new Error(`short write: ${n} of ${part.length}`);
    }
  };
  const readSome = async (path: string, s: Stateid, offset: number, length: number): Promise<Buffer> => {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < length) {
      const r = await run('read', path, [...to(path), ops.read(s, BigInt(offset + got), Math.min(CHUNK, length - got))]);
      const body = resultOf(r, OP.READ)!.body!;
      const data = body.data as Buffer;
      parts.push(data);
      got += data.length;
      if (body.eof === true || data.length === 0) break;
    }
    return Buffer.concat(parts);
  };
  const typeOf = async (what: string, path: string): Promise<number> => {
    try {
      return (await getattr(path)).type;
    } catch (e) {
      if (e instanceof ClientError) throw new ClientError(e.code, `${what} ${path}: ${e.message}`);
      throw e;
    }
  };

  const caps: Capabilities = {
    randomWrite: true,
    append: true,
    atomicWrite: false,
    truncate: true,
    setTimes: true,
    mtimeResolutionMs: 1,
    symlinks: o.share.symlinks,
    hardLinks: o.share.hardLinks,
    // The scenarios' lock is WebDAV's: exclusive, on files and directories, and it stops others'
    // writes, removes and renames. NFSv4 has none such: its byte-range locks are POSIX advisory
    // locks (they stop other lockers, not writers; test/nfs covers them and their cross-protocol
    // conflicts), and OPEN's deny modes cover reading and writing only, not removing or renaming.
    locks: false,
    caseInsensitive: o.share.caseInsensitive,
    renameReplacesDir: false,
    rmdirRecursive: false,
    posixNames: true,
  };

  const client: FileClient = {
    name: 'nfs',
    caps,
    mkdir: async (path) => void (await run('mkdir', path, [...to(parentOf(path)), ops.mkdir(nameOf(path))])),
    rmdir: async (path) => {
      if ((await typeOf('rmdir', path)) !== NF4.DIR) throw new ClientError('ENOTDIR', `rmdir ${path}: not a directory`);
      await run('rmdir', path, [...to(parentOf(path)), ops.remove(nameOf(path))]);
    },
    writeFile: (path, data) =>
      withOpen('writeFile', path, 3, true, async (s) => {
        await run('writeFile', path, [...to(path), setattr(s, { size: 0 })]);
        await writeAll(path, s, 0, data);
      }),
    readFile: (path) => withOpen('readFile', path, 1, false, (s) => readSome(path, s, 0, Number.MAX_SAFE_INTEGER)),
    readRange: (path, offset, length) => withOpen('readRange', path, 1, false, (s) => readSome(path, s, offset, length)),
    stat: async (path): Promise<Stat> => {
      const a = await getattr(path);
      return { type: kindOf(a.type), size: a.size, mtimeMs: a.mtimeMs };
    },
    list: async (path) => {
      const out: Entry[] = [];
      let cookie = 0n;
      let verifier: Buffer = Buffer.alloc(8);
      for (let pages = 0; pages < 100_000; pages++) {
        const r = await run('list', path, [...to(path), readdirOp(cookie, verifier)]);
        const body = resultOf(r, OP.READDIR)!.body!;
        verifier = body.cookieverf as Buffer;
        const names = body.names as string[];
        const attrs = body.attrs as Buffer[];
        const cookies = body.cookies as bigint[];
        names.forEach((name, i) => out.push({ name, type: kindOf(new XdrReader(attrs[i]!).u32()) }));
        const last = cookies.at(-1) ?? cookie;
        if (body.eof === true || last === cookie) return out;
        cookie = last;
      }
      throw new Error(`list ${path}: no end after 100,000 pages`);
    },
    rename: async (from, to2, opts = {}) => {
      if (opts.replace === false) {
        // The target exists as another file: EEXIST. The same file (another spelling of the
        // source on a case-insensitive share) is no replacement.
        const target = await fileid(to2).catch((e: unknown) => {
          if (e instanceof ClientError && e.code === 'ENOENT') return undefined;
          throw e;
        });
        if (target !== undefined && target !== (await fileid(from))) throw new ClientError('EEXIST', `rename ${from} -> ${to2}: the target exists`);
      }
      await run('rename', `${from} -> ${to2}`, [...to(parentOf(from)), ops.savefh(), ...to(parentOf(to2)), ops.rename(nameOf(from), nameOf(to2))]);
    },
    remove: async (path) => {
      if ((await typeOf('remove', path)) === NF4.DIR) throw new ClientError('EISDIR', `remove ${path}: a directory`);
      await run('remove', path, [...to(parentOf(path)), ops.remove(nameOf(path))]);
    },
    writeAt: (path, offset, data) => withOpen('writeAt', path, 3, true, (s) => writeAll(path, s, offset, data)),
    appendFile: (path, data) =>
      withOpen('appendFile', path, 3, true, async (s) => {
        const r = await run('appendFile', path, [...to(path), ops.getattr([ATTR.SIZE])]);
        const size = Number(new XdrReader(resultOf(r, OP.GETATTR)!.body!.vals as Buffer).u64());
        await writeAll(path, s, size, data);
      }),
    truncate: async (path, size) => void (await run('truncate', path, [...to(path), setattr(ANON, { size })])),
    setTimes: async (path, mtimeMs) => void (await run('setTimes', path, [...to(path), setattr(ANON, { mtimeMs })])),
    close: async () => {
      await chain;
      c.close();
    },
  };
  if (caps.symlinks) {
    client.symlink = async (target, path) => void (await run('symlink', path, [...to(parentOf(path)), symlinkOp(nameOf(path), target)]));
    client.readlink = async (path) => {
      const r = await run('readlink', path, [...to(path), w4(OP.READLINK)]);
      return resultOf(r, OP.READLINK)!.body!.link as string;
    };
  }
  if (caps.hardLinks) {
    client.link = async (existing, path) =>
      void (await run('link', path, [...to(existing), ops.savefh(), ...to(parentOf(path)), w4(OP.LINK, (w) => w.string(nameOf(path)))]));
  }
  return client;
}
