/**
 * encodeFileFattr (server/attrs.ts) writes a file's fattr4 straight from its FileAttr: it must
 * give, byte for byte, what the generic path gives (encodeFattr over fileValues) for any file,
 * request bitmap (known, unknown and write-only attributes, several words), minor version, export
 * and with or without the handle; and the writer's fast paths (u32 by bytes, short ASCII strings)
 * the same bytes as Buffer's own writes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { encodeFileFattr, encodeFileFattrGeneric } from '../../protocols/nfs/server/attrs.ts';
import { FATTR4 } from '../../protocols/nfs/nfs4-types.ts';
import { bitmapOf } from '../../protocols/nfs/xdr4/common.ts';
import { XdrWriter } from '../../protocols/nfs/xdr.ts';
import type { NfsExport } from '../../protocols/nfs/server/exports.ts';
import type { FileAttr } from '../../src/vfs/types.ts';

const exportOf = (name: string, fsidMajor: bigint, caseInsensitive: boolean, maxRead: number, maxWrite: number): NfsExport => ({
  name,
  key: Buffer.alloc(8, name.length),
  keyHex: '',
  fsidMajor,
  caseInsensitive,
  readOnly: false,
  maxRead,
  maxWrite,
  clients: undefined,
});
const EXPORTS = [exportOf('a', 1n, false, 1 << 20, 1 << 20), exportOf('bb', 2n ** 62n + 5n, true, 65536, 4096)];

const ns = fc.oneof(fc.bigInt({ min: -(2n ** 62n), max: 2n ** 63n - 1n }), fc.bigInt({ min: 0n, max: 2_000_000_000_000_000_000n }), fc.constantFrom(0n, -1n, 999_999_999n, 1_000_000_000n));
const size = fc.oneof(fc.nat(), fc.constantFrom(0, 4096, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER, 2 ** 60));
const fileAttr: fc.Arbitrary<FileAttr> = fc.record({
  id: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
  type: fc.constantFrom('file', 'dir', 'symlink'),
  size,
  allocated: size,
  mode: fc.nat({ max: 0o177777 }),
  uid: fc.oneof(fc.nat({ max: 70000 }), fc.constant(4294967295)),
  gid: fc.nat({ max: 70000 }),
  nlink: fc.nat({ max: 70000 }),
  atimeNs: ns,
  mtimeNs: ns,
  ctimeNs: ns,
  birthtimeNs: ns,
  change: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  winAttributes: fc.nat(),
}) as fc.Arbitrary<FileAttr>;
/** Attribute numbers 0-90 (some unknown, some write-only), as a bitmap of up to 3 words (trailing zeros too). */
const request = fc.uniqueArray(fc.nat({ max: 90 }), { maxLength: 40 }).chain((nums) =>
  fc.nat({ max: 2 }).map((extra) => {
    const b = bitmapOf(nums);
    for (let i = 0; i < extra; i++) b.push(0);
    return b;
  }),
);
const LINUX = bitmapOf([FATTR4.TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.FSID, FATTR4.FILEID, FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.RAWDEV, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_METADATA, FATTR4.TIME_MODIFY, FATTR4.MOUNTED_ON_FILEID, FATTR4.RDATTR_ERROR, FATTR4.FILEHANDLE]);

function both(minor: number, exp: NfsExport, req: number[], a: FileAttr, fh: Buffer | undefined, prefix: number): [string, string] {
  const fast = new XdrWriter(64);
  const slow = new XdrWriter(64);
  // A prefix moves the encoding across the writer's chunk boundaries.
  for (let i = 0; i < prefix; i++) {
    fast.u32(i);
    slow.u32(i);
  }
  encodeFileFattr(fast, minor, exp, req, a, fh);
  encodeFileFattrGeneric(slow, minor, exp, req, a, fh);
  return [fast.toBuffer().toString('hex'), slow.toBuffer().toString('hex')];
}

describe('encodeFileFattr', () => {
  it('writes what encodeFattr(fileValues(...)) writes, for any file and request', () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 1, 2), fc.constantFrom(...EXPORTS), fc.oneof(request, fc.constant(LINUX)), fileAttr, fc.option(fc.uint8Array({ minLength: 0, maxLength: 128 }).map((u) => Buffer.from(u))), fc.nat({ max: 600 }), (minor, exp, req, a, fh, prefix) => {
        const [fast, slow] = both(minor, exp, req, a, fh ?? undefined, prefix);
        expect(fast).toBe(slow);
      }),
      { numRuns: runs(3000) },
    );
  });

  it('keeps plans apart by export, minor version, handle and request (many requests in turn)', () => {
    const a: FileAttr = { id: 42n, type: 'file', size: 5, allocated: 4096, mode: 0o644, uid: 1000, gid: 100, nlink: 1, atimeNs: 1n, mtimeNs: 2n, ctimeNs: 3n, birthtimeNs: 4n, change: 9n, winAttributes: 0 };
    const reqs = Array.from({ length: 40 }, (_, i) => bitmapOf([FATTR4.TYPE, FATTR4.SIZE, i + 1, (i * 7) % 60]));
    for (let round = 0; round < 3; round++)
      for (const req of reqs)
        for (const exp of EXPORTS)
          for (const minor of [0, 1, 2])
            for (const fh of [undefined, Buffer.alloc(28, 1)]) {
              const [fast, slow] = both(minor, exp, req, a, fh, 0);
              expect(fast).toBe(slow);
            }
  });
});

describe('XdrWriter fast paths', () => {
  it('u32 writes value >>> 0 big-endian for any number', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }), fc.double(), fc.constantFrom(2 ** 32 + 5, -1, NaN, 1.5, Infinity)), (v) => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(v >>> 0, 0);
        expect(new XdrWriter().u32(v).toBuffer().toString('hex')).toBe(b.toString('hex'));
      }),
    );
  });

  it('string writes the UTF-8 bytes, length and padding (ASCII, non-ASCII, lone surrogates, long)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: fc.constantFrom('a', '\u007f', '\u0080', '\u00e9', '\ud800', '\udc00', '\u{1f600}'), maxLength: 20 }), fc.constantFrom('', 'x'.repeat(256), 'x'.repeat(257), `${'x'.repeat(255)}\u00e9`)), fc.nat({ max: 700 }), (s, prefix) => {
        const w = new XdrWriter(64);
        for (let i = 0; i < prefix; i++) w.u32(0);
        w.string(s).u32(0xabcdef01);
        const bytes = Buffer.from(s, 'utf8');
        const pad = (4 - (bytes.length & 3)) & 3;
        const want = Buffer.concat([Buffer.alloc(prefix * 4), Buffer.from([0, 0, 0, 0]), bytes, Buffer.alloc(pad), Buffer.from([0xab, 0xcd, 0xef, 0x01])]);
        want.writeUInt32BE(bytes.length, prefix * 4);
        expect(w.toBuffer().toString('hex')).toBe(want.toString('hex'));
      }),
    );
  });
});
