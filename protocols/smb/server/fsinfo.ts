/**
 * The FILE_*_INFORMATION buffers (MS-FSCC 2.4, 2.5) the commands answer with, built from the
 * VFS's FileAttr and StatFs, and the ones SET_INFO reads. Times are FILETIME (100 ns since 1601).
 */
import { createHash } from 'node:crypto';
import type { FileAttr, StatFsResult } from '../../../src/vfs/types.ts';
import { WinAttr } from '../../../src/vfs/types.ts';

export const FileInfoClass = {
  Directory: 1, FullDirectory: 2, BothDirectory: 3, Basic: 4, Standard: 5, Internal: 6, Ea: 7, Access: 8, Name: 9, Rename: 10,
  Names: 12, Disposition: 13, Position: 14, Mode: 16, Alignment: 17, All: 18, Allocation: 19, EndOfFile: 20, AlternateName: 21, Stream: 22,
  NetworkOpen: 34, AttributeTag: 35, IdBothDirectory: 37, IdFullDirectory: 38, NormalizedName: 48, Id: 59, DispositionEx: 64,
} as const;
export const FsInfoClass = { Volume: 1, Size: 3, Device: 4, Attribute: 5, FullSize: 7, SectorSize: 11 } as const;

const EPOCH_DIFF = 116_444_736_000_000_000n;
export const toFileTime = (ns: bigint): bigint => (ns <= 0n ? 0n : ns / 100n + EPOCH_DIFF);
export const fromFileTime = (ft: bigint): bigint => (ft - EPOCH_DIFF) * 100n;

/** The attributes shown: DIRECTORY for directories, NORMAL alone when nothing else is set. */
export function attributesOf(a: FileAttr): number {
  let v = a.winAttributes & ~WinAttr.NORMAL;
  if (a.type === 'dir') v |= WinAttr.DIRECTORY;
  return v === 0 ? WinAttr.NORMAL : v;
}

export interface Times { creationTime: bigint; lastAccessTime: bigint; lastWriteTime: bigint; changeTime: bigint }
export function timesOf(a: FileAttr): Times {
  return { creationTime: toFileTime(a.birthtimeNs || a.mtimeNs), lastAccessTime: toFileTime(a.atimeNs), lastWriteTime: toFileTime(a.mtimeNs), changeTime: toFileTime(a.ctimeNs) };
}

/** volumeSerial's answers by share name (a handful of shares; a SHA-256 per QUERY_INFO was ~2 µs). */
const serials = new Map<string, number>();

/** A share's volume serial number: stable for its name (lower-cased, as shares are keyed). */
export function volumeSerial(share: string): number {
  let serial = serials.get(share);
  if (serial === undefined) {
    serial = createHash('sha256').update(`portico-smb-volume:${share.toLowerCase()}`).digest().readUInt32LE(0);
    if (serials.size < 1024) serials.set(share, serial);
  }
  return serial;
}

const sizeOf = (a: FileAttr): bigint => (a.type === 'dir' ? 0n : BigInt(a.size));
const allocOf = (a: FileAttr): bigint => (a.type === 'dir' ? 0n : BigInt(a.allocated));

function writeTimes(b: Buffer, at: number, a: FileAttr): void {
  const t = timesOf(a);
  b.writeBigUInt64LE(t.creationTime, at);
  b.writeBigUInt64LE(t.lastAccessTime, at + 8);
  b.writeBigUInt64LE(t.lastWriteTime, at + 16);
  b.writeBigUInt64LE(t.changeTime, at + 24);
}

export function basicInfo(a: FileAttr, b = Buffer.alloc(40), at = 0): Buffer {
  writeTimes(b, at, a);
  b.writeUInt32LE(attributesOf(a), at + 32);
  return b;
}

export function standardInfo(a: FileAttr, deletePending: boolean, b = Buffer.alloc(24), at = 0): Buffer {
  b.writeBigUInt64LE(allocOf(a), at);
  b.writeBigUInt64LE(sizeOf(a), at + 8);
  b.writeUInt32LE(Math.max(1, a.nlink), at + 16);
  b[at + 20] = deletePending ? 1 : 0;
  b[at + 21] = a.type === 'dir' ? 1 : 0;
  return b;
}

