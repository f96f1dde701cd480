/**
 * Open-file objects of the local backend: a BackendFile over a FileHandle, and the streaming
 * writer that stages into a hidden temp file and lets the backend publish it on commit.
 */
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { BackendFile, BackendStat, BackendWriter, SetMetadata, TimeNs } from '../../src/vfs/backend.ts';
import { toVfsError, VfsError } from '../../src/vfs/errors.ts';
import { baseName } from '../../src/vfs/path.ts';

/** What a LocalWriter needs from its backend. */
export interface WriterHost {
  publish(fh: FileHandle, temp: string, path: string, exclusive: boolean, meta: SetMetadata | undefined): Promise<BackendStat>;
  discard(temp: string): Promise<void>;
}

/**
 * ns -> seconds as utimes() wants them. Rounded to the µs first: a double holds ~0.2 µs at today's
 * epoch and libuv truncates it, so reading a time back and writing it again must not drift by 1 µs.
 */
export function nsToSeconds(ns: TimeNs): number {
  return Number((ns + 500n) / 1000n) / 1e6;
}

export function toStat(name: string, st: BigIntStats, target?: string): BackendStat {
  const out: BackendStat = {
    name,
    type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file',
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    atimeNs: st.atimeNs,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    nativeId: `${st.dev}:${st.ino}`,
  };
  // statx reports no btime on some filesystems; libuv leaves it 0 then.
  if (st.birthtimeNs !== 0n) out.birthtimeNs = st.birthtimeNs;
  if (target !== undefined) out.target = target;
  return out;
}

export async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const done = await readIntoAt(fh, offset, buf);
  return done === length ? buf : buf.subarray(0, done);
}

export async function readIntoAt(fh: FileHandle, offset: number, target: Uint8Array): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

export async function applyMetaToHandle(fh: FileHandle, meta: SetMetadata): Promise<void> {
  if (meta.mode !== undefined) await fh.chmod(meta.mode & 0o7777);
  if (meta.uid !== undefined || meta.gid !== undefined) await fh.chown(meta.uid ?? -1, meta.gid ?? -1);
  if (meta.atimeNs !== undefined || meta.mtimeNs !== undefined) {
    let { atimeNs, mtimeNs } = meta;
    if (atimeNs === undefined || mtimeNs === undefined) {
      const st = await fh.stat({ bigint: true });
      atimeNs ??= st.atimeNs;
      mtimeNs ??= st.mtimeNs;
    }
    await fh.utimes(nsToSeconds(atimeNs), nsToSeconds(mtimeNs));
  }
}

export class LocalFile implements BackendFile {
  private readonly fh: FileHandle;
  private readonly path: string;
  private closed = false;

  constructor(fh: FileHandle, path: string) {
    this.fh = fh;
    this.path = path;
  }

  private live(): FileHandle {
    if (this.closed) throw new VfsError('EBADF', undefined, { path: this.path });
    return this.fh;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    try {
      return await readAt(this.live(), offset, length);
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async readInto(offset: number, target: Uint8Array): Promise<number> {
    try {
      return await readIntoAt(this.live(), offset, target);
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async write(offset: number, data: Uint8Array): Promise<number> {
    try {
      const fh = this.live();
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
      return done;
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async truncate(size: number): Promise<void> {
    try {
      await this.live().truncate(size);
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async sync(): Promise<void> {
    try {
      await this.live().datasync();
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async stat(): Promise<BackendStat> {
    try {
      return toStat(baseName(this.path), await this.live().stat({ bigint: true }));
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.fh.close();
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }
}

export class LocalWriter implements BackendWriter {
  private readonly backend: WriterHost;
  private readonly fh: FileHandle;
  private readonly path: string;
  private readonly temp: string;
  private readonly exclusive: boolean;
  private position = 0;
  private done = false;

  constructor(backend: WriterHost, fh: FileHandle, path: string, temp: string, exclusive: boolean) {
    this.backend = backend;
    this.fh = fh;
    this.path = path;
    this.temp = temp;
    this.exclusive = exclusive;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    // Reserve the range before awaiting, so overlapping calls still land in order.
    let pos = this.position;
    this.position += chunk.length;
    let off = 0;
    try {
      while (off < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off, pos);
        off += bytesWritten;
        pos += bytesWritten;
      }
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async commit(meta?: SetMetadata): Promise<BackendStat> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    this.done = true;
    try {
      return await this.backend.publish(this.fh, this.temp, this.path, this.exclusive, meta);
    } catch (e) {
      await this.backend.discard(this.temp);
      throw toVfsError(e, this.path);
    } finally {
      await this.fh.close().catch(() => {});
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close().catch(() => {});
    await this.backend.discard(this.temp);
  }
}
