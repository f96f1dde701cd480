/**
 * The one path normaliser and validator. Every path from a protocol passes through `normalizePath`
 * before anything else sees it; backends only ever receive its output.
 *
 * Decisions (and why):
 * - '/' is the only separator. Protocols convert their own separators first (SMB: '\\' -> '/'). A
 *   backslash that is still in a name is refused (EINVAL): on a Windows client it is a separator, so
 *   accepting it would create names that some clients can address but not see, and on a Windows
 *   backend it would be a traversal.
 * - '.' and '..' segments are refused (EINVAL), never resolved: HTTP clients remove dot segments
 *   before sending (RFC 3986 §5.2.4), NFS has LOOKUPP and SMB paths never carry them, so a dot
 *   segment on the wire is hostile or broken, and resolving it lexically invites off-by-one escapes.
 * - Empty segments ('//') are collapsed; a trailing '/' is dropped.
 * - NUL and the C0 control characters (and DEL) are refused: Windows forbids them, many tools break
 *   on them, and NUL truncates paths in C libraries.
 * - Names must be valid Unicode (no lone surrogates, which cannot round-trip through UTF-8), and are
 *   normalised to NFC so that macOS (NFD) and everyone else (NFC) address the same file.
 * - Percent signs are literal: decoding is the protocol's job, done exactly once. '%2e%2e' reaching
 *   this function is a harmless file name.
 * - Limits: a name is at most 255 UTF-8 bytes (ENAMETOOLONG), a path at most 4096 bytes, and at most
 *   256 segments deep (ENAMETOOLONG) — bounds on every caller's work.
 */
import { VfsError } from './errors.ts';

export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
export const MAX_DEPTH = 256;

// C0 controls, DEL, and the backslash.
const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;

/** Validates one path segment (a file name) and returns it in NFC. */
export function normalizeName(name: string, maxNameBytes = MAX_NAME_BYTES): string {
  if (name.length === 0) throw new VfsError('EINVAL', 'empty name');
  if (name === '.' || name === '..') throw new VfsError('EINVAL', `dot segment '${name}' not allowed`);
  if (name.includes('/')) throw new VfsError('EINVAL', 'name contains a path separator');
  if (FORBIDDEN.test(name)) throw new VfsError('EINVAL', 'name contains a control character or backslash');
  if (!name.isWellFormed()) throw new VfsError('EILSEQ', 'name is not valid Unicode');
  const nfc = name.normalize('NFC');
  if (Buffer.byteLength(nfc, 'utf8') > maxNameBytes) throw new VfsError('ENAMETOOLONG', `name longer than ${maxNameBytes} bytes`);
  return nfc;
}

/**
 * A path already in normal form when it is made of printable ASCII (no backslash) segments of 1 to
 * 255 characters, each after one '/', none of them '.' or '..' (PLAIN_DOTS), at most MAX_DEPTH
 * deep: every check of normalizeName passes and NFC changes nothing, so normalizePath would return
 * it unchanged. A request's path is normalised several times on its way (protocol, session gate,
 * VFS), and the general path (split, a regular expression, a well-formedness check, NFC and a
 * byte count per segment, a join) was ~4% of a 4 KiB WebDAV GET's CPU. No backtracking: a
 * segment's class excludes '/'.
 */
const PLAIN = /^(?:\/[\x20-\x2e\x30-\x5b\x5d-\x7e]{1,255}){1,256}$/;
const PLAIN_DOTS = /\/\.\.?(?:\/|$)/;

/**
 * Normalises a share-relative path: returns '/' or '/a/b' (no trailing slash), with every segment
 * validated by normalizeName. Leading slashes are optional on input.
 */
export function normalizePath(path: string, maxNameBytes = MAX_NAME_BYTES): string {
  if (typeof path !== 'string') throw new VfsError('EINVAL', 'path is not a string');
  // Bound the work before splitting: a 4096-byte path has at most 4096 UTF-16 units.
  if (path.length > MAX_PATH_BYTES) throw new VfsError('ENAMETOOLONG', `path longer than ${MAX_PATH_BYTES} bytes`);
  if (maxNameBytes >= MAX_NAME_BYTES && PLAIN.test(path) && !PLAIN_DOTS.test(path)) return path;
  const parts: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '') continue;
    parts.push(normalizeName(seg, maxNameBytes));
    if (parts.length > MAX_DEPTH) throw new VfsError('ENAMETOOLONG', `path deeper than ${MAX_DEPTH} segments`);
  }
  const out = '/' + parts.join('/');
  if (Buffer.byteLength(out, 'utf8') > MAX_PATH_BYTES) throw new VfsError('ENAMETOOLONG', `path longer than ${MAX_PATH_BYTES} bytes`);
  return out;
}

/** '/a/b' -> ['a', 'b']; '/' -> []. Input must be normalised. */
export function splitPath(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/** Parent of a normalised path ('/' for a top-level entry; '/' is its own parent). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** Last segment of a normalised path ('' for the root). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True when `inner` is `outer` or lies below it (segment-wise, never a string-prefix match). */
export function isSameOrDescendant(inner: string, outer: string): boolean {
  if (outer === '/') return true;
  return inner === outer || inner.startsWith(outer + '/');
}

/**
 * Key used to match names: NFC always, and case-folded on case-insensitive shares. Folding is full
 * Unicode lower-casing of the upper-cased form, then NFC again (folding can decompose: U+0390 folds
 * to iota + combining marks), which matches Windows' upcase table for every character a client is
 * likely to send (the German sharp s and Turkish dotless i aside). Keys are stored in the id store
 * (nodes.key): any change to this function needs a store migration that recomputes them.
 */
export function nameKey(name: string, caseSensitive: boolean): string {
  return caseSensitive ? name : name.toUpperCase().toLowerCase().normalize('NFC');
}

/**
 * Whether a symbolic link at `linkPath` (normalised) with `target` leads outside the share: an
 * absolute target, or `..` segments climbing above the root from the link's directory. Lexical, as
 * the kernel would resolve it if no component were itself a link; a link inside the share that
 * points at another in-share link is judged by that link's own check when it was made.
 */
export function symlinkLeavesShare(linkPath: string, target: string): boolean {
  if (target.startsWith('/')) return true;
  let depth = splitPath(parentPath(linkPath)).length;
  for (const seg of target.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (--depth < 0) return true;
    } else depth++;
  }
  return false;
}
