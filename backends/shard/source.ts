/**
 * What `portico shard pack` packs FROM: a local directory tree, or every object under an S3 prefix.
 * The packer (pack.ts) needs three things of a source: a walk (every entry's path, type, size,
 * mode and mtime, which the incremental plan compares with the set's index), a whole read of a small
 * file, and a streamed read of a large one (over WHOLE_MAX_BYTES, a chunked payload).
 *
 * Memory. A walk holds one small record per entry (path, sizes, times: ~150-250 bytes), never an
 * object's bytes: the plan sorts and cuts every entry into shards before the first byte is read,
 * and compares them with the set's current index, which the pack holds too. Bytes are in memory
 * only inside the packer's read-ahead window (pack.ts: a count and a byte bound). The S3 walk
 * handles one ListObjectsV2 page (1,000 keys) at a time.
 *
 * S3 (S3PrefixSource). Everything goes through an S3Backend built from the same options as an S3
 * share or an S3 DEST (parseS3Source: s3.* options, AWS_* environment, --s3-endpoint): its transport
 * gives the retries, circuit breaker, request metrics and credentials. The walk is one flat
 * ListObjectsV2 of the prefix (no delimiter: 1,000 keys per request whatever the tree's shape,
 * instead of one request per directory), and takes size and mtime (LastModified) from the listing:
 * an incremental pack of an unchanged million-object source costs 1,000 LIST requests, no HEAD and
 * no GET. Consequences, decided here:
 * - mtime is LastModified, not the x-amz-meta-mtime that Portico's S3 backend, s3fs or rclone may
 *   have set: that needs a HEAD per object. LastModified changes with every write of the object,
 *   which is what the incremental plan needs; a rewrite with the same size within the same
 *   LastModified (S3 keeps whole seconds) is missed, as a local rewrite within one mtime tick is.
 * - mode is the share default (defaultFileMode 0644, defaultDirMode 0755; options as for a share),
 *   not x-amz-meta-mode, for the same reason.
 * - directories: "a/" marker objects (zero-byte keys ending in '/') and the prefixes of keys (implied
 *   directories), as the S3 backend serves them. A marker's mtime is its LastModified; an implied
 *   directory has none and gets 0 (the epoch): a constant, so re-packs do not rewrite every
 *   directory entry. A marker with bytes is still a directory (its bytes are not served by the S3
 *   backend either); an empty marker directory is packed as an empty directory.
 * - each read is pinned to the ETag of the listing: an object replaced between the listing and its
 *   GET fails that GET (ESTALE here), and the packer skips it with a warning: the set keeps the
 *   previous version (or none), and the next pack takes the new one. One that was deleted meanwhile
 *   (404) is skipped as a vanished local file is. An empty object is never fetched.
 * - names: each key segment goes through normalizeName as a local name does; a key Portico cannot
 *   serve (an empty segment as in "a//b", ".", "..", a control character or backslash, a segment
 *   over 255 bytes) is skipped and reported. Keys are NFC-normalised; when two keys are the same in
 *   NFC, the one whose last name is already NFC wins (as for names of a local directory). A key that is a file and also the prefix of
 *   other keys ("a" and "a/b") is served as the directory: the file is skipped and reported.
 * - a DEST under the source prefix (same bucket) is left out of the walk (`exclude`), so a set
 *   never packs its own shards.
 * - a prefix with no objects at all is an error (ENOENT), as a missing local directory is: packed
 *   into an existing set, an empty listing would tombstone every file (a mistyped prefix).
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { VfsError } from '../../src/vfs/errors.ts';
import { normalizeName } from '../../src/vfs/path.ts';
import { parseS3Source } from '../s3/config.ts';
import { dateNs } from '../s3/keys.ts';
import { S3Backend } from '../s3/s3-backend.ts';
import { EtagChangedError, isNotFound } from '../s3/transport.ts';

export interface SourceEntry {
  /** Share path (NFC), '/a/b'. */
  path: string;
  type: 'file' | 'dir';
  size: number;
  mode: number;
  mtimeNs: bigint;
  /** Where it is in the source: a filesystem path, or an object key. */
  file: string;
  /** The object's ETag (S3): its reads are pinned to it, and it is part of the plan's identity. */
  etag?: string;
}

export interface PackSource {
  /** For messages: the directory or s3:// URL. */
  readonly label: string;
  /** Whole reads the packer keeps in flight at most (small objects on S3 are latency-bound: many at once). */
  readonly readAhead?: number;
  /** Every entry (any order), and how many were skipped (reported through `warn`). */
  walk(warn: (m: string) => void): Promise<{ entries: SourceEntry[]; skipped: number }>;
  /**
   * The bytes of a small file (at most WHOLE_MAX_BYTES). Absent: a worker thread reads `file`
   * itself (a local file; its bytes never cross threads). Vanished: an error with code ENOENT;
   * replaced since the walk: code ESTALE.
   */
  read?(e: SourceEntry): Promise<Buffer>;
  /** A large file's bytes in order (same errors, before the first piece). */
  stream(e: SourceEntry): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/** A local directory tree (lstat per entry; symlinks and special files are skipped). */
export class LocalSource implements PackSource {
  readonly label: string;
  private readonly root: string;
  constructor(root: string) {
    this.root = root;
    this.label = root;
  }

