/**
 * The shard file format (docs/shard-format.md is the spec; this file follows it section by section):
 * header, data region, index, footer. This module is pure (no I/O): it encodes the index and the
 * fixed-size parts, and decodes them from bytes with every length, offset and count bounded, so any
 * byte string gives a ShardFormatError naming what is wrong, never an exception of another kind,
 * never a huge allocation, never an entry pointing outside its shard. Reading payloads with their
 * checksums is format-read.ts; building shards is format-write.ts.
 */
import { crc32 } from 'node:zlib';
import zlib from 'node:zlib';
import { MAX_PATH_BYTES, normalizePath } from '../../src/vfs/path.ts';
import { CODEC_ID, codecOf, type Codec } from './codec.ts';

export const HEADER_MAGIC = Buffer.from('PORTSHRD', 'latin1');
export const FOOTER_MAGIC = Buffer.from('PSHDEND1', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 32;
export const FOOTER_BYTES = 56;
/** Fixed part of an index entry, after its u16 path length and path bytes. */
export const ENTRY_FIXED_BYTES = 44;
/** Chunk of the original bytes covered by one CRC of a chunked payload. */
export const CHUNK_BYTES = 1024 * 1024;
/** Files larger than this are stored chunked (codec none, a CRC per chunk): ranged reads verify only what they read. */
export const WHOLE_MAX_BYTES = 4 * 1024 * 1024;
/** Bounds of the parser (a hostile footer cannot make it allocate or loop beyond them). */
export const MAX_ENTRIES = 16 * 1024 * 1024;
export const MAX_INDEX_BYTES = 1024 * 1024 * 1024;
export const MAX_FILE_BYTES = 2 ** 48;
/** Readers fetch this many bytes of a shard's tail first: the footer, and the whole index of most shards. */
export const TAIL_READ_BYTES = 64 * 1024;

export const TYPE_FILE = 0;
export const TYPE_DIR = 1;
export const FLAG_CHUNKED = 1;

export type EntryType = 'file' | 'dir';

export interface ShardEntry {
  path: string;
  type: EntryType;
  codec: Codec;
  chunked: boolean;
  mode: number;
  mtimeNs: bigint;
  /** Offset of the payload in the shard. */
  offset: number;
  storedLength: number;
  length: number;
  /** CRC-32 of the original bytes (chunked: of the chunk CRC table). */
  crc: number;
}

export interface ShardHeader {
  version: number;
  flags: number;
  alignment: number;
  createdMs: number;
}

export interface ShardFooter {
  indexOffset: number;
  indexStoredLength: number;
  indexLength: number;
  entryCount: number;
  indexCodec: 'none' | 'zstd';
  indexCrc: number;
  version: number;
}

/** What is wrong with a shard, and where: header, footer, index, entry N, or a payload. */
export class ShardFormatError extends Error {
  readonly part: string;
  constructor(part: string, message: string) {
    super(`shard ${part}: ${message}`);
    this.name = 'ShardFormatError';
    this.part = part;
  }
}

// ------------------------------------------------------------------ header

export function encodeHeader(h: { alignment: number; createdMs: number; flags?: number }): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  HEADER_MAGIC.copy(b, 0);
  b.writeUInt16LE(FORMAT_VERSION, 8);
  b.writeUInt16LE(h.flags ?? 0, 10);
  b.writeUInt32LE(h.alignment, 12);
  b.writeBigUInt64LE(BigInt(h.createdMs), 16);
  b.writeUInt32LE(crc32(b.subarray(0, 24)), 24);
  return b;
}

export function decodeHeader(b: Buffer): ShardHeader {
  if (b.length < HEADER_BYTES) throw new ShardFormatError('header', `${b.length} bytes, a header has ${HEADER_BYTES}`);
  if (!b.subarray(0, 8).equals(HEADER_MAGIC)) throw new ShardFormatError('header', 'bad magic (not a Portico shard)');
  if (b.readUInt32LE(24) !== crc32(b.subarray(0, 24))) throw new ShardFormatError('header', 'checksum mismatch');
  const version = b.readUInt16LE(8);
  if (version !== FORMAT_VERSION) throw new ShardFormatError('header', `format version ${version} (this reader knows ${FORMAT_VERSION})`);
  const alignment = b.readUInt32LE(12);
  const createdMs = Number(b.readBigUInt64LE(16));
  return { version, flags: b.readUInt16LE(10), alignment, createdMs };
}

// ------------------------------------------------------------------ footer

