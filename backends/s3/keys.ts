/**
 * Path <-> key mapping and the object metadata encoding of the S3 backend.
 *
 * One object per file at `prefix + path` (no leading slash), so every other S3 tool sees the same
 * tree. A directory is a zero-byte `dir/` marker object and/or any key below `dir/` (an implied
 * directory); markers make empty directories persist.
 *
 * POSIX metadata lives in user metadata (x-amz-meta-*), in the encoding s3fs and rclone use, so
 * files written by one tool keep their attributes in the others:
 *   mode  decimal st_mode including the file-type bits (s3fs), e.g. 33188 = S_IFREG|0644
 *   uid, gid  decimal
 *   mtime, atime, btime  seconds with an optional fraction of up to 9 digits ("1700000000.123456789",
 *         rclone's format; s3fs writes whole seconds, which parse too)
 * mtime is stored only when a client set it explicitly (utimes, cp -p, rsync -t, a copy or a
 * metadata change that must keep it): otherwise the effective mtime is the object's LastModified,
 * which ListObjectsV2 also returns, so a listing and a HEAD report the same times without a HEAD
 * per listed entry. ctime is always LastModified (S3 rewrites the object on every data or metadata
 * change). Objects written by others get the configured defaults.
 */
import type { BackendStat, SetMetadata, TimeNs } from '../../src/vfs/backend.ts';
import { VfsError } from '../../src/vfs/errors.ts';

/** S3's key length limit, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

export interface MetaDefaults {
  fileMode: number;
  dirMode: number;
  uid: number;
  gid: number;
}

/** Maps share paths ('/a/b', already normalised by the VFS) to keys under the share prefix. */
export class KeyMap {
  /** '' or 'some/prefix/' (always ending in '/'). */
  readonly prefix: string;

  constructor(prefix: string | undefined) {
    const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = p === '' ? '' : `${p}/`;
  }

  /** Object key of a file. Root has no file key. */
  fileKey(path: string): string {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const key = this.prefix + path.slice(1);
    if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new VfsError('ENAMETOOLONG', 'S3 key longer than 1024 bytes', { path });
    return key;
  }

  /** Key prefix of a directory's children, which is also its marker key ('' for the bucket root). */
  dirKey(path: string): string {
    if (path === '/') return this.prefix;
    const key = `${this.prefix}${path.slice(1)}/`;
    if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new VfsError('ENAMETOOLONG', 'S3 key longer than 1024 bytes', { path });
    return key;
  }

  /** Share path of a key under the prefix (undefined for keys outside it). */
  pathOf(key: string): string | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const rest = key.slice(this.prefix.length).replace(/\/$/, '');
    return `/${rest}`;
  }
}

/** True when the name holds a code point >= U+E000, where UTF-8 byte order and JS string order disagree. */
export function hasOrderHazard(name: string): boolean {
  // Surrogates (U+D800..U+DFFF) encode the code points >= U+10000.
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) >= 0xd800) return true;
  return false;
}

const NS = 1_000_000_000n;

/** "1700000000.123456789" | "1700000000" -> ns; undefined for anything else. */
export function parseTime(v: string | undefined): TimeNs | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,12})(?:\.(\d{1,9})\d*)?$/.exec(v.trim());
  if (m === null) return undefined;
  const frac = (m[2] ?? '').padEnd(9, '0');
  return BigInt(m[1] as string) * NS + BigInt(frac);
}

export function formatTime(ns: TimeNs): string {
  const neg = ns < 0n;
  const a = neg ? 0n : ns;
  return `${a / NS}.${(a % NS).toString().padStart(9, '0')}`;
}

function parseUint(v: string | undefined, max: number): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v.trim())) return undefined;
  const n = Number(v);
  return n <= max ? n : undefined;
}

/** What a HEAD (or a listing entry) tells about an object. */
export interface ObjectHead {
  size: number;
  etag: string;
  lastModified: Date | undefined;
  /** x-amz-meta-* without the prefix, lower-case keys. */
  meta: Record<string, string>;
  contentType?: string | undefined;
}

