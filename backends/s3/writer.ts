/**
 * Streaming, atomic-on-commit object writes.
 *
 * Less than one part in total: one PutObject at commit. More: a multipart upload started when the
 * first part fills, parts uploaded while the caller keeps writing (at most `maxConcurrentParts` at
 * once; write() waits for a slot, so memory stays bounded), completed at commit only after every
 * part succeeded: S3 shows nothing at the key before CompleteMultipartUpload, so no reader ever
 * sees a partial object. Any failure or abort() aborts the upload.
 *
 * Part sizes: S3 allows 10,000 parts of 5 MiB..5 GiB. With a size hint the part size is chosen so
 * that the hinted size fits in 9,000 parts; without one it starts at `partSize` and doubles every
 * 1,000 parts (8 MiB parts reach 8 TiB before part 10,000), so a 5 TiB stream of unknown length
 * still fits. Parts above `memoryPartLimit` are spooled to a temporary file instead of memory and
 * streamed from it (a fresh stream per retry).
 *
 * commit() resolves once S3 has acknowledged the object (it is durable), never earlier.
 *
 * Patch writers (`base` set, Backend.createPatchWriter) also take copyBase(start, end): ranges of
 * the object's current version (the base, pinned by its ETag) appended without passing through
 * Portico. S3 wants every part but the last to be >= 5 MiB and a part to be either uploaded bytes or
 * one UploadPartCopy, so a base range is laid out as:
 *   1. top-up: when a part is being filled with written bytes, base bytes are read (ranged GETs of
 *      the base version through the read engine, ETag-checked) until that part is full;
 *   2. copy parts: the rest, as UploadPartCopy parts of at most max(copyPartMax, part size) bytes
 *      each (5 GiB at most), sent with x-amz-copy-source-if-match: <base ETag>, while at least
 *      MIN_PART_BYTES remain;
 *   3. a tail under 5 MiB is read like the top-up and starts the next uploaded part.
 * Only bytes within one part of a change are downloaded. Part count: with a part size P >= size /
 * 4000, uploaded parts are full except the last, so uploaded bytes plus copied bytes (= size) give
 * U + C/P <= 4001 (U uploaded parts, C copied bytes); copy runs are separated by uploaded parts
 * (at most U + 1 runs) and a run of L bytes takes at most 1 + L/P copy parts; in all
 * <= U + (U + 1) + C/P <= 8003 < 10,000. A base that changed (412 on a copy, another ETag on a read)
 * fails the writer with ESTALE: nothing is published, never a mix of versions.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BackendStat, FileOwner, PatchWriter, SetMetadata } from '../../src/vfs/backend.ts';
import { VfsError, toVfsError } from '../../src/vfs/errors.ts';
import { encodeMeta } from './keys.ts';
import { isPreconditionFailed, type S3Transport } from './transport.ts';
import type { BlockSink } from './block-cache.ts';

const MiB = 1024 * 1024;
export const MAX_PART_BYTES = 5 * 1024 * MiB;
export const MIN_PART_BYTES = 5 * MiB;
const MAX_PARTS = 10_000;

/** What a writer needs from its backend. */
/** What a single PutObject's answer tells, with what it sent (S3Backend.published). */
export interface PutAnswer {
  date: Date;
  meta: Record<string, string>;
  contentType: string | undefined;
}

export interface WriterHost {
  transport: S3Transport;
  partSize: number;
  maxConcurrentParts: number;
  memoryPartLimit: number;
  spoolDir: string;
  maxFileSize: number;
  /** Metadata and content type of the new version (inherited from the old one, plus the mode). */
  baseMeta(path: string, key: string, mode: number | undefined, owner?: FileOwner): Promise<{ meta: Record<string, string>; contentType: string | undefined }>;
  /** Serialises exclusive commits of one key inside this process. */
  withKeyLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Fresh existence check of a file key (no cache). */
  exists(key: string, path: string): Promise<boolean>;
  /** Called once the object is in S3: HEAD, cache updates; `data` = the whole content when small. */
  /**
   * `answer`: a single PutObject's answer Date, with the metadata and content type it sent (what a
   * HEAD would report besides LastModified).
   */
  published(path: string, key: string, etag: string, data: Buffer | undefined, meta: SetMetadata | undefined, answer?: PutAnswer): Promise<BackendStat>;
  uploadStarted(key: string, uploadId: string): void;
  uploadEnded(uploadId: string): void;
  /** Largest UploadPartCopy part (patch writers). */
  copyPartMax: number;
  /** Bytes [start, end) of version (key, etag); ESTALE when the object is no longer that version. */
  readBase(path: string, key: string, etag: string, size: number, start: number, end: number): Promise<Buffer>;
  /** The read engine: written bytes are teed into its disk tier (read-after-write without a GET). */
  readonly engine?: {
    sink(key: string, sizeHint: number | undefined): BlockSink | undefined;
  };
}