export function encodeFooter(f: Omit<ShardFooter, 'version'>): Buffer {
  const b = Buffer.alloc(FOOTER_BYTES);
  b.writeBigUInt64LE(BigInt(f.indexOffset), 0);
  b.writeBigUInt64LE(BigInt(f.indexStoredLength), 8);
  b.writeBigUInt64LE(BigInt(f.indexLength), 16);
  b.writeUInt32LE(f.entryCount, 24);
  b.writeUInt8(f.indexCodec === 'zstd' ? 1 : 0, 28);
  b.writeUInt32LE(f.indexCrc, 32);
  b.writeUInt16LE(FORMAT_VERSION, 36);
  b.writeUInt32LE(crc32(b.subarray(0, 44)), 44);
  FOOTER_MAGIC.copy(b, 48);
  return b;
}

/**
 * The footer at the end of `tail`, the last bytes of a shard of `shardSize` bytes. Checks that the
 * index lies between the header and the footer.
 */
export function decodeFooter(tail: Buffer, shardSize: number): ShardFooter {
  if (!Number.isSafeInteger(shardSize) || shardSize < HEADER_BYTES + FOOTER_BYTES) {
    throw new ShardFormatError('footer', `shard of ${shardSize} bytes is shorter than a header and a footer`);
  }
  if (tail.length < FOOTER_BYTES) throw new ShardFormatError('footer', `truncated (${tail.length} bytes)`);
  const b = tail.subarray(tail.length - FOOTER_BYTES);
  if (!b.subarray(48, 56).equals(FOOTER_MAGIC)) throw new ShardFormatError('footer', 'bad magic (truncated or not a Portico shard)');
  if (b.readUInt32LE(44) !== crc32(b.subarray(0, 44))) throw new ShardFormatError('footer', 'checksum mismatch');
  const version = b.readUInt16LE(36);
  if (version !== FORMAT_VERSION) throw new ShardFormatError('footer', `format version ${version} (this reader knows ${FORMAT_VERSION})`);
  const codecByte = b.readUInt8(28);
  if (codecByte > 1 || b[29] !== 0 || b[30] !== 0 || b[31] !== 0 || b.readUInt16LE(38) !== 0 || b.readUInt32LE(40) !== 0) {
    throw new ShardFormatError('footer', 'unknown index codec or non-zero reserved bytes');
  }
  const big = (o: number, what: string, max: number): number => {
    const v = b.readBigUInt64LE(o);
    if (v > BigInt(max)) throw new ShardFormatError('footer', `${what} ${v} out of range`);
    return Number(v);
  };
  const indexOffset = big(0, 'index offset', shardSize);
  const indexStoredLength = big(8, 'index length', MAX_INDEX_BYTES);
  const indexLength = big(16, 'decoded index length', MAX_INDEX_BYTES);
  const entryCount = b.readUInt32LE(24);
  if (indexOffset < HEADER_BYTES || indexOffset + indexStoredLength !== shardSize - FOOTER_BYTES) {
    throw new ShardFormatError('footer', `index [${indexOffset}, +${indexStoredLength}) does not end at the footer of a ${shardSize}-byte shard`);
  }
  if (entryCount > MAX_ENTRIES) throw new ShardFormatError('footer', `${entryCount} entries (limit ${MAX_ENTRIES})`);
  if (indexLength < entryCount * (ENTRY_FIXED_BYTES + 4)) throw new ShardFormatError('footer', `${entryCount} entries cannot fit in ${indexLength} index bytes`);
  if (codecByte === 0 && indexLength !== indexStoredLength) throw new ShardFormatError('footer', 'uncompressed index with two different lengths');
  return { indexOffset, indexStoredLength, indexLength, entryCount, indexCodec: codecByte === 1 ? 'zstd' : 'none', indexCrc: b.readUInt32LE(32), version };
}

// ------------------------------------------------------------------ index

