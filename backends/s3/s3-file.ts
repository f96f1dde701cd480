/**
 * An S3 object opened for reading: bound to the version (ETag, size) it had at open, read through
 * the block engine with its own sequential-access state.
 *
 * When a GET finds another ETag (the object was replaced by someone else) the file moves to the
 * new version and the read is retried once on it, so one read never mixes two versions. Blocks of
 * the opened version that are cached stay readable after the object is deleted; a block that has
 * to be fetched from a deleted object fails with ESTALE.
 */
import type { BackendFile, BackendStat } from '../../src/vfs/backend.ts';
import { VfsError, isVfsError } from '../../src/vfs/errors.ts';
import { ReadState, type ObjectVersion, type ReadEngine } from './read-engine.ts';
import { EtagChangedError } from './transport.ts';

export interface FileHost {
  engine: ReadEngine;
  /** A fresh HEAD of the path (undefined when the object is gone). */
  refresh(path: string): Promise<{ version: ObjectVersion; stat: BackendStat } | undefined>;
}

export class S3File implements BackendFile {
  private readonly host: FileHost;
  private readonly path: string;
  private version: ObjectVersion;
  private st: BackendStat;
  private readonly state = new ReadState();
  private closed = false;

  constructor(host: FileHost, path: string, version: ObjectVersion, stat: BackendStat) {
    this.host = host;
    this.path = path;
    this.version = version;
    this.st = stat;
  }

  private live(): void {
    if (this.closed) throw new VfsError('EBADF', undefined, { path: this.path });
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.live();
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new VfsError('EINVAL', undefined, { path: this.path });
    return this.retrying(() => this.host.engine.read(this.version, offset, length, this.state));
  }

  /** The bytes at `offset` copied into `target` (one copy, out of the block cache). */
  async readInto(offset: number, target: Uint8Array): Promise<number> {
    this.live();
    if (!Number.isSafeInteger(offset) || offset < 0) throw new VfsError('EINVAL', undefined, { path: this.path });
    return this.retrying(() => this.host.engine.readInto(this.version, offset, target, this.state));
  }

  /** Runs a read; when the object turned out replaced, moves to the new version and runs it once more. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (isVfsError(e, 'ENOENT')) throw new VfsError('ESTALE', 'object deleted while open', { path: this.path, cause: e });
        if (!(e instanceof EtagChangedError) || attempt > 0) throw e instanceof EtagChangedError ? new VfsError('EIO', 'object keeps changing', { path: this.path, cause: e }) : e;
        const fresh = await this.host.refresh(this.path);
        if (fresh === undefined) throw new VfsError('ESTALE', 'object deleted while open', { path: this.path });
        this.version = fresh.version;
        this.st = fresh.stat;
      }
    }
  }

  async write(): Promise<number> {
    throw new VfsError('EBADF', 'S3 files are opened read-only (writes are staged by the VFS)', { path: this.path });
  }

  async truncate(): Promise<void> {
    throw new VfsError('EBADF', 'S3 files are opened read-only (writes are staged by the VFS)', { path: this.path });
  }

  async sync(): Promise<void> {
    this.live();
  }

  async stat(): Promise<BackendStat> {
    this.live();
    return { ...this.st };
  }

  async close(): Promise<void> {
    this.closed = true;
    // Read-ahead for a reader that is gone stops (its blocks stay cached).
    this.host.engine.cancelReadAhead(this.state);
  }
}
