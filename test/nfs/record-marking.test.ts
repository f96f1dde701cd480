/**
 * TCP record marking (RFC 5531 §11): reassembly across fragments and across arbitrary TCP
 * segment boundaries, the record-size bound, zero copy for a record in one chunk, and receiving in
 * place (reads landing in a large record's pooled buffer, small ones copied out of a reused buffer).
 */
import { describe, expect, it } from 'vitest';
import { RecordMarkingError, RecordParser, frameRecord, recordMark } from '../../protocols/nfs/record-marking.ts';

describe('RecordParser', () => {
  it('returns a single-fragment record in one chunk as a view of that chunk', () => {
    const rec = Buffer.from('0123456789abcdef');
    const wire = frameRecord(rec);
    expect(wire.subarray(0, 4).toString('hex')).toBe('80000010');
    const [out, ...rest] = new RecordParser().push(wire);
    expect(rest).toEqual([]);
    expect(out?.equals(rec)).toBe(true);
    expect(out?.buffer).toBe(wire.buffer);
  });

  it('reassembles fragments split at every byte boundary', () => {
    const rec = Buffer.from(Array.from({ length: 37 }, (_, i) => i));
    const wire = Buffer.concat([frameRecord(rec, 5), frameRecord(Buffer.from('next'), 3)]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const p = new RecordParser();
      const got = [...p.push(wire.subarray(0, cut)), ...p.push(wire.subarray(cut))];
      expect(got.map((b) => b.toString('hex'))).toEqual([rec.toString('hex'), Buffer.from('next').toString('hex')]);
      expect(p.buffered).toBe(0);
    }
  });

  it('reassembles a record fed one byte at a time, with zero-length fragments in it', () => {
    const wire = Buffer.concat([Buffer.from('00000000', 'hex'), Buffer.from('00000002', 'hex'), Buffer.from('ab'), recordMark(1), Buffer.from('c')]);
    const p = new RecordParser();
    const out: Buffer[] = [];
    for (const b of wire) out.push(...p.push(Buffer.from([b])));
    expect(out.map((b) => b.toString())).toEqual(['abc']);
  });

  it('refuses a record over the bound as soon as a header announces it, holding nothing', () => {
    const p = new RecordParser(1000);
    expect(p.push(Buffer.from('800003e8', 'hex'))).toEqual([]);
    expect(p.error).toBeInstanceOf(RecordMarkingError);
    expect(p.buffered).toBe(0);
    expect(p.push(Buffer.from('80000001 00', 'hex'))).toEqual([]);
  });

  it('still returns the records completed before the refused one', () => {
    const p = new RecordParser(1000);
    const out = p.push(Buffer.concat([frameRecord(Buffer.from('first')), Buffer.from('80100000', 'hex'), Buffer.alloc(100)]));
    expect(out.map((b) => b.toString())).toEqual(['first']);
    expect(p.error).toBeInstanceOf(RecordMarkingError);
  });

  it('counts fragment headers and bodies together against the bound', () => {
    const rec = Buffer.alloc(900);
    const ok = new RecordParser(1000);
    expect(ok.push(frameRecord(rec, 300)).length).toBe(1);
    expect(ok.error).toBeUndefined();
    // The same 900 bytes in 100 fragments of 9: 900 + 400 header bytes > 1000.
    const many = new RecordParser(1000);
    expect(many.push(frameRecord(rec, 9))).toEqual([]);
    expect(many.error).toBeInstanceOf(RecordMarkingError);
    // The largest announced fragment (2^31 - 1).
    const huge = new RecordParser();
    huge.push(Buffer.from('ffffffff', 'hex'));
    expect(huge.error).toBeInstanceOf(RecordMarkingError);
  });

  it('receiving in place: random streams of small, large and multi-fragment records, read at random sizes into a reused buffer or the landing zone, come out whole', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 20; round++) {
      const recs: Buffer[] = [];
      const frames: Buffer[] = [];
      for (let i = 0; i < 8; i++) {
        const size = [0, 1, 100, 70_000, 300_000, 1024 * 1024][rnd(6)]!;
        const rec = Buffer.alloc(size);
        for (let k = 0; k < size; k += 997) rec[k] = (k + i + round) & 0xff;
        recs.push(rec);
        // Some records in several fragments (never received in place), most in one.
        frames.push(rnd(4) === 0 && size > 0 ? frameRecord(rec, Math.max(1, size >> 2)) : frameRecord(rec));
      }
      const wire = Buffer.concat(frames);
      const p = new RecordParser(2 * 1024 * 1024);
      p.receivesInPlace = true;
      const scratch = Buffer.alloc(64 * 1024);
      const got: Buffer[] = [];
      let at = 0;
      for (let reads = 0; at < wire.length && reads < 100_000; reads++) {
        const zone = p.landingZone();
        const target = zone ?? scratch;
        const n = Math.min(target.length, wire.length - at, 1 + rnd(80_000));
        wire.copy(target, 0, at, at + n);
        at += n;
        got.push(...(zone ? p.landed(n) : p.push(scratch.subarray(0, n), true)));
        // The reused buffer is overwritten by the next read: nothing returned may refer to it.
        scratch.fill(0xee);
      }
      expect(p.error).toBeUndefined();
      expect(got.length).toBe(recs.length);
      got.forEach((g, i) => expect(g.equals(recs[i]!)).toBe(true));
      expect(p.buffered).toBe(0);
    }
  });
});