/** Byte order of UTF-8 paths: the order of the index (language-neutral, and what Buffer.compare does). */
export function comparePathBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** The index's bytes, before the index codec: entries sorted by the UTF-8 bytes of their paths. */
export function encodeIndex(entries: readonly ShardEntry[]): Buffer {
  const paths = entries.map((e) => Buffer.from(e.path, 'utf8'));
  let total = 0;
  for (const p of paths) total += 2 + p.length + ENTRY_FIXED_BYTES;
  const b = Buffer.alloc(total);
  let o = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as ShardEntry;
    const p = paths[i] as Buffer;
    if (i > 0 && comparePathBytes(paths[i - 1] as Buffer, p) >= 0) throw new Error(`index entries not sorted or duplicated at ${e.path}`);
    b.writeUInt16LE(p.length, o);
    p.copy(b, o + 2);
    o += 2 + p.length;
    b.writeUInt8(e.type === 'dir' ? TYPE_DIR : TYPE_FILE, o);
    b.writeUInt8(CODEC_ID[e.codec], o + 1);
    b.writeUInt8(e.chunked ? FLAG_CHUNKED : 0, o + 2);
    b.writeUInt32LE(e.mode >>> 0, o + 4);
    b.writeBigInt64LE(e.mtimeNs, o + 8);
    b.writeBigUInt64LE(BigInt(e.offset), o + 16);
    b.writeBigUInt64LE(BigInt(e.storedLength), o + 24);
    b.writeBigUInt64LE(BigInt(e.length), o + 32);
    b.writeUInt32LE(e.crc >>> 0, o + 40);
    o += ENTRY_FIXED_BYTES;
  }
  return b;
}

