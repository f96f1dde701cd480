/**
 * Extended attributes and named streams, kept in the property store (MetadataStore `props`), so
 * that NFS xattrs (RFC 8276), SMB named streams and WebDAV dead properties are one store: keyed by
 * file id, they follow renames, are copied by copies, vanish with the file and survive restarts
 * exactly as dead properties do. This file holds the mapping and the limits; Vfs (getXattr,
 * setXattr, listXattrs, removeXattr) applies them. docs/ARCHITECTURE.md, "Extended attributes and
 * named streams", has the reasons in prose.
 *
 * Mapping (one, in one direction):
 * - Space `user`: the xattr `user.NAME` of Linux (FUSE) is the xattr NAME of NFS — RFC 8276 has the
 *   user namespace only and the Linux client strips `user.` before sending — is the property
 *   (XATTR_NS, NAME) with the value's raw bytes. Front-ends pass NAME without any `user.` prefix;
 *   FUSE strips it and refuses the other Linux namespaces (ENOTSUP) itself.
 * - Space `stream`: the SMB named stream `file:NAME:$DATA` is (STREAM_NS, NAME); the SMB layer
 *   strips the leading `:` and the `:$DATA` type (and treats `::$DATA` as the file itself).
 *   Stream names compare case-insensitively, as NTFS's do; the spelling of the first set is kept.
 *   Streams are apart from xattrs (NFS does not list them, PROPFIND does not show them): a
 *   resource fork is file content, not a property, and Windows' Zone.Identifier is no xattr.
 * - WebDAV shows user xattrs as dead properties in XATTR_NS (protocols/webdav/xattr-props.ts does
 *   the XML: names that are not XML names are escaped, values that are not XML text are base64),
 *   read-only: PROPPATCH in XATTR_NS or STREAM_NS is refused as a protected property, because a
 *   dead property's stored value is an XML element while an xattr's is bytes, and one writer per
 *   row keeps a PROPPATCH from turning an xattr into XML. Other WebDAV dead properties are not
 *   listed as xattrs: their names (`{URI}local`) often pass 255 bytes, and their values are XML
 *   fragments whose namespace declarations an NFS client would have to keep intact.
 */
import { VfsError } from './errors.ts';
import type { PropChange, PropRow } from '../store/metadata-store.ts';

/** `user`: NFS xattrs, FUSE `user.*`; `stream`: SMB named streams. */
export type XattrSpace = 'user' | 'stream';

/** RFC 8276 SETXATTR4_CREATE / SETXATTR4_REPLACE / SETXATTR4_EITHER (Linux XATTR_CREATE / XATTR_REPLACE / 0). */
export type XattrSetMode = 'create' | 'replace' | 'either';

export const XATTR_NS = 'urn:portico:xattr';
export const STREAM_NS = 'urn:portico:stream';

/**
 * Limits, per space and per file.
 * - Names: 255 UTF-8 bytes (Linux XATTR_NAME_MAX; NTFS stream names are 255 UTF-16 units, of
 *   which real ones use few). Over it: ENAMETOOLONG (NFS4ERR_NAMETOOLONG; FUSE maps it to ERANGE).
 * - Values: 64 KiB (Linux XATTR_SIZE_MAX: no Linux client can send more, and Samba's
 *   streams_xattr keeps streams to the same size). Over it: E2BIG (NFS4ERR_XATTR2BIG, Linux E2BIG).
 *   Streams get the same limit on purpose: every PROPFIND page loads its files' property rows,
 *   and a stream kept as one value is read and rewritten whole by each SMB READ/WRITE at an
 *   offset; a multi-megabyte resource fork belongs in the backend as a sidecar object (Samba's
 *   fruit:resource=file keeps it in an AppleDouble `._name` file), a later change. Until then a
 *   larger stream is refused (E2BIG), as on Samba with streams_xattr.
 * - Per file and space: 128 entries and 256 KiB of names and values together (ext4 fits ~4 KiB in
 *   one block, XFS has no count limit; a macOS file carries a handful). Over either: ENOSPC, which
 *   is what ext4 answers when a file's xattr space is full (NFS4ERR_NOSPC, STATUS_DISK_FULL).
 */
export const XATTR_LIMITS = {
  nameBytes: 255,
  valueBytes: 64 * 1024,
  entries: 128,
  totalBytes: 256 * 1024,
} as const;

