/**
 * Building one shard (docs/shard-format.md): the header, then payloads appended as they come
 * (padded so that a payload no longer than the alignment never crosses an alignment boundary: a
 * small file's read is then one page of the S3 read engine, one ranged GET), then the index sorted
 * by path bytes and the footer. Output goes to a sink in order; nothing is held but the entries.
 */
import { crc32 } from 'node:zlib';
import {
  CHUNK_BYTES, FOOTER_BYTES, HEADER_BYTES, WHOLE_MAX_BYTES, comparePathBytes, encodeFooter, encodeHeader, encodeIndex, packIndex,
  type ShardEntry,
} from './format.ts';
import type { Codec } from './codec.ts';

export type ShardSinkWrite = (chunks: Buffer[]) => Promise<void>;

export interface FinishedShard {
  size: number;
  entries: number;
  files: number;
  /** Original bytes of the files. */
  bytes: number;
  first: string;
  last: string;
  indexCrc: number;
}

/** A file's payload as the packer prepared it (codec chosen, checksum taken). */
export interface PreparedFile {
  path: string;
  mode: number;
  mtimeNs: bigint;
  codec: Codec;
  /** The payload as stored (chunked: the original bytes; the CRC table is added here). */
  stored: Buffer;
  length: number;
  /** CRC-32 of the original bytes (whole payloads). */
  crc: number;
}

export const DEFAULT_ALIGNMENT = 128 * 1024;

export class ShardWriter {
  private readonly sink: ShardSinkWrite;
  private readonly alignment: number;
  private pos = 0;
  private readonly entries: ShardEntry[] = [];
  private started = false;
  private bytes = 0;

  constructor(sink: ShardSinkWrite, o: { alignment?: number; createdMs?: number } = {}) {
    this.sink = sink;
    this.alignment = o.alignment ?? DEFAULT_ALIGNMENT;
    this.header = encodeHeader({ alignment: this.alignment, createdMs: o.createdMs ?? Date.now() });
  }

  private readonly header: Buffer;

  /** Bytes written so far (the shard's size if it were finished now, without index and footer). */
  get size(): number {
    return Math.max(this.pos, HEADER_BYTES);
  }

  get entryCount(): number {
    return this.entries.length;
  }

  addDir(path: string, mode: number, mtimeNs: bigint): void {
    this.entries.push({ path, type: 'dir', codec: 'none', chunked: false, mode, mtimeNs, offset: 0, storedLength: 0, length: 0, crc: 0 });
  }

  async addFile(f: PreparedFile): Promise<void> {
    const out: Buffer[] = [];
    if (!this.started) {
      out.push(this.header);
      this.pos = HEADER_BYTES;
      this.started = true;
    }
    const chunked = f.length > WHOLE_MAX_BYTES;
    let payload = [f.stored];
    let storedLength = f.stored.length;
    let crc = f.crc;
    if (chunked) {
      if (f.codec !== 'none' || f.stored.length !== f.length) throw new Error(`large file ${f.path} must be stored without a codec`);
      const n = Math.ceil(f.length / CHUNK_BYTES);
      const table = Buffer.alloc(4 * n);
      for (let i = 0; i < n; i++) table.writeUInt32LE(crc32(f.stored.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES)), 4 * i);
      payload = [f.stored, table];
      storedLength += table.length;
      crc = crc32(table);
    }
    const A = this.alignment;
    if (A > 1 && storedLength > 0 && storedLength <= A) {
      const next = Math.ceil((this.pos + 1) / A) * A;
      if (this.pos % A !== 0 && this.pos + storedLength > next) {
        out.push(Buffer.alloc(next - this.pos));
        this.pos = next;
      }
    }
    this.entries.push({ path: f.path, type: 'file', codec: f.codec, chunked, mode: f.mode, mtimeNs: f.mtimeNs, offset: storedLength === 0 ? 0 : this.pos, storedLength, length: f.length, crc });
    out.push(...payload);
    this.pos += storedLength;
    this.bytes += f.length;
    await this.sink(out);
  }

  /**
   * A large file streamed into the shard as a chunked payload (its bytes, then one CRC per 1 MiB
   * chunk): memory stays at one read buffer whatever the file's size. Returns the bytes written.
   */
  async addChunkedStream(f: { path: string; mode: number; mtimeNs: bigint }, source: AsyncIterable<Uint8Array>): Promise<number> {
    if (!this.started) {
      await this.sink([this.header]);
      this.pos = HEADER_BYTES;
      this.started = true;
    }
    const offset = this.pos;
    const crcs: number[] = [];
    let cur = 0;
    let curLen = 0;
    let length = 0;
    for await (const piece of source) {
      const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      for (let o = 0; o < buf.length; ) {
        const take = Math.min(buf.length - o, CHUNK_BYTES - curLen);
        cur = crc32(buf.subarray(o, o + take), cur);
        curLen += take;
        o += take;
        if (curLen === CHUNK_BYTES) {
          crcs.push(cur);
          cur = 0;
          curLen = 0;
        }
      }
      await this.sink([buf]);
      length += buf.length;
    }
    if (curLen > 0) crcs.push(cur);
    const table = Buffer.alloc(4 * crcs.length);
    crcs.forEach((c, i) => table.writeUInt32LE(c >>> 0, 4 * i));
    await this.sink([table]);
    this.pos += length + table.length;
    this.bytes += length;
    this.entries.push({
      path: f.path, type: 'file', codec: 'none', chunked: true, mode: f.mode, mtimeNs: f.mtimeNs,
      offset: length === 0 ? 0 : offset, storedLength: length + table.length, length, crc: crc32(table),
    });
    return length;
  }

  /** Writes the index and the footer. */
  async finish(): Promise<FinishedShard> {
    const out: Buffer[] = [];
    if (!this.started) {
      out.push(this.header);
      this.pos = HEADER_BYTES;
      this.started = true;
    }
    const sorted = this.entries
      .map((e) => ({ e, k: Buffer.from(e.path, 'utf8') }))
      .sort((a, b) => comparePathBytes(a.k, b.k))
      .map((x) => x.e);
    const raw = encodeIndex(sorted);
    const { stored, codec } = packIndex(raw);
    const indexCrc = crc32(stored);
    out.push(stored, encodeFooter({ indexOffset: this.pos, indexStoredLength: stored.length, indexLength: raw.length, entryCount: sorted.length, indexCodec: codec, indexCrc }));
    await this.sink(out);
    const size = this.pos + stored.length + FOOTER_BYTES;
    return {
      size,
      entries: sorted.length,
      files: sorted.filter((e) => e.type === 'file').length,
      bytes: this.bytes,
      first: sorted[0]?.path ?? '',
      last: sorted[sorted.length - 1]?.path ?? '',
      indexCrc,
    };
  }
}
