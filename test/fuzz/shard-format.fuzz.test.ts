/**
 * Property tests for the shard format's decoders (backends/shard/format*.ts): shards are read from
 * storage that can rot, be truncated by a failed copy, or hold someone else's bytes, so every
 * decoder must be total and bounded: a ShardFormatError naming the part, or data that is exactly what
 * was packed (checksums verified on read) - never another exception, never wrong bytes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { crc32 } from 'node:zlib';
import { CODECS, encodeFor, type Codec } from '../../backends/shard/codec.ts';
import {
  FOOTER_BYTES, HEADER_BYTES, ShardFormatError, decodeFooter, decodeHeader, decodeIndex, encodeFooter, encodeIndex,
  type ShardEntry, type ShardIndex,
} from '../../backends/shard/format.ts';
import { openShard, readChunkTable, readChunked, readWhole, type RangeSource } from '../../backends/shard/format-read.ts';
import { ShardWriter } from '../../backends/shard/format-write.ts';

const RUNS = 150;

function flip(b: Buffer, at: number, x: number): void {
  b.writeUInt8(((b[at] as number) ^ x) & 0xff, at);
}

function source(b: Buffer): RangeSource {
  return { size: b.length, read: async (o, l) => Buffer.from(b.subarray(o, Math.min(b.length, o + l))) };
}

interface Packed {
  shard: Buffer;
  files: Map<string, Buffer>;
}

async function build(files: [string, Buffer, Codec | 'auto'][], alignment: number): Promise<Packed> {
  const chunks: Buffer[] = [];
  const w = new ShardWriter(async (c) => void chunks.push(...c), { alignment, createdMs: 1 });
  const map = new Map<string, Buffer>();
  const dirs = new Set<string>();
  for (const [path, data, policy] of files) {
    if (map.has(path) || dirs.has(path)) continue;
    const parts = path.split('/');
    let clash = false;
    for (let i = 2; i < parts.length; i++) if (map.has(parts.slice(0, i).join('/'))) clash = true;
    if (clash) continue;
    for (let i = 2; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        w.addDir(d, 0o755, 5n);
      }
    }
    map.set(path, data);
    const { codec, stored } = encodeFor(policy, path, data);
    await w.addFile({ path, mode: 0o644, mtimeNs: 7n, codec, stored, length: data.length, crc: crc32(data) });
  }
  await w.finish();
  return { shard: Buffer.concat(chunks), files: map };
}

const name = fc.oneof(
  fc.constantFrom('a', 'b.txt', 'é', 'e\u0301x', 'Z', 'img.jpg', '日本', '\u{1f600}', 'a-b', 'a0'),
  fc.stringMatching(/^[a-z0-9._-]{1,12}$/).filter((s) => s !== '.' && s !== '..'),
);
const filePath = fc.array(name, { minLength: 1, maxLength: 4 }).map((s) => '/' + s.map((x) => x.normalize('NFC')).join('/'));
const content = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }).map((u) => Buffer.from(u)),
  fc.tuple(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 200 })).map(([s, n]) => Buffer.from(s.repeat(n))),
);
const fileList = fc.array(fc.tuple(filePath, content, fc.constantFrom<Codec | 'auto'>('auto', ...CODECS)), { minLength: 1, maxLength: 25 });

/** Every file readable is exactly its packed bytes; every failure is a ShardFormatError. */
async function checkAll(shard: Buffer, files: Map<string, Buffer>): Promise<number> {
  let idx: ShardIndex;
  try {
    ({ index: idx } = await openShard(source(shard)));
  } catch (e) {
    expect(e).toBeInstanceOf(ShardFormatError);
    return -1;
  }
  let ok = 0;
  for (let i = 0; i < idx.count; i++) {
    const e = idx.entry(i);
    if (e.type === 'dir') continue;
    try {
      const data = await readWhole(source(shard), e);
      const want = files.get(e.path);
      expect(want, `a path that was never packed: ${e.path}`).toBeDefined();
      expect(data.equals(want as Buffer)).toBe(true);
      ok++;
    } catch (err) {
      expect(err).toBeInstanceOf(ShardFormatError);
    }
  }
  return ok;
}