export interface XattrEntry {
  name: string;
  /** Value size in bytes (SMB FileStreamInformation's StreamSize; NFS clients size buffers by it). */
  size: number;
}

export function xattrNs(space: XattrSpace): string {
  return space === 'user' ? XATTR_NS : STREAM_NS;
}

/**
 * Refuses a name no front-end could have meant: empty or NUL (EINVAL: Linux and NFS cannot carry
 * it), unpaired UTF-16 surrogates (EILSEQ: the store and the wire are UTF-8), over 255 bytes
 * (ENAMETOOLONG); stream names also without `:`, `/`, `\` (EINVAL: NTFS refuses them, and a `:`
 * left over means the SMB layer did not strip `:$DATA`).
 */
export function checkXattrName(name: string, space: XattrSpace): void {
  if (name === '' || name.includes('\0')) throw new VfsError('EINVAL', `invalid ${space === 'user' ? 'xattr' : 'stream'} name`);
  if (!name.isWellFormed()) throw new VfsError('EILSEQ', 'xattr name is not valid Unicode');
  if (Buffer.byteLength(name, 'utf8') > XATTR_LIMITS.nameBytes) throw new VfsError('ENAMETOOLONG', `xattr names are at most ${XATTR_LIMITS.nameBytes} bytes`);
  if (space === 'stream' && /[:/\\]/.test(name)) throw new VfsError('EINVAL', 'stream names may not contain : / or \\');
}

/** NTFS upper-cases stream names one character at a time (its upcase table): no 'ß' -> 'SS'. */
function streamKey(name: string): string {
  let out = '';
  for (const c of name) {
    const u = c.toUpperCase();
    out += u.length === c.length ? u : c;
  }
  return out;
}

/** The row of `name` among one space's rows (exact for xattrs, case-insensitive for streams). */
export function findXattr(rows: readonly PropRow[], name: string, space: XattrSpace): PropRow | undefined {
  const ns = xattrNs(space);
  if (space === 'user') return rows.find((r) => r.ns === ns && r.name === name);
  const k = streamKey(name);
  return rows.find((r) => r.ns === ns && streamKey(r.name) === k);
}

export function listOf(rows: readonly PropRow[], space: XattrSpace): XattrEntry[] {
  const ns = xattrNs(space);
  return rows.filter((r) => r.ns === ns).map((r) => ({ name: r.name, size: r.value.byteLength }));
}

/**
 * The one store change a set makes, after checking mode and limits against the file's current rows
 * (all of them; other spaces are ignored). Called with no await between reading the rows and
 * applying the change, so two sets of one file never both pass a check.
 */
export function planSet(rows: readonly PropRow[], name: string, value: Uint8Array, mode: XattrSetMode, space: XattrSpace): PropChange {
  checkXattrName(name, space);
  if (value.byteLength > XATTR_LIMITS.valueBytes) throw new VfsError('E2BIG', `xattr values are at most ${XATTR_LIMITS.valueBytes} bytes`);
  const old = findXattr(rows, name, space);
  if (old && mode === 'create') throw new VfsError('EEXIST', `xattr ${name} exists`);
  if (!old && mode === 'replace') throw new VfsError('ENODATA', `no xattr ${name}`);
  const ns = xattrNs(space);
  let entries = 1;
  let total = Buffer.byteLength(name, 'utf8') + value.byteLength;
  for (const r of rows) {
    if (r.ns !== ns || r === old) continue;
    entries++;
    total += Buffer.byteLength(r.name, 'utf8') + r.value.byteLength;
  }
  if (entries > XATTR_LIMITS.entries) throw new VfsError('ENOSPC', `at most ${XATTR_LIMITS.entries} xattrs per file`);
  if (total > XATTR_LIMITS.totalBytes) throw new VfsError('ENOSPC', `at most ${XATTR_LIMITS.totalBytes} bytes of xattrs per file`);
  // A stream keeps the spelling it was created with (NTFS); its new value replaces the old row.
  return { ns, name: old?.name ?? name, value };
}

/** The store change of a remove (ENODATA when there is no such attribute). */
export function planRemove(rows: readonly PropRow[], name: string, space: XattrSpace): PropChange {
  checkXattrName(name, space);
  const old = findXattr(rows, name, space);
  if (!old) throw new VfsError('ENODATA', `no xattr ${name}`);
  return { ns: old.ns, name: old.name, value: null };
}