/** The index as stored: zstd-compressed when that saves anything. */
export function packIndex(raw: Buffer): { stored: Buffer; codec: 'none' | 'zstd' } {
  const z = zlib.zstdCompressSync(raw, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
  return z.length < raw.length ? { stored: z, codec: 'zstd' } : { stored: raw, codec: 'none' };
}

export function chunkCount(length: number): number {
  return Math.ceil(length / CHUNK_BYTES);
}

/**
 * A decoded, validated index held as its bytes plus one offset per entry (about 90 bytes per entry
 * for 40-byte paths; no string or object per entry), searched by path bytes.
 */
export class ShardIndex {
  readonly buf: Buffer;
  readonly count: number;
  /** Start of entry i's path bytes; its fixed part follows them. */
  private readonly starts: Uint32Array;
  private readonly lens: Uint16Array;

  constructor(buf: Buffer, starts: Uint32Array, lens: Uint16Array) {
    this.buf = buf;
    this.starts = starts;
    this.lens = lens;
    this.count = starts.length;
  }

  /** Bytes this index keeps in memory. */
  get bytes(): number {
    return this.buf.length + this.starts.byteLength + this.lens.byteLength + 64;
  }

  pathBytes(i: number): Buffer {
    const s = this.starts[i] as number;
    return this.buf.subarray(s, s + (this.lens[i] as number));
  }

  path(i: number): string {
    return this.pathBytes(i).toString('utf8');
  }

  /** First entry whose path is >= `key` (count when none). */
  lowerBound(key: Uint8Array): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comparePathBytes(this.pathBytes(mid), key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the entry at exactly `path`, or -1. */
  find(path: string | Uint8Array): number {
    const key = typeof path === 'string' ? Buffer.from(path, 'utf8') : path;
    const i = this.lowerBound(key);
    return i < this.count && comparePathBytes(this.pathBytes(i), key) === 0 ? i : -1;
  }

  entry(i: number): ShardEntry {
    const s = this.starts[i] as number;
    const o = s + (this.lens[i] as number);
    const b = this.buf;
    return {
      path: b.toString('utf8', s, o),
      type: b[o] === TYPE_DIR ? 'dir' : 'file',
      codec: codecOf(b[o + 1] as number) as Codec,
      chunked: ((b[o + 2] as number) & FLAG_CHUNKED) !== 0,
      mode: b.readUInt32LE(o + 4),
      mtimeNs: b.readBigInt64LE(o + 8),
      offset: Number(b.readBigUInt64LE(o + 16)),
      storedLength: Number(b.readBigUInt64LE(o + 24)),
      length: Number(b.readBigUInt64LE(o + 32)),
      crc: b.readUInt32LE(o + 40),
    };
  }

  /** Type of entry i without decoding the rest. */
  isDir(i: number): boolean {
    return this.buf[(this.starts[i] as number) + (this.lens[i] as number)] === TYPE_DIR;
  }
}

/**
 * Decodes the stored index bytes of a shard (what lies between the data region and the footer):
 * checks its CRC, decompresses it within the footer's bounds, and validates every entry (paths
 * normal, sorted and unique; known type, codec and flags; payload inside the data region; lengths
 * consistent with the codec). `dataEnd` is where the data region ends (the footer's index offset).
 */
export function decodeIndex(stored: Buffer, footer: ShardFooter): ShardIndex {
  if (stored.length !== footer.indexStoredLength) throw new ShardFormatError('index', `${stored.length} bytes, the footer says ${footer.indexStoredLength}`);
  if (crc32(stored) !== footer.indexCrc) throw new ShardFormatError('index', 'checksum mismatch');
  let buf: Buffer;
  if (footer.indexCodec === 'zstd') {
    try {
      buf = zlib.zstdDecompressSync(stored, { maxOutputLength: Math.max(1, footer.indexLength) });
    } catch (e) {
      throw new ShardFormatError('index', `does not decompress: ${(e as Error).message}`);
    }
    if (buf.length !== footer.indexLength) throw new ShardFormatError('index', `decompresses to ${buf.length} bytes, the footer says ${footer.indexLength}`);
  } else buf = stored;
  const n = footer.entryCount;
  const starts = new Uint32Array(n);
  const lens = new Uint16Array(n);
  const dataEnd = footer.indexOffset;
  let o = 0;
  let prev: Buffer | undefined;
  for (let i = 0; i < n; i++) {
    const where = `index entry ${i}`;
    if (o + 2 > buf.length) throw new ShardFormatError(where, 'truncated');
    const pl = buf.readUInt16LE(o);
    if (pl < 2 || pl > MAX_PATH_BYTES) throw new ShardFormatError(where, `path of ${pl} bytes`);
    if (o + 2 + pl + ENTRY_FIXED_BYTES > buf.length) throw new ShardFormatError(where, 'truncated');
    const pb = buf.subarray(o + 2, o + 2 + pl);
    const path = pb.toString('utf8');
    let normal: string | undefined;
    try {
      normal = normalizePath(path);
    } catch {
      normal = undefined;
    }
    if (normal !== path || path === '/' || !Buffer.from(path, 'utf8').equals(pb)) throw new ShardFormatError(where, `path ${JSON.stringify(path)} is not a normalised share path`);
    if (prev !== undefined && comparePathBytes(prev, pb) >= 0) throw new ShardFormatError(where, `${JSON.stringify(path)} is out of order or repeated`);
    prev = pb;
    starts[i] = o + 2;
    lens[i] = pl;
    const f = o + 2 + pl;
    const type = buf[f] as number;
    const codecId = buf[f + 1] as number;
    const flags = buf[f + 2] as number;
    const codec = codecOf(codecId);
    if (type > TYPE_DIR || codec === undefined || (flags & ~FLAG_CHUNKED) !== 0 || buf[f + 3] !== 0) {
      throw new ShardFormatError(where, `unknown type ${type}, codec ${codecId} or flags ${flags} (${path})`);
    }
    const big = (off: number): number => {
      const v = buf.readBigUInt64LE(f + off);
      if (v > BigInt(MAX_FILE_BYTES)) throw new ShardFormatError(where, `length or offset ${v} out of range (${path})`);
      return Number(v);
    };
    const offset = big(16);
    const storedLength = big(24);
    const length = big(32);
    if (type === TYPE_DIR) {
      if (offset !== 0 || storedLength !== 0 || length !== 0 || codecId !== 0 || flags !== 0) throw new ShardFormatError(where, `directory with a payload (${path})`);
    } else {
      // An empty payload is written with offset 0; any other offset, even of an empty payload, must lie in
      // the data region, so that every accepted entry satisfies offset + storedLength <= dataEnd.
      if ((storedLength > 0 || offset !== 0) && (offset < HEADER_BYTES || offset + storedLength > dataEnd)) {
        throw new ShardFormatError(where, `payload [${offset}, +${storedLength}) outside the data region [${HEADER_BYTES}, ${dataEnd}) (${path})`);
      }
      if ((flags & FLAG_CHUNKED) !== 0) {
        if (codec !== 'none' || storedLength !== length + 4 * chunkCount(length)) throw new ShardFormatError(where, `chunked payload with codec ${codec} or a wrong stored length (${path})`);
      } else {
        if (length > WHOLE_MAX_BYTES) throw new ShardFormatError(where, `whole payload of ${length} bytes (limit ${WHOLE_MAX_BYTES}) (${path})`);
        if (codec === 'none' && storedLength !== length) throw new ShardFormatError(where, `stored and original lengths differ without a codec (${path})`);
      }
    }
    o = f + ENTRY_FIXED_BYTES;
  }
  if (o !== buf.length) throw new ShardFormatError('index', `${buf.length - o} bytes after the last of ${n} entries`);
  return new ShardIndex(buf, starts, lens);
}
