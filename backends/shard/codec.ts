/**
 * Per-file codecs of the shard format (docs/shard-format.md, "Codecs"): none, zstd, lz4, gzip.
 *
 * zstd and gzip are Node 24's own zlib. lz4 is `lz4-napi` (LZ4 block format with the original size
 * as a 4-byte little-endian prefix, lz4_flex's `compress_prepend_size`), chosen by measurement on
 * 16 KiB chunks of source text (2-core machine at load ~6, CPU time): lz4-napi 330 MB/s compress,
 * 850-1,500 MB/s decompress; lz4js (pure JS) 70-100 and 11; zstd level 3 145 and 310; gzip 55 and
 * 210. lz4-napi ships prebuilt binaries as optional dependencies and runs no install script.
 *
 * Every decode is bounded by the original length the index gives (which the index parser bounded
 * already): zlib stops at maxOutputLength; lz4's size prefix must equal it before anything is
 * decoded, because lz4-napi does not validate its input (a flipped byte decodes to wrong bytes
 * without an error, a cut stream to a short result). Whatever a codec returns is then checked
 * against the length and the CRC-32 in the index by the caller (format.ts): a codec is never
 * trusted to notice corruption.
 */
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import zlib from 'node:zlib';

export const CODECS = ['none', 'zstd', 'lz4', 'gzip'] as const;
export type Codec = (typeof CODECS)[number];

/** Wire numbers (the index entry's codec byte). */
export const CODEC_ID: Record<Codec, number> = { none: 0, zstd: 1, lz4: 2, gzip: 3 };

export function codecOf(id: number): Codec | undefined {
  return CODECS[id];
}

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

export function compress(codec: Codec, data: Buffer, level?: number): Buffer {
  switch (codec) {
    case 'none':
      return data;
    case 'zstd':
      return zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level ?? 3 } });
    case 'gzip':
      return zlib.gzipSync(data, { level: level ?? 6 });
    case 'lz4':
      return lz4Compress(data);
  }
}

/** The original bytes of `stored`, exactly `origLen` of them, or a CodecError. */
export function decompress(codec: Codec, stored: Buffer, origLen: number): Buffer {
  let out: Buffer;
  try {
    switch (codec) {
      case 'none':
        out = stored;
        break;
      case 'zstd':
        out = zlib.zstdDecompressSync(stored, { maxOutputLength: Math.max(1, origLen) });
        break;
      case 'gzip':
        out = zlib.gunzipSync(stored, { maxOutputLength: Math.max(1, origLen) });
        break;
      case 'lz4': {
        if (stored.length < 4) throw new CodecError('lz4 payload shorter than its size prefix');
        const prefix = stored.readUInt32LE(0);
        if (prefix !== origLen) throw new CodecError(`lz4 size prefix ${prefix} differs from the index's length ${origLen}`);
        out = origLen === 0 ? Buffer.alloc(0) : lz4Uncompress(stored);
        break;
      }
    }
  } catch (e) {
    if (e instanceof CodecError) throw e;
    throw new CodecError(`${codec} payload does not decode: ${(e as Error).message}`);
  }
  if (out.length !== origLen) throw new CodecError(`${codec} payload decodes to ${out.length} bytes, the index says ${origLen}`);
  return out;
}

/**
 * Extensions of formats that are compressed already: stored as they are (`auto` does not spend a
 * compression attempt on them).
 */
const COMPRESSED_EXT = new Set([
  'jpg', 'jpeg', 'png', 'gif', 'webp', 'avif', 'heic', 'jxl', 'mp3', 'mp4', 'm4a', 'm4v', 'mkv', 'webm', 'mov', 'ogg', 'opus', 'flac',
  'zip', 'gz', 'tgz', 'bz2', 'xz', 'zst', 'lz4', '7z', 'rar', 'br', 'jar', 'docx', 'xlsx', 'pptx', 'odt', 'epub', 'pdf', 'woff', 'woff2',
]);

/** Files this small are stored as they are: a frame's overhead eats what compression could save. */
const MIN_COMPRESS_BYTES = 128;
/** A compressed payload must save at least this fraction, or the file is stored as it is (reads stay cheap). */
const MIN_SAVING = 0.1;

/**
 * The payload of one file under a codec policy: `auto` skips already-compressed types and tiny
 * files, tries zstd, and keeps it only when it saves at least 10%; a named codec is used as is
 * (still falling back to none when it would grow the file).
 */
export function encodeFor(policy: Codec | 'auto', name: string, data: Buffer, level?: number): { codec: Codec; stored: Buffer } {
  if (policy === 'none' || data.length < MIN_COMPRESS_BYTES) return { codec: 'none', stored: data };
  let codec: Codec = policy === 'auto' ? 'zstd' : policy;
  if (policy === 'auto') {
    const dot = name.lastIndexOf('.');
    if (dot > 0 && COMPRESSED_EXT.has(name.slice(dot + 1).toLowerCase())) return { codec: 'none', stored: data };
    codec = 'zstd';
  }
  const stored = compress(codec, data, level);
  if (stored.length > data.length * (1 - (policy === 'auto' ? MIN_SAVING : 0))) return { codec: 'none', stored: data };
  return { codec, stored };
}