export function dateNs(d: Date | undefined, fallback: TimeNs): TimeNs {
  return d === undefined || Number.isNaN(d.getTime()) ? fallback : BigInt(d.getTime()) * 1_000_000n;
}

/** Stat of a file object (a listing entry has no user metadata: `meta` is then empty). */
export function fileStat(name: string, head: ObjectHead, defaults: MetaDefaults, fallbackNs: TimeNs): BackendStat {
  const lm = dateNs(head.lastModified, fallbackNs);
  const mtime = parseTime(head.meta.mtime) ?? lm;
  const mode = parseUint(head.meta.mode, 0o177777);
  const st: BackendStat = {
    name,
    type: 'file',
    size: head.size,
    mtimeNs: mtime,
    ctimeNs: lm,
    atimeNs: parseTime(head.meta.atime) ?? mtime,
    mode: mode === undefined ? defaults.fileMode : mode & 0o7777,
    uid: parseUint(head.meta.uid, 0xffffffff) ?? defaults.uid,
    gid: parseUint(head.meta.gid, 0xffffffff) ?? defaults.gid,
    nlink: 1,
    nativeId: head.etag,
  };
  const birth = parseTime(head.meta.btime);
  if (birth !== undefined) st.birthtimeNs = birth;
  return st;
}

/**
 * Stat of a directory. A directory's mtime is a constant (`baseNs`) unless a client set one: S3
 * has no directory times that change with the children, and a constant keeps a listing (which only
 * sees the common prefix) and a HEAD of the marker in agreement.
 */
export function dirStat(name: string, marker: ObjectHead | undefined, defaults: MetaDefaults, baseNs: TimeNs): BackendStat {
  const meta = marker?.meta ?? {};
  const mtime = parseTime(meta.mtime) ?? baseNs;
  const mode = parseUint(meta.mode, 0o177777);
  const st: BackendStat = {
    name,
    type: 'dir',
    size: 0,
    mtimeNs: mtime,
    ctimeNs: mtime,
    atimeNs: parseTime(meta.atime) ?? mtime,
    mode: mode === undefined ? defaults.dirMode : mode & 0o7777,
    uid: parseUint(meta.uid, 0xffffffff) ?? defaults.uid,
    gid: parseUint(meta.gid, 0xffffffff) ?? defaults.gid,
    nlink: 2,
  };
  const birth = parseTime(meta.btime) ?? (marker?.lastModified !== undefined ? dateNs(marker.lastModified, baseNs) : undefined);
  if (birth !== undefined) st.birthtimeNs = birth;
  return st;
}

/**
 * User metadata for a new object version: `base` (the previous version's metadata, kept across
 * rewrites like a POSIX inode keeps its mode and owner) with `set` applied on top.
 */
export function encodeMeta(type: 'file' | 'dir', base: Record<string, string>, set: SetMetadata & { mode?: number }): Record<string, string> {
  const out: Record<string, string> = {};
  // Keep foreign metadata (other tools' keys) as it was.
  for (const [k, v] of Object.entries(base)) out[k] = v;
  if (set.mode !== undefined) out.mode = String((set.mode & 0o7777) | (type === 'dir' ? S_IFDIR : S_IFREG));
  if (set.uid !== undefined) out.uid = String(set.uid >>> 0);
  if (set.gid !== undefined) out.gid = String(set.gid >>> 0);
  if (set.mtimeNs !== undefined) out.mtime = formatTime(set.mtimeNs);
  if (set.atimeNs !== undefined) out.atime = formatTime(set.atimeNs);
  if (set.birthtimeNs !== undefined) out.btime = formatTime(set.birthtimeNs);
  return out;
}

/** Metadata a rewrite of the content inherits: everything but the explicit times of the old content. */
export function inheritedMeta(meta: Record<string, string>): Record<string, string> {
  const out = { ...meta };
  delete out.mtime;
  delete out.atime;
  return out;
}
