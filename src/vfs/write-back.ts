/**
 * Asynchronous write-back for object-store shares (`shares[].writeBack: async`).
 *
 * Default (`sync`): a last close or a flush returns only after the object is durable in the store
 * (src/vfs/vfs.ts publishes the write stage in-band). In `async` mode a last close or a flush makes the
 * staged content durable on the gateway's own disk instead and returns; the upload runs in the
 * background. The rule that nothing acknowledged is ever lost holds because of the order of steps:
 *
 *   1. snapshot the stage (its size, mode and extent map) — before the fsync, so every range the
 *      snapshot names was written before the fsync that follows;
 *   2. fsync the stage's temp file (and, once per stage, its directory, so its name survives too);
 *   3. append a checksummed record {volume, path, file id, snapshot} to the journal and fdatasync it;
 *   4. only then return to the client.
 *
 * The upload later calls the stage's own publish() (whole or sparse/UploadPartCopy, atomic on
 * commit); when it commits, a `del` record is appended (durably) and only then is the stage's temp
 * file removed. A crash at any point leaves either the record and its temp file (uploaded again at
 * the next start: idempotent, same bytes) or neither.
 *
 * Decisions (and why):
 * - Journal: a log file (`<writeBackDir>/journal.log`) of `crc32 json` lines, fdatasync'd per
 *   batch (group commit: closes arriving together share one fsync). Not the SQLite metadata
 *   store: it runs `synchronous = NORMAL`, which may lose the last transactions on a power cut —
 *   acceptable for file ids, not for an acknowledged close. A torn or corrupt line (a crash in the
 *   middle of an append) is skipped at start-up — it was never acknowledged — and the journal is
 *   rewritten clean (temp file, fsync, rename, directory fsync) before any new append. It is also
 *   compacted when it grows past 4 x its live size (and 1 MiB).
 * - The journal is preallocated: each rewrite writes zeros (real blocks, not fallocate's unwritten
 *   extents) for JOURNAL_SLACK bytes past its records and fsyncs them, and records are then written
 *   over the zeros in place. An append to the end of a file changes its size, and on ext4
 *   (data=ordered) the fdatasync of a size change is a jbd2 commit that waits for every other
 *   file's metadata and ordered data in the transaction; an overwrite of written blocks leaves
 *   nothing for fdatasync but the data and the disk-cache flush (measured beside a bulk writer:
 *   backends/s3/README.md, "a preallocated write-back journal"). The zero tail is not a record:
 *   parsing stops at it, and a line with NUL bytes (a crash tore a write: some of its blocks
 *   reached the disk, some not) is torn like any other. Past the zeros, the journal is compacted
 *   when most of it is dead, else an append writes the next JOURNAL_SLACK of zeros with its record
 *   (one size change per that many bytes).
 * - Flush in async mode = durable on the gateway (steps 1-3), not uploaded: the file is still open,
 *   and uploading a stage that writers keep changing would publish a moving target. The upload
 *   starts once no handle with write access is left on the file (its last writer closed). NFS
 *   COMMIT and SMB FLUSH therefore cost one local fsync, not an upload.
 * - While an upload is pending, this gateway serves the staged content: an open of the file reuses
 *   the pending stage (readers share it without stopping the upload; a writer holds it: no upload
 *   starts while a writer is attached; an attempt already running is not waited for — it publishes
 *   what it read, the stage keeps later writes dirty, and the entry goes up again after the close),
 *   getattr/readdir report the staged size and mtime (the close time), rename retargets the upload
 *   (durably re-journaled), unlink and overwrite (WebDAV PUT, rename over it) cancel it, a
 *   truncating open empties the pending stage (superseding its content), setattr and server-side copy of a pending file upload it first (otherwise the change
 *   would be overwritten by the upload, or the copy would copy stale bytes). A namespace change
 *   (rename, unlink, overwrite by PUT) of a file whose attempt is running waits for that attempt
 *   (bounded by the backend's timeouts), so an upload never lands at a name that just went away.
 * - Uploads: at most `maxConcurrentUploads` per share. A failure backs the whole share off
 *   (exponential with jitter from retryBaseMs to retryMaxMs): when the store is down every upload
 *   would fail alike, and one timer per share beats one per file. Transient failures (EIO,
 *   ETIMEDOUT, EACCES — credentials get fixed —, ...) are retried for ever: the data is safe on
 *   disk and the store will come back. Failures about this one file (ENOENT: parent deleted by
 *   another S3 client; ESTALE: the sparse stage's base object was replaced; EISDIR, EFBIG, ...) are
 *   retried `permanentFailureAttempts` times, then the stage is quarantined: its content is written
 *   to `<writeBackDir>/lost+found/<share>/<time>-<file id>-<name>` (or, when the content cannot be
 *   rebuilt — a sparse stage whose base is gone —, the raw temp file as `.stage`), with a `.json`
 *   describing it (share, path, size, error, snapshot), all fsync'd, before the journal record is
 *   dropped; an error is logged and portico_writeback_quarantined_total counts it. Nothing vanishes
 *   silently: if even the quarantine cannot be written, the record stays and is retried.
 * - Whole-content replacements (WebDAV PUT, Vfs.replaceContent) are staged too (stagedReplace): the
 *   body goes to a fresh stage private to the request (readers keep the old content; an abort leaves
 *   nothing), fsync'd in the background every 64 MiB while it streams in, and journaled at its end
 *   exactly as a last close is, so the PUT is answered at local-disk speed. A new file (not an
 *   exclusive create) is announced to the volume's deferred-create layer instead of getting its
 *   empty object first (src/vfs/deferred-create.ts): this gateway shows it at once, other S3
 *   clients when its upload lands. Its record carries `nw` (mode, owner), and a start-up that
 *   restores the record announces the file again, so an acknowledged new file is never missing on
 *   this gateway while its upload waits (and a crash loses nothing acknowledged: the record makes
 *   the name durable with the content). Without such a layer, or for an exclusive create (the
 *   store checks it), the empty object goes first, and a new file under 1 MiB goes in-band, since
 *   that empty object costs the round trips of its whole upload.
 * - Back-pressure: each pending stage keeps a temp file (and a descriptor). A share holds at most
 *   `maxPendingUploads`; a close beyond that uploads in-band as in sync mode (the client slows down
 *   to the store's pace instead of the gateway's disk and descriptors filling up).
 * - Shutdown (SIGTERM): handles are closed (journaled), then pending uploads get up to
 *   `shutdownDrainMs` (the largest of the shares') to finish; what is left stays in the journal and is
 *   uploaded by the next start. Draining is a courtesy to other S3 clients, not needed for safety.
 * - Start-up: the journal is read before any protocol serves, each record's stage is reopened
 *   (WriteStage.restore, never truncating), stage-directory files no record references are removed,
 *   and the uploads run in the background; meanwhile the files read as their staged content.
 *   Records of a share that is no longer configured are kept untouched (and their files).
 */
import { constants as fsConstants, readFileSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Backend, BackendStat, BackendWriter, FileOwner } from './backend.ts';
import { ENTRY_ERRORS, VfsError, isVfsError, toVfsError, type VfsErrorCode } from './errors.ts';
import { COPY_CHUNK } from './file-copy.ts';
import { isSameOrDescendant } from './path.ts';
import type { FileId } from './types.ts';
import { WriteStage, type StageSnapshot } from './write-stage.ts';
import { deferredCreatesOf } from './deferred-create.ts';
import { backoffCeilingMs } from './backoff.ts';