export function networkOpenInfo(a: FileAttr): Buffer {
  const b = Buffer.alloc(56);
  writeTimes(b, 0, a);
  b.writeBigUInt64LE(allocOf(a), 32);
  b.writeBigUInt64LE(sizeOf(a), 40);
  b.writeUInt32LE(attributesOf(a), 48);
  return b;
}

const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
const u64 = (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };

/** FileAllInformation: Basic, Standard, Internal, Ea, Access, Position, Mode, Alignment, Name. */
export function allInfo(a: FileAttr, o: { deletePending: boolean; accessMask: number; name: string }): Buffer {
  // Written into one buffer (smbclient asks for it once per file it gets): Basic 0-39, Standard
  // 40-63, Internal 64, Ea 72, Access 76, Position 80, Mode 88, Alignment 92, Name 96 (length, then
  // the UTF-16 name at 100); the zero fields are the buffer's own zeros.
  const nameBytes = Buffer.byteLength(o.name, 'utf16le');
  const b = Buffer.alloc(100 + nameBytes);
  basicInfo(a, b, 0);
  standardInfo(a, o.deletePending, b, 40);
  b.writeBigUInt64LE(a.id, 64);
  b.writeUInt32LE(o.accessMask >>> 0, 76);
  b.writeUInt32LE(nameBytes, 96);
  b.write(o.name, 100, 'utf16le');
  return b;
}

export function fileInfo(cls: number, a: FileAttr, o: { deletePending: boolean; accessMask: number; name: string; serial: number; dialect311: boolean }): Buffer | undefined {
  switch (cls) {
    case FileInfoClass.Id: {
      // FILE_ID_INFORMATION: VolumeSerialNumber (8), FileId (16: the 64-bit id, zero-extended).
      const b = Buffer.alloc(24);
      b.writeBigUInt64LE(BigInt(o.serial), 0);
      b.writeBigUInt64LE(a.id, 8);
      return b;
    }
    case FileInfoClass.NormalizedName: {
      // 3.1.1 only (MS-SMB2 3.3.5.20.1): the path from the share root, no leading backslash.
      if (!o.dialect311) return undefined;
      const n = Buffer.from(o.name.replace(/^\\/, ''), 'utf16le');
      return Buffer.concat([u32(n.length), n]);
    }
    case FileInfoClass.Basic: return basicInfo(a);
    case FileInfoClass.Standard: return standardInfo(a, o.deletePending);
    case FileInfoClass.Internal: return u64(a.id);
    case FileInfoClass.Ea: return u32(0);
    case FileInfoClass.Access: return u32(o.accessMask);
    case FileInfoClass.Position: return u64(0n);
    case FileInfoClass.Mode: return u32(0);
    case FileInfoClass.Alignment: return u32(0);
    case FileInfoClass.All: return allInfo(a, o);
    case FileInfoClass.NetworkOpen: return networkOpenInfo(a);
    case FileInfoClass.AttributeTag: return Buffer.concat([u32(attributesOf(a)), u32(0)]);
    case FileInfoClass.Stream: {
      if (a.type === 'dir') return Buffer.alloc(0);
      const n = Buffer.from('::$DATA', 'utf16le');
      return Buffer.concat([u32(0), u32(n.length), u64(sizeOf(a)), u64(allocOf(a)), n]);
    }
    default: return undefined;
  }
}

/** Variable-length classes answer a short buffer with STATUS_BUFFER_OVERFLOW and a truncated buffer (MS-SMB2 3.3.5.20.1). */
export const VARIABLE_FILE_CLASSES: ReadonlySet<number> = new Set([FileInfoClass.All, FileInfoClass.Stream, FileInfoClass.Name, FileInfoClass.NormalizedName]);
export const VARIABLE_FS_CLASSES: ReadonlySet<number> = new Set([FsInfoClass.Volume, FsInfoClass.Attribute]);