export interface WriterParams {
  path: string;
  key: string;
  exclusive: boolean;
  mode: number | undefined;
  /** Owner of a file this writer creates (a replaced file keeps its own). */
  owner?: FileOwner | undefined;
  sizeHint: number | undefined;
  /** Patch writers: the version copyBase() copies from (its ETag is sent as if-match). */
  base?: { etag: string; size: number } | undefined;
}

/** A part being filled: in memory, or in a spool file. */
interface Part {
  number: number;
  size: number;
  len: number;
  buf?: Buffer;
  file?: { fh: FileHandle; path: string };
}

/** Largest ranged GET of the base while topping up a part. */
const BASE_READ_CHUNK = 4 * MiB;

export class S3Writer implements PatchWriter {
  private readonly host: WriterHost;
  private readonly p: WriterParams;
  private readonly base: Promise<{ meta: Record<string, string>; contentType: string | undefined }>;
  private readonly basePart: number;
  private current: Part | undefined;
  private nextPart = 1;
  private total = 0;
  private uploadId: string | undefined;
  private readonly parts: { PartNumber: number; ETag: string }[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown;
  private done = false;
  /** When the multipart upload began (its completion is verified against it). */
  private startedAt = 0;
  /**
   * Multipart uploads: every part, as it ships, also goes into the disk block cache, adopted under
   * the new ETag at commit (block-cache.ts BlockSink). Off after a server-side copied part (its
   * bytes never pass through here) or a spooled part. A single-PutObject body is seeded into the
   * memory tier after the PUT instead (published()), and reaches the disk tier only if memory
   * evicts it: no file work on a small write's path.
   */
  private sink: BlockSink | undefined;
  private sinkOff = false;

  constructor(host: WriterHost, p: WriterParams) {
    this.host = host;
    this.p = p;
    this.base = host.baseMeta(p.path, p.key, p.mode, p.owner);
    this.base.catch(() => undefined);
    const hint = p.sizeHint !== undefined && p.sizeHint > 0 ? p.sizeHint : undefined;
    // Patch writers may add one copy part per uploaded one: half the parts for the uploaded ones.
    const forHint = hint === undefined ? 0 : Math.ceil(hint / (p.base !== undefined ? 4000 : 9000) / MiB) * MiB;
    this.basePart = Math.min(MAX_PART_BYTES, Math.max(MIN_PART_BYTES, host.partSize, forHint));
  }

  private partSize(n: number): number {
    const hinted = this.p.sizeHint !== undefined && this.p.sizeHint > 0;
    // Without a hint: double every 1,000 parts. With one: constant, then (hint was wrong) grow fast.
    const exp = hinted ? Math.max(0, Math.floor((n - 9000) / 100) + (n > 9000 ? 1 : 0)) : Math.floor((n - 1) / 1000);
    return Math.min(MAX_PART_BYTES, this.basePart * 2 ** exp);
  }

  private live(): void {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.p.path });
    if (this.failure !== undefined) throw toVfsError(this.failure, this.p.path);
  }

  async write(chunk: Uint8Array): Promise<void> {
    return this.writev([chunk]);
  }

  async writev(chunks: readonly Uint8Array[]): Promise<void> {
    this.live();
    let n = 0;
    for (const c of chunks) n += c.length;
    if (this.total + n > this.host.maxFileSize) throw new VfsError('EFBIG', undefined, { path: this.p.path });
    for (const c of chunks) await this.writeParts(c);
  }

  private async writeParts(chunk: Uint8Array): Promise<void> {
    this.live();
    let off = 0;
    while (off < chunk.length) {
      const part = this.current ?? (this.current = await this.newPart());
      const n = Math.min(part.size - part.len, chunk.length - off);
      await this.append(part, chunk.subarray(off, off + n));
      off += n;
      this.total += n;
      if (part.len === part.size) {
        this.current = undefined;
        await this.ship(part);
      }
    }
  }

  private async newPart(): Promise<Part> {
    const number = this.nextPart++;
    if (number > MAX_PARTS) throw new VfsError('EFBIG', 'more than 10,000 parts', { path: this.p.path });
    const size = this.partSize(number);
    const part: Part = { number, size, len: 0 };
    if (size > this.host.memoryPartLimit) {
      await mkdir(this.host.spoolDir, { recursive: true, mode: 0o700 });
      const path = join(this.host.spoolDir, `part-${randomBytes(8).toString('hex')}`);
      part.file = { fh: await open(path, 'w+', 0o600), path };
    }
    return part;
  }

  private async append(part: Part, data: Uint8Array): Promise<void> {
    if (part.file !== undefined) {
      let done = 0;
      while (done < data.length) done += (await part.file.fh.write(data, done, data.length - done, part.len + done)).bytesWritten;
    } else {
      const need = part.len + data.length;
      if (part.buf === undefined || part.buf.length < need) {
        // Grow geometrically up to the part size: a 10-byte file must not cost an 8 MiB buffer. A
        // part after the first is full but the last one: its whole size at once (growing by
        // doubling copied every byte of each 8 MiB part once more).
        const hint = part.number > 1 ? part.size : this.p.sizeHint ?? 0;
        const cap = Math.min(part.size, Math.max(need, hint, 64 * 1024, (part.buf?.length ?? 0) * 2));
        const grown = Buffer.allocUnsafe(cap);
        part.buf?.copy(grown, 0, 0, part.len);
        part.buf = grown;
      }
      part.buf.set(data, part.len);
    }
    part.len += data.length;
  }

  /** Starts the multipart upload if needed and waits for a free part slot; returns the upload id. */
  private async slot(): Promise<string> {
    if (this.uploadId === undefined) {
      const { meta, contentType } = await this.base;
      this.startedAt = Date.now();
      this.uploadId = await this.host.transport.createUpload(this.p.key, meta, contentType, this.p.path);
      this.host.uploadStarted(this.p.key, this.uploadId);
    }
    while (this.inflight.size >= this.host.maxConcurrentParts) await Promise.race(this.inflight);
    if (this.failure !== undefined) throw this.failure;
    return this.uploadId;
  }

  /** The part's bytes into the cache sink (parts ship in order); see `sink`. */
  private async tee(part: Part): Promise<void> {
    if (this.sinkOff) return;
    if (this.sink === undefined) {
      this.sink = part.number === 1 ? this.host.engine?.sink(this.p.key, this.p.sizeHint) : undefined;
      if (this.sink === undefined) {
        this.sinkOff = true;
        return;
      }
    }
    if (part.buf === undefined) return this.dropSink();
    // In the background (bounded by the sink); the part's buffer is not reused after its upload.
    this.sink.write(part.buf.subarray(0, part.len));
  }

  private async dropSink(): Promise<void> {
    this.sinkOff = true;
    const s = this.sink;
    this.sink = undefined;
    await s?.discard();
  }

  /** Uploads a full part in the background, waiting first for a free upload slot. */
  private async ship(part: Part): Promise<void> {
    await this.tee(part);
    let uploadId: string;
    try {
      uploadId = await this.slot();
    } catch (e) {
      this.failure ??= e;
      await releasePart(part);
      throw toVfsError(e, this.p.path);
    }
    const t = this.uploadPart(uploadId, part).then(
      (etag) => {
        this.parts.push({ PartNumber: part.number, ETag: etag });
      },
      (e: unknown) => {
        this.failure ??= e;
      },
    ).finally(() => {
      this.inflight.delete(t);
    });
    this.inflight.add(t);
  }

  /**
   * Appends bytes [start, end) of the base version (see the file comment for the part layout).
   * Only on patch writers (Backend.createPatchWriter).
   */
  async copyBase(start: number, end: number): Promise<void> {
    this.live();
    const base = this.p.base;
    if (base === undefined) throw new VfsError('EINVAL', 'copyBase() on a writer without a base', { path: this.p.path });
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > base.size) {
      throw new VfsError('EINVAL', `copyBase(${start}, ${end}) outside the base (${base.size} bytes)`, { path: this.p.path });
    }
    if (this.total + (end - start) > this.host.maxFileSize) throw new VfsError('EFBIG', undefined, { path: this.p.path });
    let at = start;
    // 1. Fill the part being written: an uploaded part must be full unless it is the last.
    const cur = this.current;
    if (cur !== undefined && cur.len > 0) {
      const n = Math.min(cur.size - cur.len, end - at);
      await this.appendBase(at, at + n);
      at += n;
    }
    // 2. Whole copy parts while at least the S3 minimum remains.
    while (end - at >= MIN_PART_BYTES) {
      // Never below the uploaded part size (keeps the 10,000-part bound when copyPartMax is small).
      const n = Math.min(MAX_PART_BYTES, Math.max(this.host.copyPartMax, this.basePart), end - at);
      await this.shipCopy(at, at + n);
      at += n;
    }
    // 3. A short tail: read, it begins the next uploaded part.
    if (at < end) await this.appendBase(at, end);
  }

  /** Base bytes [start, end) read (ETag-checked) and appended like written bytes. */
  private async appendBase(start: number, end: number): Promise<void> {
    const base = this.p.base as { etag: string; size: number };
    for (let off = start; off < end;) {
      const n = Math.min(BASE_READ_CHUNK, end - off);
      const data = await this.host.readBase(this.p.path, this.p.key, base.etag, base.size, off, off + n);
      if (data.length !== n) throw new VfsError('ESTALE', 'base object shorter than expected', { path: this.p.path });
      await this.write(data);
      off += n;
    }
  }

  /** One UploadPartCopy part of the base, in the background like an uploaded part. */
  private async shipCopy(start: number, end: number): Promise<void> {
    const base = this.p.base as { etag: string; size: number };
    // Copied bytes never pass through the writer: its cache sink cannot describe the object.
    await this.dropSink();
    const number = this.nextPart++;
    if (number > MAX_PARTS) throw new VfsError('EFBIG', 'more than 10,000 parts', { path: this.p.path });
    let uploadId: string;
    try {
      uploadId = await this.slot();
    } catch (e) {
      this.failure ??= e;
      throw toVfsError(e, this.p.path);
    }
    this.total += end - start;
    const t = this.host.transport.uploadPartCopy(this.p.key, uploadId, number, this.p.key, start, end, this.p.path, base.etag).then(
      (etag) => {
        this.parts.push({ PartNumber: number, ETag: etag });
      },
      (e: unknown) => {
        this.failure ??= isPreconditionFailed(e)
          ? new VfsError('ESTALE', 'the object changed since it was opened (UploadPartCopy precondition failed)', { path: this.p.path, cause: e })
          : e;
      },
    ).finally(() => {
      this.inflight.delete(t);
    });
    this.inflight.add(t);
  }

  private async uploadPart(uploadId: string, part: Part): Promise<string> {
    try {
      if (part.file !== undefined) {
        const { path } = part.file;
        await part.file.fh.sync().catch(() => undefined);
        return await this.host.transport.uploadPart(this.p.key, uploadId, part.number, () => createReadStream(path, { start: 0, end: part.len - 1 }), part.len, this.p.path);
      }
      return await this.host.transport.uploadPart(this.p.key, uploadId, part.number, (part.buf as Buffer).subarray(0, part.len), part.len, this.p.path);
    } finally {
      await releasePart(part);
    }
  }

  async commit(meta?: SetMetadata): Promise<BackendStat> {
    this.live();
    this.done = true;
    try {
      // A spooled first part (parts above memoryPartLimit, with a size hint that overestimated)
      // is not in memory: it goes as a one-part multipart upload.
      if (this.uploadId === undefined && (this.current?.file === undefined || this.current.len === 0)) return await this.putWhole(meta);
      const last = this.current;
      this.current = undefined;
      if (last !== undefined && last.len > 0) await this.ship(last);
      else if (last !== undefined) await releasePart(last);
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      if (this.failure !== undefined) throw this.failure;
      const parts = [...this.parts].sort((a, b) => a.PartNumber - b.PartNumber);
      const uploadId = this.uploadId;
      if (uploadId === undefined) throw new VfsError('EIO', 'multipart upload missing at commit', { path: this.p.path });
      const complete = (): Promise<string> => this.completeOrVerify(uploadId, parts);
      const etag = this.p.exclusive ? await this.host.withKeyLock(this.p.key, async () => {
        if (await this.host.exists(this.p.key, this.p.path)) throw new VfsError('EEXIST', undefined, { path: this.p.path });
        return complete();
      }) : await complete();
      this.host.uploadEnded(uploadId);
      this.uploadId = undefined;
      await this.adoptCache(etag);
      return await this.host.published(this.p.path, this.p.key, etag, undefined, hasMeta(meta) ? meta : undefined);
    } catch (e) {
      await this.cleanup();
      if (isPreconditionFailed(e)) throw new VfsError(this.p.base !== undefined && !this.p.exclusive ? 'ESTALE' : 'EEXIST', undefined, { path: this.p.path });
      throw toVfsError(e, this.p.path);
    }
  }

  /**
   * CompleteMultipartUpload, and when it fails after attempts whose outcome is unknown (a timeout:
   * the store may have finished assembling; a retry then finds no upload), a HEAD decides: an
   * object of exactly our size written since this upload started is ours.
   */
  private async completeOrVerify(uploadId: string, parts: { PartNumber: number; ETag: string }[]): Promise<string> {
    try {
      return await this.host.transport.completeUpload(this.p.key, uploadId, parts, this.p.exclusive, this.total, this.p.path);
    } catch (e) {
      if (isPreconditionFailed(e)) throw e;
      const head = await this.host.transport.head(this.p.key, this.p.path).catch(() => undefined);
      const since = this.startedAt - 2000;
      if (head !== undefined && head.size === this.total && (head.lastModified?.getTime() ?? 0) >= since) return head.etag;
      throw e;
    }
  }

  private async putWhole(meta: SetMetadata | undefined): Promise<BackendStat> {
    const part = this.current;
    this.current = undefined;
    const body = part?.buf !== undefined ? part.buf.subarray(0, part.len) : Buffer.alloc(0);
    try {
      const base = await this.base;
      const m = hasMeta(meta) ? encodeMeta('file', base.meta, meta as SetMetadata) : base.meta;
      let date: Date | undefined;
      const put = (): Promise<string> => this.host.transport.put(this.p.key, body, m, {
        ifNoneMatch: this.p.exclusive, contentType: base.contentType, path: this.p.path, onDate: (d) => {
          date = d;
        },
      });
      const etag = this.p.exclusive ? await this.host.withKeyLock(this.p.key, async () => {
        if (await this.host.exists(this.p.key, this.p.path)) throw new VfsError('EEXIST', undefined, { path: this.p.path });
        return put();
      }) : await put();
      return await this.host.published(this.p.path, this.p.key, etag, body, undefined, date === undefined ? undefined : { date, meta: m, contentType: base.contentType });
    } finally {
      if (part !== undefined) await releasePart(part);
    }
  }

  async abort(): Promise<void> {
    this.done = true;
    await this.cleanup();
  }

  /**
   * The object is in the store as `etag`: the teed blocks join the disk tier under it, before the
   * new version is published to the caches (a reader that learns the ETag finds its blocks).
   */
  private async adoptCache(etag: string): Promise<void> {
    const s = this.sink;
    this.sink = undefined;
    this.sinkOff = true;
    await s?.adopt(etag, this.total);
  }

  private async cleanup(): Promise<void> {
    this.failure ??= new VfsError('ECANCELED', 'writer aborted', { path: this.p.path });
    await this.dropSink();
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    if (this.current !== undefined) {
      await releasePart(this.current);
      this.current = undefined;
    }
    const id = this.uploadId;
    this.uploadId = undefined;
    if (id !== undefined) {
      // Best effort: if this fails, recover() finds the upload later.
      await this.host.transport.abortUpload(this.p.key, id, this.p.path).then(() => this.host.uploadEnded(id), () => undefined);
    }
  }
}

function hasMeta(m: SetMetadata | undefined): boolean {
  return m !== undefined && Object.values(m).some((v) => v !== undefined);
}

async function releasePart(part: Part): Promise<void> {
  part.buf = undefined;
  const f = part.file;
  part.file = undefined;
  if (f !== undefined) {
    await f.fh.close().catch(() => undefined);
    await rm(f.path, { force: true });
  }
}
