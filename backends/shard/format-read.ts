/**
 * Reading a shard through any ranged-read source (a local file, the S3 read engine): the tail read
 * that finds the index, and payload reads that verify every byte they return against the index's
 * CRC-32 before handing it out (a mismatch is a ShardFormatError, never wrong bytes).
 */
import { crc32 } from 'node:zlib';
import { CodecError, decompress } from './codec.ts';
import {
  CHUNK_BYTES, FOOTER_BYTES, ShardFormatError, TAIL_READ_BYTES, chunkCount, decodeFooter, decodeIndex,
  type ShardEntry, type ShardFooter, type ShardIndex,
} from './format.ts';

/** Ranged reads of one immutable shard object. A short result means the object is shorter than it claimed. */
export interface RangeSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Where the first read of a shard (the tail holding the footer and usually the index) should
   * start, when the source knows better than the default last 64 KiB (the S3 store with a disk
   * tier: from the start of the last cache block, so the tail lands in the disk tier and a restart
   * finds the index without a request).
   */
  readonly tailStart?: number;
}

async function exact(src: RangeSource, offset: number, length: number, part: string): Promise<Buffer> {
  const b = length === 0 ? Buffer.alloc(0) : await src.read(offset, length);
  if (b.length !== length) throw new ShardFormatError(part, `short read: ${b.length} of ${length} bytes at ${offset} (truncated shard?)`);
  return b;
}

/**
 * The footer and the index: one read of the last `tailBytes` (64 KiB), which holds the whole index
 * of a shard of up to about 1,000 small files; a second read only for a larger index.
 */
export async function openShard(src: RangeSource, tailBytes = TAIL_READ_BYTES): Promise<{ footer: ShardFooter; index: ShardIndex }> {
  let tailLen = Math.min(src.size, Math.max(FOOTER_BYTES, tailBytes));
  if (src.tailStart !== undefined && src.tailStart >= 0 && src.tailStart <= src.size - tailLen) tailLen = src.size - src.tailStart;
  const tailStart = src.size - tailLen;
  const tail = await exact(src, tailStart, tailLen, 'footer');
  const footer = decodeFooter(tail, src.size);
  const stored = footer.indexOffset >= tailStart
    ? tail.subarray(footer.indexOffset - tailStart, footer.indexOffset - tailStart + footer.indexStoredLength)
    : await exact(src, footer.indexOffset, footer.indexStoredLength, 'index');
  return { footer, index: decodeIndex(stored, footer) };
}

function payloadError(e: ShardEntry, message: string): ShardFormatError {
  return new ShardFormatError(`payload of ${e.path}`, message);
}

/** The whole original content of a (non-chunked) file entry, verified. */
export async function readWhole(src: RangeSource, e: ShardEntry): Promise<Buffer> {
  return (await readStored(src, e)).data;
}

/**
 * A file's payload as stored and its original bytes, both verified (chunked: every chunk and the
 * table): what verify checks and what repack copies into a new shard without compressing again.
 */
export async function readStored(src: RangeSource, e: ShardEntry): Promise<{ stored: Buffer; data: Buffer }> {
  if (e.chunked) {
    const table = await readChunkTable(src, e);
    const data = await readChunked(src, e, table, 0, e.length);
    return { stored: data, data };
  }
  const stored = await exact(src, e.offset, e.storedLength, `payload of ${e.path}`);
  let data: Buffer;
  try {
    data = decompress(e.codec, stored, e.length);
  } catch (err) {
    if (err instanceof CodecError) throw payloadError(e, err.message);
    throw err;
  }
  if (crc32(data) !== e.crc) throw payloadError(e, 'checksum mismatch');
  return { stored, data };
}

/** The CRC table of a chunked entry (after its payload), verified against the entry's CRC. */
export async function readChunkTable(src: RangeSource, e: ShardEntry): Promise<Uint32Array> {
  const n = chunkCount(e.length);
  const raw = await exact(src, e.offset + e.length, 4 * n, `chunk table of ${e.path}`);
  if (crc32(raw) !== e.crc) throw payloadError(e, 'chunk table checksum mismatch');
  const t = new Uint32Array(n);
  for (let i = 0; i < n; i++) t[i] = raw.readUInt32LE(4 * i);
  return t;
}

/**
 * Bytes [offset, offset + length) of a chunked entry (short at its end): the whole chunks they
 * touch are read and each is checked against its CRC.
 */
export async function readChunked(src: RangeSource, e: ShardEntry, table: Uint32Array, offset: number, length: number): Promise<Buffer> {
  const end = Math.min(e.length, offset + length);
  if (end <= offset) return Buffer.alloc(0);
  const first = Math.floor(offset / CHUNK_BYTES);
  const last = Math.floor((end - 1) / CHUNK_BYTES);
  const from = first * CHUNK_BYTES;
  const to = Math.min(e.length, (last + 1) * CHUNK_BYTES);
  const data = await exact(src, e.offset + from, to - from, `payload of ${e.path}`);
  for (let c = first; c <= last; c++) {
    const s = (c - first) * CHUNK_BYTES;
    if (crc32(data.subarray(s, Math.min(data.length, s + CHUNK_BYTES))) !== table[c]) throw payloadError(e, `checksum mismatch in chunk ${c}`);
  }
  return data.subarray(offset - from, end - from);
}