  /** The tree under the root as share paths (NFC names as Portico serves them). */
  async walk(warn: (m: string) => void): Promise<{ entries: SourceEntry[]; skipped: number }> {
    const entries: SourceEntry[] = [];
    let skipped = 0;
    const stack: [string, string][] = [[this.root, '']];
    while (stack.length > 0) {
      const [dir, share] = stack.pop() as [string, string];
      const names = await readdir(dir, { withFileTypes: true });
      // A name stored in another normal form (NFD, as macOS writes them) is packed under its NFC
      // spelling, the one Portico serves and clients address (the VFS resolves NFD requests to it):
      // skipping it would lose the file. Two names of one directory that are the same in NFC cannot
      // both be served: the NFC spelling wins (or the first in readdir order), the other is skipped.
      const taken = new Set(names.map((d) => d.name).filter((n) => n.normalize('NFC') === n));
      for (const d of names) {
        let name: string;
        try {
          name = normalizeName(d.name);
        } catch {
          name = '';
        }
        const file = join(dir, d.name);
        if (name === '' || (name !== d.name && taken.has(name))) {
          warn(`skipped ${file}: ${name === '' ? 'a name Portico cannot serve' : 'its NFC spelling names another file of the directory'}`);
          skipped++;
          continue;
        }
        taken.add(name);
        const st = await lstat(file, { bigint: true });
        const path = `${share}/${name}`;
        if (st.isDirectory()) {
          entries.push({ path, type: 'dir', size: 0, mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs, file });
          stack.push([file, path]);
        } else if (st.isFile()) {
          entries.push({ path, type: 'file', size: Number(st.size), mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs, file });
        } else {
          warn(`skipped ${file}: ${st.isSymbolicLink() ? 'symbolic links are' : 'special files are'} not stored in shards`);
          skipped++;
        }
      }
    }
    return { entries, skipped };
  }

