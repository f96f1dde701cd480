/**
 * One file's preparation for a shard (in a worker thread or inline): its bytes, codec, payload and
 * CRC. Files over WHOLE_MAX_BYTES do not come here: the packer streams them (ShardWriter.addChunkedStream).
 */
import { WHOLE_MAX_BYTES } from './format.ts';
import { encodeFor, type Codec } from './codec.ts';

export interface PrepareTask {
  /** Filesystem path to read. */
  file: string;
  /** Name (for the codec choice by type). */
  name: string;
  policy: Codec | 'auto';
  level?: number | undefined;
  /** The file's bytes when the main thread fetched them (an S3 source): `file` is then not read. */
  data?: Uint8Array | undefined;
}

export interface Prepared {
  codec: Codec;
  stored: Uint8Array;
  length: number;
  crc: number;
}

export async function prepareFile(t: PrepareTask, read: (file: string) => Promise<Buffer>, crc32: (b: Uint8Array) => number): Promise<Prepared> {
  const data = t.data !== undefined ? Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) : await read(t.file);
  const crc = crc32(data);
  if (data.length > WHOLE_MAX_BYTES) return { codec: 'none', stored: data, length: data.length, crc };
  const { codec, stored } = encodeFor(t.policy, t.name, data, t.level);
  return { codec, stored, length: data.length, crc };
}