describe('shard format', () => {
  it('round-trips files of every codec, alignment and name', async () => {
    await fc.assert(fc.asyncProperty(fileList, fc.constantFrom(1, 512, 4096), async (list, align) => {
      const { shard, files } = await build(list, align);
      expect(decodeHeader(shard).alignment).toBe(align);
      const { index } = await openShard(source(shard));
      const seen = new Set<string>();
      for (let i = 0; i < index.count; i++) {
        const e = index.entry(i);
        if (e.type === 'file') {
          seen.add(e.path);
          expect((await readWhole(source(shard), e)).equals(files.get(e.path) as Buffer)).toBe(true);
          // Alignment: a payload no longer than it never crosses one of its boundaries.
          if (e.storedLength > 0 && e.storedLength <= align) expect(Math.floor(e.offset / align)).toBe(Math.floor((e.offset + e.storedLength - 1) / align));
        }
        expect(index.find(e.path)).toBe(i);
      }
      expect(seen).toEqual(new Set(files.keys()));
    }), { numRuns: runs(RUNS) });
  });

  it('stores large files chunked and verifies each chunk of a ranged read', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 124);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    const chunks: Buffer[] = [];
    const w = new ShardWriter(async (c) => void chunks.push(...c));
    await w.addFile({ path: '/big.bin', mode: 0o600, mtimeNs: 1n, codec: 'none', stored: big, length: big.length, crc: crc32(big) });
    await w.finish();
    const shard = Buffer.concat(chunks);
    const { index } = await openShard(source(shard));
    const e = index.entry(0);
    expect(e.chunked).toBe(true);
    const table = await readChunkTable(source(shard), e);
    expect((await readChunked(source(shard), e, table, 1024 * 1024 - 10, 20)).equals(big.subarray(1024 * 1024 - 10, 1024 * 1024 + 10))).toBe(true);
    expect((await readChunked(source(shard), e, table, big.length - 5, 100)).equals(big.subarray(big.length - 5))).toBe(true);
    // A flipped byte in chunk 3 fails reads of chunk 3 only.
    const bad = Buffer.from(shard);
    flip(bad, (e.offset + 3 * 1024 * 1024 + 77), 1);
    await expect(readChunked(source(bad), e, table, 3 * 1024 * 1024, 10)).rejects.toThrow(/checksum mismatch in chunk 3/);
    expect((await readChunked(source(bad), e, table, 0, 10)).equals(big.subarray(0, 10))).toBe(true);
  });

  it('flipped bytes and truncation give a precise error or the exact packed bytes', async () => {
    await fc.assert(fc.asyncProperty(fileList, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.option(fc.nat()), async (list, flips, cut) => {
      const { shard, files } = await build(list, 512);
      let bad = Buffer.from(shard);
      for (const [pos, x] of flips) flip(bad, pos % bad.length, x);
      if (cut !== null) bad = bad.subarray(0, cut % bad.length);
      await checkAll(bad, files);
    }), { numRuns: runs(RUNS) });
  });

  it('a corrupted payload is an error naming the file, never its bytes', async () => {
    const { shard, files } = await build([['/d/x.txt', Buffer.from('hello '.repeat(500)), 'zstd'], ['/d/y.bin', Buffer.from('raw bytes'.repeat(30)), 'none'], ['/d/z', Buffer.from('q'.repeat(900)), 'lz4'], ['/g', Buffer.from('g'.repeat(900)), 'gzip']], 1);
    const { index } = await openShard(source(shard));
    for (const p of files.keys()) {
      const e = index.entry(index.find(p));
      for (const at of [0, Math.floor(e.storedLength / 2), e.storedLength - 1]) {
        const bad = Buffer.from(shard);
        flip(bad, e.offset + at, 0x40);
        await expect(readWhole(source(bad), e)).rejects.toThrow(new RegExp(`payload of ${p}`));
      }
    }
  });

  it('decoders take any bytes: an error or a value, never a crash', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (u, size) => {
      const b = Buffer.from(u);
      for (const f of [() => decodeHeader(b), () => decodeFooter(b, size), () => decodeFooter(b, b.length)]) {
        try {
          f();
        } catch (e) {
          expect(e).toBeInstanceOf(ShardFormatError);
        }
      }
    }), { numRuns: runs(2000) });
  });

  it('an index with valid checksums but hostile fields is refused entry by entry, bounded', async () => {
    // The checksums are recomputed after the mutation: the entry-level validation is what must hold.
    await fc.assert(fc.asyncProperty(fileList, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.option(fc.nat(0xffffffff)), async (list, edits, count) => {
      const { shard } = await build(list, 1);
      const { footer, index } = await openShard(source(shard));
      const entries = [];
      for (let i = 0; i < index.count; i++) entries.push(index.entry(i));
      const raw = encodeIndex(entries);
      for (const [pos, v] of edits) raw.writeUInt8(v, pos % raw.length);
      const data = shard.subarray(0, footer.indexOffset);
      const foot = encodeFooter({ indexOffset: footer.indexOffset, indexStoredLength: raw.length, indexLength: raw.length, entryCount: count ?? footer.entryCount, indexCodec: 'none', indexCrc: crc32(raw) });
      const hostile = Buffer.concat([data, raw, foot]);
      const t0 = performance.now();
      let idx: ShardIndex;
      try {
        ({ index: idx } = await openShard(source(hostile)));
      } catch (e) {
        expect(e).toBeInstanceOf(ShardFormatError);
        return;
      } finally {
        expect(performance.now() - t0).toBeLessThan(2000);
      }
      for (let i = 0; i < idx.count; i++) {
        const e = idx.entry(i);
        expect(e.offset + e.storedLength).toBeLessThanOrEqual(footer.indexOffset);
        if (e.type === 'dir') continue;
        try {
          const got = await readWhole(source(hostile), e);
          expect(got.length).toBe(e.length);
          expect(crc32(got)).toBe(e.crc);
        } catch (err) {
          expect(err).toBeInstanceOf(ShardFormatError);
        }
      }
    }), { numRuns: runs(RUNS) });
  });

  it('an empty payload whose offset lies past the data region is refused (fuzz counterexample of seed -976938297)', async () => {
    const { shard } = await build([['/a', Buffer.alloc(0), 'auto'], ['/b', Buffer.alloc(0), 'auto']], 1);
    const { footer, index } = await openShard(source(shard));
    const entries: ShardEntry[] = [];
    for (let i = 0; i < index.count; i++) entries.push(index.entry(i));
    const rebuild = (offset: number): Buffer => {
      const raw = encodeIndex(entries.map((e) => (e.path === '/b' ? { ...e, offset } : e)));
      const foot = encodeFooter({ indexOffset: footer.indexOffset, indexStoredLength: raw.length, indexLength: raw.length, entryCount: footer.entryCount, indexCodec: 'none', indexCrc: crc32(raw) });
      return Buffer.concat([shard.subarray(0, footer.indexOffset), raw, foot]);
    };
    await expect(openShard(source(rebuild(footer.indexOffset + 1)))).rejects.toThrow(/outside the data region .*\/b/);
    await expect(openShard(source(rebuild(1)))).rejects.toThrow(/outside the data region/);
    const ok = await openShard(source(rebuild(0)));
    expect(ok.index.entry(ok.index.find('/b')).length).toBe(0);
  });

  it('names the part that is wrong', async () => {
    const { shard } = await build([['/a', Buffer.from('x'.repeat(100)), 'none']], 1);
    await expect(openShard(source(shard.subarray(0, shard.length - 1)))).rejects.toThrow(/shard footer: bad magic/);
    const f = Buffer.from(shard);
    flip(f, f.length - FOOTER_BYTES + 2, 1);
    await expect(openShard(source(f))).rejects.toThrow(/shard footer: checksum mismatch/);
    const i = Buffer.from(shard);
    flip(i, i.length - FOOTER_BYTES - 3, 1);
    await expect(openShard(source(i))).rejects.toThrow(/shard index: checksum mismatch/);
    const h = Buffer.from(shard);
    flip(h, 3, 1);
    expect(() => decodeHeader(h)).toThrow(/shard header: bad magic/);
    expect(() => decodeFooter(Buffer.alloc(10), HEADER_BYTES + FOOTER_BYTES)).toThrow(/shard footer: truncated/);
  });
});