  stream(e: SourceEntry): AsyncIterable<Uint8Array> {
    return createReadStream(e.file, { highWaterMark: 1024 * 1024 });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Default whole-object GETs in flight (--read-concurrency): small objects are bound by request latency. */
export const S3_READ_AHEAD = 32;
/** Bytes per ranged GET of a large object's stream. */
const STREAM_PIECE = 8 * 1024 * 1024;

/** Every object under an S3 prefix (header: listing, names, times, ETag pinning). */
export class S3PrefixSource implements PackSource {
  readonly label: string;
  readonly readAhead: number;
  readonly s3: S3Backend;
  private readonly fileMode: number;
  private readonly dirMode: number;
  private readonly exclude: string | undefined;

  /**
   * `location`: s3://bucket/prefix; `options`: as for an S3 share (endpoint, credentials, retries...).
   * `exclude`: a key prefix left out of the walk (a DEST inside the source prefix).
   */
  constructor(location: string, options: Record<string, unknown> = {}, o: { readAhead?: number; exclude?: string } = {}) {
    const p = parseS3Source(location, options);
    this.s3 = new S3Backend({ ...p, metricsLabel: `shard-source+${location}` });
    this.label = location;
    this.readAhead = o.readAhead ?? S3_READ_AHEAD;
    this.fileMode = p.defaultFileMode ?? 0o644;
    this.dirMode = p.defaultDirMode ?? 0o755;
    this.exclude = o.exclude;
  }

  /** The bucket of the source and its key prefix ('' or ending in '/'). */
  get where(): { bucket: string; prefix: string } {
    return { bucket: this.s3.transport.bucket, prefix: this.s3.keys.prefix };
  }

  async walk(warn: (m: string) => void): Promise<{ entries: SourceEntry[]; skipped: number }> {
    const prefix = this.s3.keys.prefix;
    const at = (key: string): string => `s3://${this.s3.transport.bucket}/${key}`;
    // path -> entry; a Map because a later key can change an earlier decision (a file that turns out
    // to be a directory, an NFD key whose NFC twin comes later).
    const byPath = new Map<string, SourceEntry>();
    let skipped = 0;
    let excluded = 0;
    let listed = 0;
    const skip = (key: string, why: string): void => {
      warn(`skipped ${at(key)}: ${why}`);
      skipped++;
    };
    const addDir = (path: string, key: string, mtimeNs: bigint): void => {
      const had = byPath.get(path);
      if (had?.type === 'file') {
        skip(had.file, 'a file of that name is also a directory (keys below it): the directory is packed');
        byPath.delete(path);
      } else if (had !== undefined) {
        // Implied first, marker now (cannot happen in key order: "a/" sorts before "a/b"), or a twin.
        if (mtimeNs !== 0n && had.mtimeNs === 0n) had.mtimeNs = mtimeNs;
        return;
      }
      byPath.set(path, { path, type: 'dir', size: 0, mode: this.dirMode, mtimeNs, file: key });
    };
    let token: string | undefined;
    for (let pages = 0; ; pages++) {
      const page = await this.s3.transport.list(prefix, { token, maxKeys: 1000 }, '/');
      listed += page.keys.length;
      for (const k of page.keys) {
        if (this.exclude !== undefined && k.key.startsWith(this.exclude)) {
          excluded++;
          continue;
        }
        const rest = k.key.slice(prefix.length);
        if (rest === '') continue; // the prefix's own marker: the root
        const isMarker = rest.endsWith('/');
        const raw = (isMarker ? rest.slice(0, -1) : rest).split('/');
        const names: string[] = [];
        let bad: string | undefined;
        for (const seg of raw) {
          try {
            names.push(normalizeName(seg));
          } catch (e) {
            bad = seg === '' ? 'an empty name (a doubled or leading slash)' : `a name Portico cannot serve (${(e as Error).message})`;
            break;
          }
        }
        if (bad !== undefined) {
          skip(k.key, bad);
          continue;
        }
        // Its own name is NFC (the parents' spelling is shared by both twins: a local directory's rule).
        const nfc = names[names.length - 1] === raw[raw.length - 1];
        // Parent directories (implied by the key).
        let path = '';
        for (let i = 0; i < names.length - 1; i++) {
          path += `/${names[i]}`;
          if (byPath.get(path)?.type !== 'dir') addDir(path, `${prefix}${raw.slice(0, i + 1).join('/')}/`, 0n);
        }
        path += `/${names[names.length - 1]}`;
        const mtimeNs = dateNs(k.lastModified, 0n);
        const had = byPath.get(path);
        if (isMarker) {
          if (had !== undefined && had.type === 'dir' && had.file !== k.key && !nfc) {
            skip(k.key, 'its NFC spelling names another directory');
            continue;
          }
          addDir(path, k.key, mtimeNs);
          continue;
        }
        if (had !== undefined) {
          if (had.type === 'dir') {
            skip(k.key, 'a directory of that name exists (keys below it): the directory is packed');
            continue;
          }
          // Two keys, one NFC path: the NFC spelling wins.
          if (!nfc) {
            skip(k.key, 'its NFC spelling names another object');
            continue;
          }
          skip(had.file, 'its NFC spelling names another object');
        }
        byPath.set(path, { path, type: 'file', size: k.size, mode: this.fileMode, mtimeNs, file: k.key, etag: k.etag });
      }
      if (!page.truncated || page.token === undefined) break;
      token = page.token;
    }
    // A local SRC that does not exist fails (readdir ENOENT); an S3 prefix has no existence of its
    // own, and an empty listing packed into an existing set would tombstone all of it: a mistyped
    // prefix must not empty a set. (An empty source is not worth a set.)
    if (listed === 0) throw new VfsError('ENOENT', `no objects under ${this.label} (s3://${this.s3.transport.bucket}/${prefix})`);
    if (excluded > 0) warn(`left out ${excluded} objects under s3://${this.s3.transport.bucket}/${this.exclude} (the destination set is inside the source prefix)`);
    return { entries: [...byPath.values()], skipped };
  }

  private failure(e: unknown, entry: SourceEntry): unknown {
    if (e instanceof EtagChangedError) return new VfsError('ESTALE', `${this.label}: ${entry.file} was replaced since the listing`, { path: entry.path });
    if (isNotFound(e) || (e as { code?: string }).code === 'ENOENT') return new VfsError('ENOENT', `${entry.file} is gone`, { path: entry.path });
    return e;
  }

  async read(e: SourceEntry): Promise<Buffer> {
    if (e.size === 0) return Buffer.alloc(0);
    try {
      return await this.s3.transport.getRange(e.file, 0, e.size, e.etag, e.path);
    } catch (err) {
      throw this.failure(err, e);
    }
  }

  /** A large object as ranged GETs of 8 MiB in turn, each pinned to the listing's ETag. */
  async *stream(e: SourceEntry): AsyncIterable<Uint8Array> {
    for (let off = 0; off < e.size; off += STREAM_PIECE) {
      const end = Math.min(e.size, off + STREAM_PIECE);
      let b: Buffer;
      try {
        b = await this.s3.transport.getRange(e.file, off, end, e.etag, e.path);
      } catch (err) {
        // Before the first piece the packer may skip the file (nothing of it written yet); after,
        // part of its payload is in the shard: any failure must abort the shard.
        if (off === 0) throw this.failure(err, e);
        throw new VfsError('EIO', `${this.label}: ${e.file} failed part-way (${(err as Error).message})`, { path: e.path, cause: err });
      }
      yield b;
    }
  }

  close(): Promise<void> {
    return this.s3.close();
  }
}

/** SRC of `shard pack`: s3://bucket/prefix or a directory. */
export function openPackSource(src: string, options: Record<string, unknown>, o: { readAhead?: number; exclude?: string } = {}): PackSource {
  return /^s3:\/\//i.test(src) ? new S3PrefixSource(src, options, o) : new LocalSource(src);
}