export const WRITE_BACK_MODES = ['sync', 'async'] as const;
export type WriteBackMode = (typeof WRITE_BACK_MODES)[number];

/** Per-share settings (config: `shares[].writeBack`, documented in config/portico.example.yaml). */
export interface WriteBackOptions {
  mode: WriteBackMode;
  maxConcurrentUploads: number;
  maxPendingUploads: number;
  retryBaseMs: number;
  retryMaxMs: number;
  permanentFailureAttempts: number;
  shutdownDrainMs: number;
  /**
   * How long a file waits after its last journaling before its upload starts (rclone's
   * --vfs-write-back): a file rewritten meanwhile is uploaded once, and a read right after a write
   * does not compete with the upload. A shutdown drain starts every upload at once. 0 = at once.
   */
  uploadDelayMs: number;
  /**
   * true (default): a close is acknowledged once the stage is fsync'd and its journal record
   * fdatasync'd — nothing acknowledged is lost, even to a power cut. false: once both are written
   * (the OS page cache), as `rclone --vfs-cache-mode full` does: a crash of the gateway loses
   * nothing, a crash of the machine may lose what was acknowledged in its last seconds. Records
   * written so carry the boot id; after a reboot (another boot id) their stages cannot be trusted
   * (the page cache may not have reached the disk) and go to lost+found instead of the store, so a
   * torn stage is never uploaded as the file's content.
   */
  fsync: boolean;
}

export const WRITE_BACK_DEFAULTS: WriteBackOptions = {
  mode: 'sync',
  maxConcurrentUploads: 4,
  maxPendingUploads: 1000,
  retryBaseMs: 1000,
  retryMaxMs: 60_000,
  permanentFailureAttempts: 3,
  shutdownDrainMs: 5000,
  uploadDelayMs: 0,
  fsync: true,
};


const WRITE_BACK_METRICS = [
  'portico_writeback_pending_uploads', 'portico_writeback_pending_bytes', 'portico_writeback_uploads_total',
  'portico_writeback_upload_failures_total', 'portico_writeback_quarantined_total',
];

/**
 * Where a new file must get its empty object in the store first (an exclusive create, or a backend
 * without the deferred-create layer), a whole-content replacement (WebDAV PUT) that creates it is
 * staged only from this size (or of unknown size): that empty object costs the same round trips as
 * uploading a small body in-band, so staging it would only add the fsyncs. With the layer (the
 * usual case on object stores) every size is staged (stagedReplace).
 */
const STAGE_NEW_MIN_BYTES = 1024 * 1024;
/**
 * This boot of the machine (Linux: /proc/sys/kernel/random/boot_id). Where it cannot be read, a
 * value no later boot has either: every record of writeBack.fsync: false is then distrusted after
 * any restart of the gateway, not only of the machine (safe, never torn content in the store).
 */
const BOOT_ID = ((): string => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return `pid-${process.pid}-${Date.now()}`;
  }
})();
/** While a staged body streams in, its stage is fsync'd in the background every this many bytes. */
const STAGE_SYNC_EVERY = 64 * 1024 * 1024;
/**
 * Stages up to this size are journaled with their content (PutRecord.data): a 4 KiB PUT on an
 * fsync'd async share cost three syncs in a row (stage, stage directory, journal); inline, one
 * journal fdatasync, shared by the closes that arrive together (group commit).
 */
const INLINE_MAX_BYTES = 64 * 1024;
const JOURNAL_FILE = 'journal.log';
const COMPACT_MIN_BYTES = 1024 * 1024;
/** Zeros written past the journal's records, overwritten by the next appends (see the file comment). */
export const JOURNAL_SLACK = 1024 * 1024;
const JOURNAL_ALIGN = 4096;
const alignUp = (n: number): number => Math.ceil(n / JOURNAL_ALIGN) * JOURNAL_ALIGN;

export interface WriteBackLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const SILENT: WriteBackLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** What the write-back needs from the VFS (kept narrow: no import cycle, easy to test). */
export interface WriteBackHost {
  /** The backend of a configured share, or undefined when the share no longer exists. */
  backendOf(volume: string): Backend | undefined;
  /** The file id of a share path (created in the id store when unknown). */
  fileIdOf(volume: string, path: string): FileId;
}

// ------------------------------------------------------------------------------------------ journal

interface PutRecord {
  t: 'put';
  /** Record key: one per pending stage, kept across re-journaling (a newer put replaces it). */
  k: string;
  vol: string;
  path: string;
  /** File id when journaled (informational: restore takes the id of `path`). */
  fid: string;
  size: number;
  /** Staged mtime (ns, decimal): the time of the close/flush that journaled it. */
  mtime: string;
  /** Stage snapshot, `file` relative to the stage directory (the state dir may move). */
  snap: StageSnapshot;
  /**
   * A new file announced to the deferred-create layer (a staged PUT that created it): not in the
   * store before this upload lands, so a start-up announces it again (mode and owner of the create).
   */
  nw?: CreatedFile;
  /**
   * The stage's whole content (base64) when it is small (INLINE_MAX_BYTES, writeBack.fsync: true):
   * the record's one fdatasync then makes content and record durable together, instead of an fsync
   * of the stage, one of its directory and the journal's, one after the other. Restore writes the
   * stage file from it.
   */
  data?: string;
  /**
   * Set when neither the stage nor this record was fsync'd (writeBack.fsync: false): the boot id
   * they were written under. Only that boot can trust them (see WriteBackOptions.fsync).
   */
  boot?: string;
}

interface DelRecord {
  t: 'del';
  k: string;
}

type JournalRecord = PutRecord | DelRecord;

function isPut(r: unknown): r is PutRecord {
  const o = r as Partial<PutRecord> | null;
  return typeof o === 'object' && o !== null && o.t === 'put' && typeof o.k === 'string' && typeof o.vol === 'string'
    && typeof o.path === 'string' && typeof o.fid === 'string' && typeof o.size === 'number' && typeof o.mtime === 'string'
    && /^\d+$/.test(o.mtime) && typeof o.snap === 'object' && o.snap !== null
    && (o.data === undefined || typeof o.data === 'string')
    && (o.nw === undefined || (typeof o.nw === 'object' && o.nw !== null && Number.isInteger(o.nw.mode)
      && (o.nw.uid === undefined || Number.isInteger(o.nw.uid)) && (o.nw.gid === undefined || Number.isInteger(o.nw.gid))));
}

function isDel(r: unknown): r is DelRecord {
  const o = r as Partial<DelRecord> | null;
  return typeof o === 'object' && o !== null && o.t === 'del' && typeof o.k === 'string';
}

