/**
 * The bounded XDR reader and the chunked writer (protocols/nfs/xdr.ts): known encodings, round
 * trips, every bound refused with XdrError (never a RangeError), and zero copy both ways.
 */
import { describe, expect, it } from 'vitest';
import { XdrError, XdrReader, XdrWriter } from '../../protocols/nfs/xdr.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function xdrError(f: () => unknown): XdrError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(XdrError);
    return e as XdrError;
  }
  throw new Error('no error');
}

describe('XdrWriter', () => {
  it('encodes integers, hypers, bools, opaques and strings as RFC 4506 says', () => {
    const w = new XdrWriter();
    w.u32(0xdeadbeef).i32(-2).u64(0x0102030405060708n).i64(-1n).bool(true).opaque(Buffer.from('abcde')).string('é');
    expect(w.toBuffer().toString('hex')).toBe(
      'deadbeef' + 'fffffffe' + '0102030405060708' + 'ffffffffffffffff' + '00000001' + '00000005' + '6162636465000000' + '00000002' + 'c3a90000',
    );
  });

  it('u64n writes numbers past 2^32 exactly', () => {
    expect(new XdrWriter().u64n(2 ** 40 + 5).toBuffer().toString('hex')).toBe('0000010000000005');
  });

  it('splices large opaques by reference (READ data is not copied) and patches reserved words', () => {
    const data = Buffer.alloc(64 * 1024, 7);
    const w = new XdrWriter();
    const m = w.reserveU32();
    w.u32(1).opaque(data).u32(2);
    w.patchU32(m, w.length - 4);
    const chunks = w.chunksOut();
    expect(chunks.some((c) => c === data)).toBe(true);
    const all = Buffer.concat(chunks);
    expect(all.readUInt32BE(0)).toBe(all.length - 4);
    expect(all.readUInt32BE(8)).toBe(data.length);
    expect(all.readUInt32BE(all.length - 4)).toBe(2);
  });
});

describe('XdrWriter.slice (READDIR packs its entries into one writer and keeps those that fit)', () => {
  it('is a view of the writer\'s buffer when the range lies in its current chunk, and stays valid as writing goes on', () => {
    const w = new XdrWriter(64);
    w.u32(1).u32(2);
    const a = w.length;
    w.u32(3).string('abc');
    const b = w.length;
    const s = w.slice(a, b);
    w.u32(4);
    expect([...s]).toEqual([0, 0, 0, 3, 0, 0, 0, 3, 97, 98, 99, 0]);
    // A view: no copy of the bytes.
    expect(s.buffer).toBe(w.chunksOut()[0]!.buffer);
    expect(Buffer.concat(w.chunksOut()).subarray(a, b)).toEqual(s);
  });

  it('copies a range that spans chunks (past the first buffer, or around an opaque taken by reference)', () => {
    const w = new XdrWriter(16);
    for (let i = 0; i < 10; i++) w.u32(i);
    w.opaque(Buffer.alloc(2000, 7));
    w.u32(99);
    const ranges = [[0, w.length], [8, 60], [36, w.length - 4], [0, 0], [w.length - 4, w.length]] as const;
    const slices = ranges.map(([a, b]) => w.slice(a, b));
    const all = Buffer.concat(w.chunksOut());
    ranges.forEach(([a, b], i) => expect(slices[i]).toEqual(all.subarray(a, b)));
  });
});

describe('XdrReader', () => {
  it('round-trips every type', () => {
    const w = new XdrWriter();
    w.u32(7).i32(-7).u64(2n ** 63n).i64(-5n).bool(false).opaqueFixed(Buffer.from('xyz')).opaque(Buffer.from('hello')).string('naïve').u32Array([1, 2, 3]);
    const r = new XdrReader(w.toBuffer());
    expect(r.u32()).toBe(7);
    expect(r.i32()).toBe(-7);
    expect(r.u64()).toBe(2n ** 63n);
    expect(r.i64()).toBe(-5n);
    expect(r.bool()).toBe(false);
    expect(r.opaqueFixed(3).toString()).toBe('xyz');
    expect(r.opaque(16).toString()).toBe('hello');
    expect(r.utf8(16)).toBe('naïve');
    expect(r.u32Array(3)).toEqual([1, 2, 3]);
    r.done('test');
  });

  it('opaque data is a view of the input, not a copy (WRITE payloads)', () => {
    const buf = hex('00000003 616263 00');
    const v = new XdrReader(buf).opaque(10);
    expect(v.buffer).toBe(buf.buffer);
    expect(v.byteOffset).toBe(buf.byteOffset + 4);
  });

  it('refuses short input with kind "short" at every width', () => {
    expect(xdrError(() => new XdrReader(hex('000000')).u32()).kind).toBe('short');
    expect(xdrError(() => new XdrReader(hex('00000000 000000')).u64()).kind).toBe('short');
    expect(xdrError(() => new XdrReader(hex('00000008 61626364')).opaque(100)).kind).toBe('short');
    // A length that would pass the end only with its padding.
    expect(xdrError(() => new XdrReader(hex('00000005 6162636465')).opaque(100)).kind).toBe('short');
  });

  it('refuses lengths over their bound before looking for the bytes', () => {
    const e = xdrError(() => new XdrReader(hex('00000101')).opaque(256, 'name'));
    expect(e.kind).toBe('too-long');
    expect(e.message).toContain('name');
    expect(xdrError(() => new XdrReader(hex('ffffffff')).opaque(2 ** 32)).kind).toBe('short');
  });

  it('refuses array counts over their bound or over what the bytes left could hold (no allocation)', () => {
    expect(xdrError(() => new XdrReader(hex('00000011')).u32Array(16)).kind).toBe('too-long');
    // 1,000,000 elements claimed in 8 bytes: refused before any array is made.
    expect(xdrError(() => new XdrReader(hex('000f4240 00000000')).u32Array(2_000_000)).kind).toBe('short');
    expect(xdrError(() => new XdrReader(hex('00000003 00000000')).array(10, 8, (r) => r.u64())).kind).toBe('short');
  });

  it('bools are 0 or 1, enums are their listed values, strings UTF-8 where asked', () => {
    expect(xdrError(() => new XdrReader(hex('00000002')).bool()).kind).toBe('bad-value');
    expect(xdrError(() => new XdrReader(hex('00000009')).enumOf(new Set([0, 1, 2]), 'stable_how4')).kind).toBe('bad-value');
    expect(xdrError(() => new XdrReader(hex('00000002 c328 0000')).utf8(10)).kind).toBe('bad-utf8');
    expect(new XdrReader(hex('00000002 c328 0000')).ascii(10)).toBe('Ã(');
  });

  it('done() refuses trailing bytes', () => {
    const r = new XdrReader(hex('00000001 00000002'));
    r.u32();
    expect(xdrError(() => r.done('x')).kind).toBe('too-long');
  });

  it('a reader over a window of a buffer never reads past its end', () => {
    const buf = hex('00000004 61626364 ffffffff');
    const r = new XdrReader(buf, 0, 8);
    expect(r.opaque(4).toString()).toBe('abcd');
    expect(xdrError(() => r.u32()).kind).toBe('short');
  });
});