export function fsInfo(cls: number, s: StatFsResult, o: { label: string; serial: number }): Buffer | undefined {
  const unit = 4096;
  const bytesPerSector = 512;
  const total = BigInt(Math.floor(s.totalBytes / unit));
  const avail = BigInt(Math.floor(s.availableBytes / unit));
  const free = BigInt(Math.floor(s.freeBytes / unit));
  switch (cls) {
    case FsInfoClass.Volume: {
      const label = Buffer.from(o.label, 'utf16le');
      const b = Buffer.alloc(18);
      b.writeUInt32LE(o.serial >>> 0, 8);
      b.writeUInt32LE(label.length, 12);
      return Buffer.concat([b, label]);
    }
    case FsInfoClass.Size:
      return Buffer.concat([u64(total), u64(avail), u32(unit / bytesPerSector), u32(bytesPerSector)]);
    case FsInfoClass.FullSize:
      return Buffer.concat([u64(total), u64(avail), u64(free), u32(unit / bytesPerSector), u32(bytesPerSector)]);
    case FsInfoClass.Device:
      return Buffer.concat([u32(0x07 /* FILE_DEVICE_DISK */), u32(0)]);
    case FsInfoClass.Attribute: {
      // FILE_CASE_SENSITIVE_SEARCH | FILE_CASE_PRESERVED_NAMES | FILE_UNICODE_ON_DISK
      const name = Buffer.from('NTFS', 'utf16le');
      return Buffer.concat([u32(0x1 | 0x2 | 0x4), u32(255), u32(name.length), name]);
    }
    case FsInfoClass.SectorSize: {
      const b = Buffer.alloc(28);
      b.writeUInt32LE(bytesPerSector, 0);
      b.writeUInt32LE(bytesPerSector, 4);
      b.writeUInt32LE(bytesPerSector, 8);
      b.writeUInt32LE(bytesPerSector, 12);
      return b;
    }
    default: return undefined;
  }
}

/** The directory classes QUERY_DIRECTORY answers with: fixed part size (before the name) per class. */
const DIR_FIXED: Record<number, number> = {
  [FileInfoClass.Directory]: 64,
  [FileInfoClass.FullDirectory]: 68,
  [FileInfoClass.BothDirectory]: 94,
  [FileInfoClass.Names]: 12,
  [FileInfoClass.IdBothDirectory]: 104,
  [FileInfoClass.IdFullDirectory]: 80,
};
export const isDirClass = (cls: number): boolean => DIR_FIXED[cls] !== undefined;
/** The smallest entry of a directory class (a one-character name, 8-byte aligned). */
export const dirEntryMinBytes = (cls: number): number => ((DIR_FIXED[cls] ?? 0) + 2 + 7) & ~7;

/** One directory entry of class `cls` (NextEntryOffset 0, patched by the caller), unpadded. */
export function dirEntry(cls: number, name: string, a: FileAttr): Buffer {
  const n = Buffer.from(name, 'utf16le');
  const fixed = DIR_FIXED[cls]!;
  const b = Buffer.alloc(fixed + n.length);
  if (cls === FileInfoClass.Names) {
    b.writeUInt32LE(n.length, 8);
    n.copy(b, 12);
    return b;
  }
  writeTimes(b, 8, a);
  b.writeBigUInt64LE(sizeOf(a), 40);
  b.writeBigUInt64LE(allocOf(a), 48);
  b.writeUInt32LE(attributesOf(a), 56);
  b.writeUInt32LE(n.length, 60);
  // EaSize 0 at 64 for the Full/Both/Id classes; no short names (ShortNameLength 0).
  if (cls === FileInfoClass.IdBothDirectory) b.writeBigUInt64LE(a.id, 96);
  if (cls === FileInfoClass.IdFullDirectory) b.writeBigUInt64LE(a.id, 72);
  n.copy(b, fixed);
  return b;
}

/**
 * A DOS wildcard pattern (MS-FSA 2.1.4.4: `*`, `?`, and `<` `>` `"` — DOS_STAR, DOS_QM, DOS_DOT)
 * as a case-insensitive matcher. `*` and `*.*` match everything.
 */
export function patternMatcher(pattern: string): (name: string) => boolean {
  if (pattern === '' || pattern === '*' || pattern === '*.*' || pattern === '<.*') return () => true;
  let re = '';
  for (const c of pattern) {
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '<') re += '[^.]*';
    else if (c === '>') re += '.?';
    else if (c === '"') re += '\\.?';
    else re += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`, 'isu');
  return (name) => rx.test(name);
}

export const hasWildcards = (p: string): boolean => /[*?<>"]/.test(p);
