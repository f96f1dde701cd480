/**
 * Write staging for backends without random writes (object stores).
 *
 * An object can only be replaced whole, so random writes go to a local temporary file (the stage)
 * and the whole file is uploaded through an atomic BackendWriter on flush and on last close. One
 * stage is shared by every handle open on the same file, so two writers through two handles see
 * each other's bytes like they would on a disk. Nothing is visible to other readers until the
 * upload commits, and a failed upload leaves the previous object intact and the stage dirty, so a
 * later flush can retry.
 *
 * The existing content is copied into the stage only when the first change that needs it arrives
 * (a truncating open never downloads anything). The S3 backend issue replaces the copy-everything
 * strategy with block-level staging and UploadPartCopy; the contract stays the same.
 */
import { open, mkdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Backend, BackendStat } from './backend.ts';
import { toVfsError } from './errors.ts';

const COPY_CHUNK = 4 * 1024 * 1024;

export class WriteStage {
  refs = 0;
  dirty = false;
  size: number;
  private loaded: boolean;
  private fh: FileHandle | undefined;
  private readonly tmpPath: string;
  private readonly backend: Backend;
  /** Current backend path (kept up to date across renames by the VFS). */
  path: string;

  private readonly ready: Promise<void>;

  /**
   * Synchronous so that concurrent opens of one file find and share the same stage; the temporary
   * file is opened in the background and every method waits for it. `empty` = the file starts
   * empty (created or truncated): nothing will be downloaded.
   */
  constructor(dir: string, backend: Backend, path: string, empty: boolean) {
    this.backend = backend;
    this.path = path;
    const tmp = join(dir, `stage-${randomBytes(12).toString('hex')}`);
    this.tmpPath = tmp;
    this.size = 0;
    this.loaded = empty;
    this.dirty = empty;
    this.ready = (async () => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      this.fh = await open(tmp, 'w+', 0o600);
    })();
    // Failures surface on first use; never as an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** Copies the current object into the stage (its size read now, not at open: a writer that
   * closed meanwhile may have replaced it). */
  private async load(): Promise<void> {
    await this.ready;
    if (this.loaded) return;
    const fh = this.fh!;
    this.size = (await this.backend.stat(this.path)).size;
    for (let off = 0; off < this.size; ) {
      const buf = await this.backend.read(this.path, off, Math.min(COPY_CHUNK, this.size - off));
      if (buf.length === 0) break;
      await fh.write(buf, 0, buf.length, off);
      off += buf.length;
    }
    this.loaded = true;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!this.loaded) return this.backend.read(this.path, offset, length);
    const n = Math.max(0, Math.min(length, this.size - offset));
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh!.read(buf, got, n - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    // Bytes past what the temp file holds (after a truncate up) read as zeros.
    buf.fill(0, got);
    return buf;
  }

  async write(offset: number, data: Uint8Array): Promise<number> {
    await this.load();
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh!.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    this.size = Math.max(this.size, offset + data.length);
    this.dirty = true;
    return data.length;
  }

  async truncate(size: number): Promise<void> {
    await this.load();
    await this.fh!.truncate(size);
    this.size = size;
    this.dirty = true;
  }

  /** Uploads the staged content when dirty; returns the new stat (or undefined when clean). */
  async publish(): Promise<BackendStat | undefined> {
    if (!this.dirty) return undefined;
    await this.load();
    const w = await this.backend.createWriter(this.path, { sizeHint: this.size });
    try {
      for (let off = 0; off < this.size; ) {
        const want = Math.min(COPY_CHUNK, this.size - off);
        // A fresh buffer per chunk: a writer may keep the chunk it was given (no reuse under it).
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await this.fh!.read(buf, 0, want, off);
        // A hole at the end (truncate up) has no bytes in the temp file: send zeros.
        const n = bytesRead === 0 ? want : bytesRead;
        if (bytesRead === 0) buf.fill(0, 0, n);
        await w.write(buf.subarray(0, n));
        off += n;
      }
      const st = await w.commit();
      this.dirty = false;
      return st;
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw toVfsError(e, this.path);
    }
  }

  async discard(): Promise<void> {
    await this.ready.catch(() => undefined);
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
    await rm(this.tmpPath, { force: true });
  }
}