export function encodeRecord(r: JournalRecord): string {
  const json = JSON.stringify(r);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** Parses journal text: live put records in order, and how many lines were torn or corrupt. */
export function parseJournal(text: string): { live: Map<string, PutRecord>; bad: number } {
  const live = new Map<string, PutRecord>();
  let bad = 0;
  // The preallocated tail (zeros not yet overwritten by a record) is not a record.
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0) end--;
  const lines = (end === text.length ? text : text.slice(0, end)).split('\n');
  // The piece after the last newline is a torn append (or empty).
  const tail = lines.pop();
  if (tail !== undefined && tail !== '') bad++;
  for (const line of lines) {
    if (line === '') continue;
    const m = /^([0-9a-f]{8}) (.*)$/.exec(line);
    if (m === null || parseInt(m[1]!, 16) !== crc32(m[2]!)) {
      bad++;
      continue;
    }
    let r: unknown;
    try {
      r = JSON.parse(m[2]!);
    } catch {
      bad++;
      continue;
    }
    if (isPut(r)) {
      // A re-put moves the record to the end (Map order = journal order of the newest record).
      live.delete(r.k);
      live.set(r.k, r);
    } else if (isDel(r)) live.delete(r.k);
    else bad++;
  }
  return { live, bad };
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * The journal. Appends are batched: every record queued while a write + fdatasync runs goes out in
 * the next one (group commit), and each caller's promise resolves only once its record is on disk.
 * Records are written in place over the preallocated zeros (`bytes` is where the next one goes,
 * `allocated` the file's size). A failed write may leave a partial line, so the next batch first
 * rewrites the file from the live records it knows (never appending after garbage). The file is
 * rewritten before its first append in a process too (after load(), or reading what a journal
 * nobody loaded holds: its records are kept), so `bytes` is always known.
 */
class Journal {
  readonly file: string;
  private readonly dir: string;
  private fh: FileHandle | undefined;
  private allocated = 0;
  private readonly live = new Map<string, PutRecord>();
  /** Encoded length of each live record (liveBytes without encoding them again). */
  private readonly liveLen = new Map<string, number>();
  private queue: { rec: JournalRecord; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private running: Promise<void> | undefined;
  private needsRewrite = false;
  private bytes = 0;
  private liveBytes = 0;
  private closed = false;
  /** load() ran: `live` holds what the file held. */
  private loaded = false;

  constructor(dir: string) {
    this.dir = dir;
    this.file = join(dir, JOURNAL_FILE);
  }

  /** Reads the journal (if any) and rewrites it clean. Returns the live records and the bad lines. */
  async load(): Promise<{ live: PutRecord[]; bad: number }> {
    let text = '';
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const { live, bad } = parseJournal(text);
    for (const [k, r] of live) this.live.set(k, r);
    this.loaded = true;
    if (text !== '') await this.rewrite();
    return { live: [...live.values()], bad };
  }

  put(rec: PutRecord): Promise<void> {
    return this.append(rec);
  }

  del(k: string): Promise<void> {
    return this.append({ t: 'del', k });
  }

  /** Whether a record with this key is on disk (its last put written, no del yet). */
  has(k: string): boolean {
    return this.live.has(k);
  }

  private append(rec: JournalRecord): Promise<void> {
    if (this.closed) return Promise.reject(new VfsError('EIO', 'write-back journal is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ rec, resolve, reject });
      this.running ??= this.run().finally(() => {
        this.running = undefined;
      });
    });
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      // Each record is encoded once: its line is written and its length kept for compaction
      // (a small put carries its content, ~5.5 KiB of JSON for 4 KiB: stringify + CRC per call).
      let lines: string[];
      try {
        lines = batch.map((b) => encodeRecord(b.rec));
        const text = lines.join('');
        const len = Buffer.byteLength(text);
        // Past the zeros with mostly dead records: compact now rather than grow (the rewrite
        // preallocates anew; growing first and compacting after the batch wrote zeros twice).
        const compact = this.fh !== undefined && this.bytes + len > this.allocated && this.bytes > COMPACT_MIN_BYTES && this.bytes > 4 * this.liveBytes;
        if (this.needsRewrite || this.fh === undefined || compact) await this.rewrite(this.fh === undefined && !this.loaded);
        const fh = this.fh!;
        // In place over the zeros; past them, the next JOURNAL_SLACK of zeros goes with the records
        // (a size change: this batch's fdatasync is a full commit, once per that many bytes).
        const grow = this.bytes + len > this.allocated ? alignUp(this.bytes + len + JOURNAL_SLACK) : this.allocated;
        const buf = Buffer.alloc(grow > this.allocated ? grow - this.bytes : len);
        buf.write(text, 0, 'utf8');
        const { bytesWritten } = await fh.write(buf, 0, buf.length, this.bytes);
        // A short write (a full disk) leaves a partial record: the batch fails, the next rewrites.
        if (bytesWritten !== buf.length) throw new VfsError('EIO', `write-back journal: short write (${bytesWritten} of ${buf.length} bytes)`);
        this.allocated = grow;
        // Records of writeBack.fsync: false shares alone need no fdatasync (their stages had none
        // either; recovery trusts them only within the same boot). Deletes always get one: a
        // finished upload whose record came back would be uploaded again over newer content.
        if (batch.some((b) => b.rec.t !== 'put' || b.rec.boot === undefined)) await fh.datasync();
        this.bytes += len;
      } catch (e) {
        this.needsRewrite = true;
        for (const b of batch) b.reject(toVfsError(e));
        continue;
      }
      for (let i = 0; i < batch.length; i++) {
        const b = batch[i]!;
        if (b.rec.t === 'put') {
          this.liveBytes -= this.liveLen.get(b.rec.k) ?? 0;
          this.live.set(b.rec.k, b.rec);
          this.liveLen.set(b.rec.k, lines[i]!.length);
          this.liveBytes += lines[i]!.length;
        } else if (this.live.has(b.rec.k)) {
          this.liveBytes -= this.liveLen.get(b.rec.k) ?? 0;
          this.live.delete(b.rec.k);
          this.liveLen.delete(b.rec.k);
        }
        b.resolve();
      }
      if (this.bytes > COMPACT_MIN_BYTES && this.bytes > 4 * this.liveBytes) {
        // Not fatal when it fails: the next batch rewrites first.
        await this.rewrite().catch(() => {
          this.needsRewrite = true;
        });
      }
    }
  }

  /**
   * Writes the live records and JOURNAL_SLACK of zeros to a temp file, fsyncs, renames over the
   * journal, fsyncs the directory, and opens it for the in-place appends. `adopt`: first read what
   * the file holds (a journal this process never loaded), keeping its records.
   */
  private async rewrite(adopt = false): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const old = this.fh;
    this.fh = undefined;
    await old?.close().catch(() => undefined);
    if (adopt) {
      const found = await readFile(this.file, 'utf8').catch(() => '');
      for (const [k, r] of parseJournal(found).live) if (!this.live.has(k)) this.live.set(k, r);
      this.loaded = true;
    }
    const tmp = `${this.file}.tmp`;
    const lines = [...this.live.values()].map(encodeRecord);
    this.liveLen.clear();
    let i = 0;
    for (const k of this.live.keys()) this.liveLen.set(k, lines[i++]!.length);
    const text = lines.join('');
    const len = Buffer.byteLength(text);
    const size = alignUp(len + JOURNAL_SLACK);
    const buf = Buffer.alloc(size);
    buf.write(text, 0, 'utf8');
    const fh = await open(tmp, 'w', 0o600);
    try {
      const { bytesWritten } = await fh.write(buf, 0, size, 0);
      if (bytesWritten !== size) throw new VfsError('EIO', `write-back journal: short write (${bytesWritten} of ${size} bytes)`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    await fsyncDir(this.dir);
    // 'r+': positioned writes (an O_APPEND descriptor would ignore the position on Linux).
    this.fh = await open(this.file, 'r+');
    this.allocated = size;
    this.bytes = len;
    this.liveBytes = this.bytes;
    this.needsRewrite = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------------ entries

/** A journaled stage whose upload has not committed yet. */
/** How a file created by a staged PUT was created (PutRecord.nw). */
export interface CreatedFile {
  mode: number;
  uid?: number;
  gid?: number;
}

interface Entry {
  key: string;
  vol: string;
  fileId: FileId;
  path: string;
  stage: WriteStage;
  mtimeNs: bigint;
  /** mtimeNs in whole milliseconds (when uploadDelayMs counts from). */
  mtimeMs: number;
  /** Bumped by each journaling: an upload that started before a newer one does not end the entry. */
  gen: number;
  /** Failed attempts with a failure about this file (quarantine after permanentFailureAttempts). */
  permanent: number;
  attempts: number;
  lastError: VfsError | undefined;
  inflight: Promise<void> | undefined;
  /** Serialises journaling of this entry (records land in the order they were taken). */
  chain: Promise<void>;
  /** Created by a staged PUT through the deferred-create layer, not uploaded yet (PutRecord.nw). */
  created?: CreatedFile | undefined;
}

interface VolumeState {
  opts: WriteBackOptions;
  active: number;
  /**
   * Pending uploads in order; held and in-flight ones are skipped by pump(). The entry itself is the
   * value: pump() walks every pending upload at each call (one per journaled PUT, finished upload
   * and delay timer), so a scan must cost no Map lookup and no BigInt arithmetic per entry
   * (with ~300 pending 4 KiB PUTs the lookups made pump() about 8% of the gateway's main-thread CPU).
   */
  queue: Map<FileId, Entry>;
  /** Consecutive failed attempts (share-wide backoff). */
  failStreak: number;
  resumeAt: number;
  timer: NodeJS.Timeout | undefined;
  /** The next pump for uploads waiting out uploadDelayMs, and when it is due (epoch ms). */
  delayTimer: NodeJS.Timeout | undefined;
  delayDue: number;
}

export interface WriteBackStats {
  pending: number;
  pendingBytes: number;
  uploads: number;
  failures: number;
  quarantined: number;
}

export interface WriteBackInit {
  /** Journal and lost+found directory. Required for async shares (else they are refused). */
  dir?: string;
  /** Where WriteStage temp files live (Vfs.stageDir). */
  stageDir: string;
  host: WriteBackHost;
  logger?: WriteBackLogger;
  /** Prometheus registry for portico_writeback_* (optional; stats() works without). */
  registry?: Registry;
}

export class WriteBack {
  private readonly dir: string | undefined;
  private readonly stageDir: string;
  private readonly host: WriteBackHost;
  private readonly log: WriteBackLogger;
  private journal: Journal | undefined;
  private readonly entries = new Map<FileId, Entry>();
  /** Holds per file id: writers attached, renames/unlinks in progress. No upload starts while held. */
  private readonly holds = new Map<FileId, number>();
  private readonly vols = new Map<string, VolumeState>();
  /** Stages whose directory entry is known durable. */
  private readonly dirSynced = new WeakSet<WriteStage>();
  /** Records of shares not configured this run: kept in the journal, never touched. */
  private foreign = 0;
  private stopped = false;
  /** drain() ran: uploadDelayMs no longer applies. */
  private draining = false;
  /** recover({ defer: true }) until startUploads(): restored uploads wait for start-up to finish. */
  private deferred = false;
  private readonly counters = new Map<string, { uploads: number; failures: Map<string, number>; quarantined: number }>();
  private readonly promUploads: Counter<'share'> | undefined;
  private readonly promFailures: Counter<'share' | 'code'> | undefined;
  private readonly promQuarantined: Counter<'share'> | undefined;

  constructor(init: WriteBackInit) {
    this.dir = init.dir;
    this.stageDir = init.stageDir;
    this.host = init.host;
    this.log = init.logger ?? SILENT;
    const registers = init.registry ? [init.registry] : undefined;
    if (registers) {
      // A second VFS on the same registry (an in-process restart) takes the names over.
      for (const name of WRITE_BACK_METRICS) init.registry!.removeSingleMetric(name);
      const self = this;
      new Gauge({
        name: 'portico_writeback_pending_uploads',
        help: 'Files closed in async write-back mode whose upload has not committed yet',
        labelNames: ['share'],
        registers,
        collect() {
          this.reset();
          for (const [share, n] of self.perShare()) this.set({ share }, n.count);
        },
      });
      new Gauge({
        name: 'portico_writeback_pending_bytes',
        help: 'Size of the files waiting for their write-back upload',
        labelNames: ['share'],
        registers,
        collect() {
          this.reset();
          for (const [share, n] of self.perShare()) this.set({ share }, n.bytes);
        },
      });
      this.promUploads = new Counter({ name: 'portico_writeback_uploads_total', help: 'Write-back uploads committed', labelNames: ['share'], registers });
      this.promFailures = new Counter({
        name: 'portico_writeback_upload_failures_total',
        help: 'Failed write-back upload attempts, by VfsError code (each is retried or quarantined)',
        labelNames: ['share', 'code'],
        registers,
      });
      this.promQuarantined = new Counter({
        name: 'portico_writeback_quarantined_total',
        help: 'Stages whose upload failed permanently, moved to <stateDir>/writeback/lost+found',
        labelNames: ['share'],
        registers,
      });
    }
  }

  // -------------------------------------------------------------------------------- configuration

  /** Sets a share's options (the VFS calls it from addVolume). */
  configure(volume: string, opts: Partial<WriteBackOptions> = {}): void {
    const o: WriteBackOptions = { ...WRITE_BACK_DEFAULTS, ...opts };
    if (o.mode === 'async' && this.dir === undefined) {
      throw new VfsError('EINVAL', `share ${volume}: writeBack async needs a write-back directory (the gateway's state dir)`);
    }
    const vs = this.vols.get(volume);
    if (vs) vs.opts = o;
    else this.vols.set(volume, { opts: o, active: 0, queue: new Map(), failStreak: 0, resumeAt: 0, timer: undefined, delayTimer: undefined, delayDue: 0 });
  }

  /**
   * Whether opens on this share go through the write-back paths: async mode, or a sync share that
   * still has uploads journaled by an earlier async run (they must be served and finished first).
   */
  active(volume: string): boolean {
    const vs = this.vols.get(volume);
    return vs !== undefined && (vs.opts.mode === 'async' || vs.queue.size > 0);
  }

  has(id: FileId): boolean {
    return this.entries.has(id);
  }

  /** Whether this share's stages and records are fsync'd before a close is acknowledged. */
  fsyncs(volume: string): boolean {
    return this.vols.get(volume)?.opts.fsync ?? true;
  }

  /** The pending stage of a file (shared by new opens), if any. */
  stageOf(id: FileId): WriteStage | undefined {
    return this.entries.get(id)?.stage;
  }

  /** Size and mtime a pending file shows (getattr, readdir) until its upload commits. */
  staged(id: FileId): { size: number; mtimeNs: bigint } | undefined {
    const e = this.entries.get(id);
    return e === undefined ? undefined : { size: e.stage.size, mtimeNs: e.mtimeNs };
  }

  // -------------------------------------------------------------------------------------- holds

  hold(id: FileId): void {
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
  }

  release(id: FileId): void {
    const n = (this.holds.get(id) ?? 0) - 1;
    if (n > 0) this.holds.set(id, n);
    else {
      this.holds.delete(id);
      const e = this.entries.get(id);
      if (e) this.pump(e.vol);
    }
  }

  /** Resolves when no upload attempt of this file is running (attempts are bounded by the backend's timeouts). */
  async idle(id: FileId): Promise<void> {
    for (let e = this.entries.get(id); e?.inflight !== undefined; e = this.entries.get(id)) await e.inflight;
  }

  /** Holds the files and waits for their running attempts; returns the release. */
  async pause(ids: Iterable<FileId>): Promise<() => void> {
    const list = [...ids];
    for (const id of list) this.hold(id);
    try {
      for (const id of list) await this.idle(id);
    } catch (e) {
      for (const id of list) this.release(id);
      throw e;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const id of list) this.release(id);
    };
  }

  /** Pending files of a share at or below a path. */
  idsUnder(volume: string, path: string): FileId[] {
    const out: FileId[] = [];
    for (const e of this.entries.values()) if (e.vol === volume && isSameOrDescendant(e.path, path)) out.push(e.fileId);
    return out;
  }

  // --------------------------------------------------------------------------------- journaling

  /**
   * Makes a stage's content durable on this gateway and queues its upload (last writer close, or
   * flush). Registers the entry synchronously — before the first await — so a concurrent open finds
   * the stage. Rejects (entry not registered, or its previous record still standing) when the
   * journal cannot be written or the share is at maxPendingUploads: the caller then uploads in-band.
   */
  commit(volume: string, id: FileId, path: string, stage: WriteStage, created?: CreatedFile): Promise<void> {
    const vs = this.vols.get(volume);
    if (vs === undefined || this.dir === undefined || this.stopped) return Promise.reject(new VfsError('EIO', 'write-back is not available'));
    let e = this.entries.get(id);
    const isNew = e === undefined || e.stage !== stage;
    if (isNew && e === undefined && vs.queue.size >= vs.opts.maxPendingUploads) {
      return Promise.reject(new VfsError('EAGAIN', `share ${volume}: ${vs.queue.size} uploads pending (maxPendingUploads)`));
    }
    if (e === undefined) {
      e = {
        key: randomBytes(12).toString('hex'), vol: volume, fileId: id, path, stage, mtimeNs: 0n, mtimeMs: 0, gen: 0,
        permanent: 0, attempts: 0, lastError: undefined, inflight: undefined, chain: Promise.resolve(),
      };
      this.entries.set(id, e);
    } else if (e.stage !== stage) {
      // Another stage for the same file (the old one was superseded): the new content wins.
      const old = e.stage;
      e.stage = stage;
      if (old.refs === 0) void old.discard();
    }
    const entry = e;
    entry.path = path;
    if (created !== undefined) entry.created = created;
    entry.mtimeMs = Date.now();
    entry.mtimeNs = BigInt(entry.mtimeMs) * 1_000_000n;
    const gen = ++entry.gen;
    const boot = vs.opts.fsync ? undefined : BOOT_ID;
    const run = entry.chain.then(async () => {
      // Snapshot first, then fsync: every range the snapshot lists was written before the fsync.
      const snap = stage.snapshot();
      let data: string | undefined;
      if ((boot === undefined || stage.inMemoryOnly) && snap.mode === 'whole' && snap.base === null && snap.size <= INLINE_MAX_BYTES) {
        // Small: the content goes into the record (read after the snapshot, as the fsync below
        // covers writes after it too). The stage file itself is not synced: a later record without
        // data (the stage grew) syncs it and, unless done before, its directory entry. A memory
        // stage (a small staged PUT, WriteStage.inMemory) has no file at all: the record is its only
        // copy on disk, on fsync: false shares too (a restore writes the file from the record).
        data = (await stage.read(0, snap.size)).toString('base64');
      } else if (boot !== undefined) {
        // Not synced, but on disk (the page cache) before the record that names the file.
        await stage.persist();
      } else {
        await stage.sync();
        if (!this.dirSynced.has(stage)) {
          await fsyncDir(this.stageDir);
          this.dirSynced.add(stage);
        }
      }
      await this.journalFor().put({
        t: 'put', k: entry.key, vol: volume, path: entry.path, fid: String(id), size: snap.size,
        mtime: String(entry.mtimeNs), snap: { ...snap, file: basename(snap.file), dirty: true },
        ...(boot !== undefined ? { boot } : {}),
        ...(entry.created !== undefined ? { nw: entry.created } : {}),
        ...(data !== undefined ? { data } : {}),
      });
    });
    entry.chain = run.catch(() => undefined);
    return run.then(
      () => {
        if (this.entries.get(id) !== entry) return;
        vs.queue.delete(id);
        vs.queue.set(id, entry);
        this.pump(volume);
      },
      (err: unknown) => {
        // Never journaled (no record on disk): forget it; the caller uploads in-band.
        if (isNew && this.entries.get(id) === entry && entry.gen === gen && !this.journal?.has(entry.key)) {
          this.entries.delete(id);
          vs.queue.delete(id);
        }
        throw toVfsError(err, path);
      },
    );
  }

  /**
   * A writer for a whole-content replacement (Vfs.replaceContent: WebDAV PUT) on an async share:
   * the body goes to a fresh stage on local disk, private until commit (readers keep the old
   * content, an abort leaves nothing). Undefined when the share is not async, or for a small new
   * file (see STAGE_NEW_MIN_BYTES): the caller then streams into the store as in sync mode.
   */
  stagedReplace(volume: string, backend: Backend, path: string, o: StagedReplaceOptions): StagedReplace | undefined {
    const vs = this.vols.get(volume);
    if (vs === undefined || vs.opts.mode !== 'async' || this.dir === undefined || this.stopped) return undefined;
    // A new file needs its empty object first unless the deferred-create layer can show it (see the
    // file comment): then small ones are staged too, answered without a request to the store.
    const deferrable = !o.exclusive && deferredCreatesOf(backend) !== undefined;
    if (o.existing === undefined && !deferrable && o.sizeHint !== undefined && o.sizeHint < STAGE_NEW_MIN_BYTES) return undefined;
    // A body that may be small starts in memory (journaled with its content, uploaded from memory);
    // one declared larger goes to its temp file from the first byte.
    const stage = o.sizeHint === undefined || o.sizeHint <= INLINE_MAX_BYTES
      ? WriteStage.inMemory(this.stageDir, backend, path, INLINE_MAX_BYTES)
      : new WriteStage(this.stageDir, backend, path, true);
    return new StagedReplace(this, volume, stage, backend, o);
  }

  private journalFor(): Journal {
    this.journal ??= new Journal(this.dir!);
    return this.journal;
  }

  /**
   * Drops a file's pending upload (unlinked, overwritten, replaced by a rename): durably, then its
   * stage is removed unless handles still read it. Waits for a running attempt first.
   */
  async cancel(id: FileId): Promise<void> {
    const e = this.entries.get(id);
    if (e === undefined) return;
    const release = await this.pause([id]);
    try {
      if (this.entries.get(id) !== e) return;
      this.forget(e);
      await this.journal?.del(e.key).catch((err: unknown) => this.log.warn({ err, share: e.vol, path: e.path }, 'write-back: could not journal a cancelled upload (it is dropped at the next start)'));
      if (e.stage.refs === 0) await e.stage.discard();
    } finally {
      release();
    }
  }

  /** After a rename: pending uploads at or below `from` go to the new path (re-journaled durably). */
  async moved(volume: string, from: string, to: string): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const e of this.entries.values()) {
      if (e.vol !== volume || !isSameOrDescendant(e.path, from)) continue;
      const p = to + e.path.slice(from.length);
      e.stage.path = p;
      jobs.push(this.commit(volume, e.fileId, p, e.stage).catch((err: unknown) => {
        // The old record still names the old path: after a crash the upload would go there. Logged;
        // this run uploads to the new path regardless.
        this.log.error({ err, share: volume, path: p }, 'write-back: could not journal a rename of a pending upload');
      }));
    }
    await Promise.all(jobs);
  }

  /**
   * After an exchange of two names (neither inside the other): pending uploads at or below `a` go
   * to the same place below `b` and the other way round, re-journaled durably as moved() does.
   */
  async exchanged(volume: string, a: string, b: string): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const e of [...this.entries.values()]) {
      if (e.vol !== volume) continue;
      const from = isSameOrDescendant(e.path, a) ? a : isSameOrDescendant(e.path, b) ? b : undefined;
      if (from === undefined) continue;
      const p = (from === a ? b : a) + e.path.slice(from.length);
      e.stage.path = p;
      jobs.push(this.commit(volume, e.fileId, p, e.stage).catch((err: unknown) => {
        this.log.error({ err, share: volume, path: p }, 'write-back: could not journal an exchange of a pending upload');
      }));
    }
    await Promise.all(jobs);
  }

  /**
   * Uploads a pending file now and waits (setattr, copy of a pending file). A file held by a writer
   * is left alone (its stage is live, as in sync mode). Rejects with the attempt's error.
   */
  async uploadNow(id: FileId): Promise<void> {
    let e = this.entries.get(id);
    if (e === undefined || (this.holds.get(id) ?? 0) > 0) return;
    if (e.inflight !== undefined) {
      // A running attempt may have started before the latest journaling: wait, then go again.
      await e.inflight;
      e = this.entries.get(id);
      if (e === undefined || (this.holds.get(id) ?? 0) > 0) return;
    }
    if (e.inflight === undefined) this.start(e);
    await e.inflight;
    if (this.entries.get(id) === e && e.lastError !== undefined) {
      throw new VfsError(e.lastError.code, `pending upload failed: ${e.lastError.message}`, { path: e.path });
    }
  }

  // ---------------------------------------------------------------------------------- scheduling

  private pump(volume: string): void {
    const vs = this.vols.get(volume);
    if (vs === undefined || this.stopped || this.deferred) return;
    const now = Date.now();
    if (vs.resumeAt > now) {
      if (vs.timer === undefined) {
        vs.timer = setTimeout(() => {
          vs.timer = undefined;
          this.pump(volume);
        }, vs.resumeAt - now);
        vs.timer.unref();
      }
      return;
    }
    if (vs.active >= vs.opts.maxConcurrentUploads) return;
    const delay = this.draining ? 0 : vs.opts.uploadDelayMs;
    let wake = Infinity;
    const held = this.holds.size > 0;
    for (const e of vs.queue.values()) {
      if (vs.active >= vs.opts.maxConcurrentUploads) break;
      if (e.inflight !== undefined || (held && (this.holds.get(e.fileId) ?? 0) > 0)) continue;
      if (delay > 0) {
        const due = e.mtimeMs + delay;
        if (due > now) {
          wake = Math.min(wake, due);
          continue;
        }
      }
      this.start(e);
    }
    if (wake !== Infinity && (vs.delayTimer === undefined || wake < vs.delayDue)) {
      if (vs.delayTimer) clearTimeout(vs.delayTimer);
      vs.delayDue = wake;
      vs.delayTimer = setTimeout(() => {
        vs.delayTimer = undefined;
        this.pump(volume);
      }, wake - now);
      vs.delayTimer.unref();
    }
  }

  private start(e: Entry): void {
    const vs = this.vols.get(e.vol)!;
    vs.active++;
    const gen = e.gen;
    const attempt = (async (): Promise<void> => {
      // The journal write of this generation must be on disk before the upload may end the entry.
      await e.chain;
      try {
        await e.stage.publish();
      } catch (err) {
        // A quarantine runs inside the attempt, so pump() never starts another one meanwhile.
        await this.failed(e, toVfsError(err, e.path));
        return;
      }
      await this.succeeded(e, gen);
    })();
    e.inflight = attempt.catch((err: unknown) => this.log.error({ err, share: e.vol, path: e.path }, 'write-back: upload bookkeeping failed')).finally(() => {
      e.inflight = undefined;
      vs.active--;
      this.pump(e.vol);
    });
  }

  private async succeeded(e: Entry, gen: number): Promise<void> {
    const vs = this.vols.get(e.vol)!;
    vs.failStreak = 0;
    vs.resumeAt = 0;
    e.lastError = undefined;
    this.count(e.vol).uploads++;
    this.promUploads?.inc({ share: e.vol });
    if (this.entries.get(e.fileId) !== e) return;
    if (e.gen !== gen || e.stage.dirty) {
      // Journaled again (or changed) while uploading: the newer content goes up next.
      vs.queue.delete(e.fileId);
      vs.queue.set(e.fileId, e);
      return;
    }
    this.forget(e);
    // Decided now: a reader that attaches after this point no longer finds the stage here.
    const discard = e.stage.refs === 0;
    try {
      await this.journal!.del(e.key);
    } catch (err) {
      // The record stays: the next start uploads the same bytes again (idempotent). Keep the file.
      // (After close() at shutdown this is expected: an attempt outlived the drain.)
      if (!this.stopped) this.log.warn({ err, share: e.vol, path: e.path }, 'write-back: upload committed but the journal could not record it');
      return;
    }
    if (discard) await e.stage.discard();
  }

  private async failed(e: Entry, err: VfsError): Promise<void> {
    const vs = this.vols.get(e.vol)!;
    e.lastError = err;
    e.attempts++;
    const c = this.count(e.vol);
    c.failures.set(err.code, (c.failures.get(err.code) ?? 0) + 1);
    this.promFailures?.inc({ share: e.vol, code: err.code });
    if (this.stopped || this.entries.get(e.fileId) !== e) return;
    // Failures about this one file (errors.ts ENTRY_ERRORS): retried a few times, then quarantined.
    if (ENTRY_ERRORS.has(err.code) && ++e.permanent >= vs.opts.permanentFailureAttempts) {
      await this.quarantine(e, err);
      return;
    }
    vs.failStreak++;
    const cap = backoffCeilingMs(vs.failStreak - 1, vs.opts.retryBaseMs, vs.opts.retryMaxMs);
    vs.resumeAt = Date.now() + Math.round(cap / 2 + (Math.random() * cap) / 2);
    vs.queue.delete(e.fileId);
    vs.queue.set(e.fileId, e);
    // First failures, then every tenth: a dead store must not flood the log.
    if (e.attempts <= 3 || e.attempts % 10 === 0) {
      this.log.warn({ share: e.vol, path: e.path, code: err.code, err: err.message, attempts: e.attempts }, 'write-back: upload failed; will retry');
    }
  }

  private forget(e: Entry): void {
    this.entries.delete(e.fileId);
    this.vols.get(e.vol)?.queue.delete(e.fileId);
  }

  /**
   * Moves a stage that cannot be uploaded to lost+found (content, or raw temp file, plus a JSON
   * description), then drops its record. If that fails the entry stays and is retried later.
   */
  private async quarantine(e: Entry, err: VfsError): Promise<void> {
    const vs = this.vols.get(e.vol)!;
    const dir = join(this.dir!, 'lost+found', safeName(e.vol));
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${e.fileId}-${safeName(baseNameOf(e.path))}`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      let saved: 'content' | 'raw-stage' | 'nothing' = 'content';
      let saveError: string | undefined;
      try {
        await materialize(e.stage, join(dir, name));
      } catch (x) {
        saveError = toVfsError(x).message;
        await rm(join(dir, name), { force: true });
        const snap = e.stage.snapshot();
        try {
          await copyFile(resolve(this.stageDir, snap.file), join(dir, `${name}.stage`));
          await syncFile(join(dir, `${name}.stage`));
          saved = 'raw-stage';
        } catch {
          saved = 'nothing';
        }
      }
      const info = {
        share: e.vol, path: e.path, fileId: String(e.fileId), size: e.stage.size, mtimeNs: String(e.mtimeNs),
        error: { code: err.code, message: err.message }, attempts: e.attempts, quarantinedAt: new Date().toISOString(),
        saved, saveError, snapshot: e.stage.snapshot(),
      };
      const fh = await open(join(dir, `${name}.json`), 'w', 0o600);
      try {
        await fh.write(`${JSON.stringify(info, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsyncDir(dir);
      if (this.entries.get(e.fileId) !== e) return;
      this.forget(e);
      await this.journal!.del(e.key).catch(() => undefined);
      if (e.stage.refs === 0) await e.stage.discard();
      this.count(e.vol).quarantined++;
      this.promQuarantined?.inc({ share: e.vol });
      this.log.error({ share: e.vol, path: e.path, code: err.code, err: err.message, saved, lostFound: join(dir, name) },
        'write-back: upload failed permanently; staged content moved to lost+found');
    } catch (x) {
      this.log.error({ err: x, share: e.vol, path: e.path }, 'write-back: could not quarantine a failed upload; keeping it pending');
      vs.failStreak++;
      vs.resumeAt = Date.now() + vs.opts.retryMaxMs;
      e.permanent = 0;
      this.pump(e.vol);
    }
  }

  // ------------------------------------------------------------------------------ start and stop

  /**
   * Start-up: reads the journal, removes stage files no record references, reopens every recorded
   * stage and queues its upload. Call after every share is configured, before serving. Returns the
   * number of restored uploads. With `defer`, no upload starts before startUploads(): the gateway
   * first resumes interrupted directory moves, which hold the uploads below them (an upload must
   * not land under a tree's old name while it moves).
   */
  async recover(options: { defer?: boolean } = {}): Promise<number> {
    if (options.defer === true) this.deferred = true;
    if (this.dir === undefined) {
      await rm(this.stageDir, { recursive: true, force: true });
      return 0;
    }
    const exists = await stat(join(this.dir, JOURNAL_FILE)).then(() => true, () => false);
    const { live, bad } = exists ? await this.journalFor().load() : { live: [] as PutRecord[], bad: 0 };
    if (bad > 0) this.log.warn({ lines: bad }, 'write-back journal: skipped torn or corrupt records (never acknowledged)');
    const keep = new Set(live.map((r) => resolve(this.stageDir, basename(r.snap.file))));
    const names = await readdir(this.stageDir).catch(() => [] as string[]);
    for (const n of names) {
      const p = resolve(this.stageDir, n);
      if (!keep.has(p)) await rm(p, { recursive: true, force: true });
    }
    let restored = 0;
    for (const r of live) {
      const backend = this.host.backendOf(r.vol);
      if (backend === undefined) {
        this.foreign++;
        this.log.warn({ share: r.vol, path: r.path }, 'write-back: pending upload of a share that is not configured; kept for a later start');
        continue;
      }
      if (!this.vols.has(r.vol)) this.configure(r.vol, { mode: 'sync' });
      const file = resolve(this.stageDir, basename(r.snap.file));
      let stage: WriteStage;
      let id: FileId;
      try {
        // Inline content (PutRecord.data): the record is the durable copy; the file may be torn or
        // missing after a machine crash.
        // A memory stage (WriteStage.inMemory) never had a file, maybe not even the directory.
        if (r.data !== undefined) {
          await mkdir(this.stageDir, { recursive: true, mode: 0o700 });
          await writeFile(file, Buffer.from(r.data, 'base64'), { mode: 0o600 });
        }
        await stat(file);
        stage = WriteStage.restore(this.stageDir, backend, r.path, { ...r.snap, file });
        // Journaled stages are dirty by definition (the snapshot may predate a flag change).
        stage.dirty = true;
        id = this.host.fileIdOf(r.vol, r.path);
      } catch (err) {
        this.count(r.vol).failures.set('ENOENT', (this.count(r.vol).failures.get('ENOENT') ?? 0) + 1);
        this.log.error({ err, share: r.vol, path: r.path, file }, 'write-back: a journaled stage cannot be restored (its temp file is gone); dropping the record');
        await this.journal!.del(r.k).catch(() => undefined);
        continue;
      }
      const prev = this.entries.get(id);
      if (r.boot !== undefined && r.boot !== BOOT_ID) {
        // Written without fsync under another boot: the machine restarted, and the page cache
        // may not have reached the disk. Never uploaded as the file's content; kept aside.
        const lost: Entry = {
          key: r.k, vol: r.vol, fileId: id, path: r.path, stage, mtimeNs: BigInt(r.mtime), mtimeMs: Number(BigInt(r.mtime) / 1_000_000n), gen: 1,
          permanent: 0, attempts: 0, lastError: undefined, inflight: undefined, chain: Promise.resolve(),
        };
        this.entries.set(id, lost);
        await this.quarantine(lost, new VfsError('EIO', 'the machine restarted before this write-back stage was on disk (writeBack.fsync: false): it may be torn, so it is not uploaded'));
        continue;
      }
      if (prev !== undefined) {
        // Two records for one file: the later one (journal order) is the newer close.
        this.forget(prev);
        await this.journal!.del(prev.key).catch(() => undefined);
        await prev.stage.discard();
      }
      const e: Entry = {
        key: r.k, vol: r.vol, fileId: id, path: r.path, stage, mtimeNs: BigInt(r.mtime), mtimeMs: Number(BigInt(r.mtime) / 1_000_000n), gen: 1,
        permanent: 0, attempts: 0, lastError: undefined, inflight: undefined, chain: Promise.resolve(),
      };
      // A stage written from inline data is not known durable: a later, larger record syncs it first.
      if (r.data === undefined) this.dirSynced.add(stage);
      this.entries.set(id, e);
      this.vols.get(r.vol)!.queue.set(id, e);
      restored++;
      if (r.nw !== undefined) {
        // A new file whose upload has not landed: shown on this gateway again until it does (a name
        // found in the store meanwhile is left to the store; the upload replaces its content).
        e.created = r.nw;
        const owner = r.nw.uid !== undefined && r.nw.gid !== undefined ? { uid: r.nw.uid, gid: r.nw.gid } : undefined;
        await deferredCreatesOf(backend)?.create(r.path, r.nw.mode, false, owner).catch((err: unknown) => {
          this.log.warn({ err, share: r.vol, path: r.path }, 'write-back: a new file waiting for its upload cannot be shown before the upload lands');
        });
      }
    }
    for (const v of this.vols.keys()) this.pump(v);
    if (restored > 0) this.log.info({ uploads: restored }, 'write-back: resuming uploads journaled before the last stop');
    return restored;
  }

  /** Lets uploads run after recover({ defer: true }). */
  startUploads(): void {
    this.deferred = false;
    for (const v of this.vols.keys()) this.pump(v);
  }

  /** Waits until no upload is pending or `ms` passed; returns how many are still pending. */
  async drain(ms?: number): Promise<number> {
    const limit = ms ?? Math.max(0, ...[...this.vols.values()].map((v) => v.opts.shutdownDrainMs));
    // Going down: uploads waiting out uploadDelayMs start now.
    this.draining = true;
    for (const v of this.vols.keys()) this.pump(v);
    const deadline = Date.now() + limit;
    while (this.entries.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
    return this.entries.size;
  }

  /**
   * Stops uploading (attempts still running finish or fail on their own; their records stay if
   * they cannot be ended) and closes the journal. Pending records are kept for the next start.
   */
  async close(): Promise<void> {
    this.stopped = true;
    for (const vs of this.vols.values()) {
      if (vs.timer) clearTimeout(vs.timer);
      if (vs.delayTimer) clearTimeout(vs.delayTimer);
      vs.timer = vs.delayTimer = undefined;
    }
    if (this.entries.size > 0) {
      this.log.info({ uploads: this.entries.size }, 'write-back: uploads still pending at shutdown stay journaled for the next start');
    }
    await this.journal?.close();
  }

  logWarn(obj: object, msg: string): void {
    this.log.warn(obj, msg);
  }

  // -------------------------------------------------------------------------------------- stats

  private count(vol: string): { uploads: number; failures: Map<string, number>; quarantined: number } {
    let c = this.counters.get(vol);
    if (!c) this.counters.set(vol, (c = { uploads: 0, failures: new Map(), quarantined: 0 }));
    return c;
  }

  private perShare(): Map<string, { count: number; bytes: number }> {
    const out = new Map<string, { count: number; bytes: number }>();
    for (const v of this.vols.keys()) out.set(v, { count: 0, bytes: 0 });
    for (const e of this.entries.values()) {
      const s = out.get(e.vol) ?? { count: 0, bytes: 0 };
      s.count++;
      s.bytes += e.stage.size;
      out.set(e.vol, s);
    }
    return out;
  }

  /** Counters for tests and the admin view (one share, or all). */
  stats(volume?: string): WriteBackStats {
    let pending = 0;
    let pendingBytes = 0;
    for (const e of this.entries.values()) {
      if (volume !== undefined && e.vol !== volume) continue;
      pending++;
      pendingBytes += e.stage.size;
    }
    let uploads = 0;
    let failures = 0;
    let quarantined = 0;
    for (const [v, c] of this.counters) {
      if (volume !== undefined && v !== volume) continue;
      uploads += c.uploads;
      quarantined += c.quarantined;
      for (const n of c.failures.values()) failures += n;
    }
    return { pending, pendingBytes, uploads, failures, quarantined };
  }

  /** Pending uploads (share, path), for tests and diagnostics. */
  pendingPaths(): { share: string; path: string }[] {
    return [...this.entries.values()].map((e) => ({ share: e.vol, path: e.path }));
  }

  /** Journal records of shares not configured this run. */
  get foreignRecords(): number {
    return this.foreign;
  }
}

/** Writes a stage's content to `file` (fsync'd). Reads the base for sparse stages: may fail ESTALE. */
async function materialize(stage: WriteStage, file: string): Promise<void> {
  const fh = await open(file, 'w', 0o600);
  try {
    for (let off = 0; off < stage.size;) {
      const buf = await stage.read(off, Math.min(COPY_CHUNK, stage.size - off));
      if (buf.length === 0) throw new VfsError('EIO', 'stage shorter than its size');
      let done = 0;
      while (done < buf.length) done += (await fh.write(buf, done, buf.length - done, off + done)).bytesWritten;
      off += buf.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncFile(file: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function baseNameOf(path: string): string {
  const i = path.lastIndexOf('/');
  return path.slice(i + 1) || 'root';
}

/** A file-name-safe rendering of a name (lost+found entries are read by people). */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || '_';
}

export interface StagedReplaceOptions {
  /** The file's stat when it exists (replaced), undefined when the replacement creates it. */
  existing: BackendStat | undefined;
  sizeHint: number | undefined;
  exclusive: boolean;
  mode: number;
  /** Owner of the file when the replacement creates it (backend.ts FileOwner). */
  owner?: FileOwner | undefined;
}

/**
 * The writer of WriteBack.stagedReplace(): the acknowledgement of a PUT at local-disk speed, as a
 * close is in async mode. write()/writev() go to the stage (fsync'd in the background every
 * STAGE_SYNC_EVERY bytes, so the last fsync has little left to write); commit() only makes a new
 * file exist: announced to the deferred-create layer, or (exclusive creates, checked by the store,
 * and backends without the layer) as its empty object; journal(id) then makes the stage the file's pending upload exactly as a last close
 * does (fsync, journal record; WriteBack.commit) — once the VFS knows the file's id. When it cannot
 * be journaled (maxPendingUploads, journal unwritable) the stage is uploaded in-band.
 */
export class StagedReplace implements BackendWriter {
  private readonly wb: WriteBack;
  private readonly volume: string;
  private readonly stage: WriteStage;
  private readonly backend: Backend;
  private readonly o: StagedReplaceOptions;
  private size = 0;
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  private stat: BackendStat | undefined;
  /** Set when commit() announced a new file to the deferred-create layer. */
  private created: CreatedFile | undefined;
  private settled = false;

  constructor(wb: WriteBack, volume: string, stage: WriteStage, backend: Backend, o: StagedReplaceOptions) {
    this.wb = wb;
    this.volume = volume;
    this.stage = stage;
    this.backend = backend;
    this.o = o;
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.writev([chunk]);
  }

  async writev(chunks: readonly Uint8Array[]): Promise<void> {
    if (this.settled) throw new VfsError('EBADF', 'writer already committed or aborted', { path: this.stage.path });
    const n = await this.stage.writev(this.size, chunks);
    this.size += n;
    this.unsynced += n;
    if (this.unsynced >= STAGE_SYNC_EVERY && this.syncing === undefined && this.wb.fsyncs(this.volume)) {
      this.unsynced = 0;
      // One at a time, off the request's path; a failure shows again in the final fsync.
      this.syncing = this.stage.sync().catch(() => undefined).finally(() => {
        this.syncing = undefined;
      });
    }
  }

  /** The file exists in the store (a new one as its empty object); the content is not journaled yet. */
  async commit(): Promise<BackendStat> {
    if (this.settled) throw new VfsError('EBADF', 'writer already committed or aborted', { path: this.stage.path });
    this.settled = true;
    try {
      if (this.o.existing !== undefined) this.stat = this.o.existing;
      else {
        // Announced, not uploaded (see stagedReplace): no request to the store before the answer.
        const deferred = this.o.exclusive ? undefined : deferredCreatesOf(this.backend);
        const st = await deferred?.create(this.stage.path, this.o.mode, false, this.o.owner);
        if (st !== undefined) {
          this.stat = st;
          this.created = { mode: this.o.mode, ...(this.o.owner ? { uid: this.o.owner.uid, gid: this.o.owner.gid } : {}) };
        } else {
          const w = await this.backend.createWriter(this.stage.path, { exclusive: this.o.exclusive, mode: this.o.mode, sizeHint: 0, ...(this.o.owner ? { owner: this.o.owner } : {}) });
          this.stat = await w.commit();
        }
      }
      await this.syncing;
      return this.stat;
    } catch (e) {
      await this.stage.discard();
      throw e;
    }
  }

  /**
   * After commit(), with the file's id: the stage becomes its pending upload (durable here when
   * this resolves), or is uploaded in-band when it cannot be journaled. Returns the stat to report
   * (the VFS overlays the staged size and mtime of a pending file).
   */
  async journal(id: FileId): Promise<BackendStat> {
    const stat = this.stat;
    if (stat === undefined) throw new VfsError('EINVAL', 'journal() before commit()', { path: this.stage.path });
    try {
      await this.wb.commit(this.volume, id, this.stage.path, this.stage, this.created);
      return stat;
    } catch (e) {
      if (!isVfsError(e, 'EAGAIN')) this.wb.logWarn({ err: e, share: this.volume, path: this.stage.path }, 'write-back: could not journal a PUT; uploading in-band');
      try {
        return (await this.stage.publish()) ?? stat;
      } finally {
        if (!this.wb.has(id) || this.wb.stageOf(id) !== this.stage) await this.stage.discard();
      }
    }
  }

  async abort(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await this.syncing;
    await this.stage.discard();
  }
}
