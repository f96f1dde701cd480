/** Direct TCP framing and the SMB2 header/compound layer. */
import { describe, expect, it } from 'vitest';
import { Socket } from 'node:net';
import { FrameParser, MessagePool, frame, writeFramed } from '../../protocols/smb/framing.ts';
import { Command, Flags, RelatedChain, joinCompound, readHeader, splitCompound, headerTemplate, writeHeader, writeResponseHeader, type Smb2Header } from '../../protocols/smb/header.ts';
import { WireWriter } from '../../protocols/smb/wire.ts';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { STATUS } from '../../protocols/smb/status.ts';
import { SmbDecodeError } from '../../protocols/smb/wire.ts';
import { encodeEmpty } from '../../protocols/smb/messages/simple.ts';
import { element } from './helpers.ts';
import { receiveInPlace } from '../../src/util/receive-in-place.ts';

describe('FrameParser', () => {
  it('reassembles messages split at every byte and joined in one chunk', () => {
    const msgs = [Buffer.from('a'.repeat(70)), Buffer.from('b'.repeat(5)), Buffer.from('c'.repeat(300))];
    const stream = Buffer.concat(msgs.map(frame));
    for (let cut = 0; cut <= stream.length; cut++) {
      const p = new FrameParser();
      const a = p.push(stream.subarray(0, cut));
      const b = p.push(stream.subarray(cut));
      expect([...a.messages, ...b.messages]).toEqual(msgs);
      expect(a.error ?? b.error).toBeUndefined();
    }
    const p = new FrameParser();
    const one = Buffer.concat(msgs.map(frame));
    expect(p.push(one).messages.map((m) => m.length)).toEqual([70, 5, 300]);
  });

  it('refuses an oversized message at its header, before buffering, and stays failed', () => {
    const p = new FrameParser(1000);
    const h = Buffer.from([0, 0, 0x03, 0xe9]); // 1001
    const r = p.push(h);
    expect(r.error?.kind).toBe('too-large');
    expect(p.buffered).toBe(0);
    expect(p.push(Buffer.from([0, 0, 0, 1, 1])).error?.kind).toBe('failed');
  });

  it('refuses a non-zero first byte and an empty message, as values', () => {
    expect(new FrameParser().push(Buffer.from([1, 0, 0, 4, 1, 2, 3, 4])).error?.kind).toBe('bad-header');
    expect(new FrameParser().push(Buffer.from([0, 0, 0, 0])).error?.kind).toBe('empty');
  });

  it('a message valid before a bad header is still returned', () => {
    const r = new FrameParser().push(Buffer.concat([frame(Buffer.from('ok')), Buffer.from([9, 9, 9, 9])]));
    expect(r.messages).toEqual([Buffer.from('ok')]);
    expect(r.error?.kind).toBe('bad-header');
  });

  it('the default bound is 8 MiB + 64 KiB and the 24-bit field caps any configuration', () => {
    expect(new FrameParser().maxMessageBytes).toBe(8 * 1024 * 1024 + 64 * 1024);
    expect(new FrameParser(1 << 30).maxMessageBytes).toBe(0xffffff);
  });
});

describe('SMB2 header', () => {
  it('round-trips sync and async headers', () => {
    const sync = element(Command.ECHO, encodeEmpty, { treeId: 9, sessionId: 0x1122334455667788n, credits: 31, creditCharge: 2, status: 0x103 });
    expect(readHeader(sync)).toMatchObject({ command: Command.ECHO, treeId: 9, asyncId: 0n, sessionId: 0x1122334455667788n, credits: 31, creditCharge: 2, status: 0x103 });
    const asy = element(Command.LOCK, encodeEmpty, { flags: Flags.ASYNC_COMMAND | Flags.SERVER_TO_REDIR, asyncId: 0xabcdefn, treeId: 5 });
    expect(readHeader(asy)).toMatchObject({ asyncId: 0xabcdefn, treeId: 0 });
  });

  it('writeResponseHeader writes what writeHeader(headerTemplate({...request fields, ...over})) wrote', () => {
    const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
    const header = fc.record({
      creditCharge: fc.integer({ min: 0, max: 0xffff }), status: fc.nat({ max: 0xffff_ffff }), command: fc.integer({ min: 0, max: 0x13 }),
      credits: fc.integer({ min: 0, max: 0xffff }), flags: fc.nat({ max: 0xffff_ffff }), nextCommand: fc.nat({ max: 0xffff }),
      messageId: u64, treeId: fc.nat({ max: 0xffff_ffff }), asyncId: u64, sessionId: u64, signature: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(header, fc.nat({ max: 0xffff_ffff }), fc.integer({ min: 0, max: 0xffff }), fc.subarray(['status', 'flags', 'asyncId', 'sessionId', 'treeId', 'credits', 'signature', 'messageId'] as const), header, (req, status, credits, keys, from) => {
        const over: Partial<Smb2Header> = {};
        for (const k of keys) (over as Record<string, unknown>)[k] = from[k];
        const a = new WireWriter(64);
        writeHeader(a, headerTemplate({
          status, command: req.command, credits: over.credits ?? credits, creditCharge: req.creditCharge,
          flags: Flags.SERVER_TO_REDIR | (req.flags & Flags.RELATED_OPERATIONS), messageId: req.messageId, treeId: req.treeId, sessionId: req.sessionId, ...over,
        }));
        const b = new WireWriter(64);
        writeResponseHeader(b, req, status, over.credits ?? credits, over);
        expect(b.finish().toString('hex')).toBe(a.finish().toString('hex'));
      }),
      { numRuns: runs(300) },
    );
  });

  it('refuses a wrong protocol id, StructureSize or a short header', () => {
    const m = element(Command.ECHO, encodeEmpty);
    expect(() => readHeader(m.subarray(0, 63))).toThrow(SmbDecodeError);
    const bad = Buffer.from(m);
    bad[0] = 0xfd;
    expect(() => readHeader(bad)).toThrow(SmbDecodeError);
    const bad2 = Buffer.from(m);
    bad2[4] = 63;
    expect(() => readHeader(bad2)).toThrow(SmbDecodeError);
  });
});

describe('compounds (MS-SMB2 3.3.5.2.7)', () => {
  const three = () => joinCompound([
    element(Command.CREATE, (w) => w.zeros(60), { sessionId: 5n, treeId: 1 }),
    element(Command.QUERY_INFO, (w) => w.zeros(41), { flags: Flags.RELATED_OPERATIONS, sessionId: 0xffffffffffffffffn, treeId: 0xffffffff }),
    element(Command.CLOSE, (w) => w.zeros(24), { flags: Flags.RELATED_OPERATIONS }),
  ]).message;

  it('splits on 8-aligned NextCommand; each element is its own bytes with padding', () => {
    const msg = three();
    const s = splitCompound(msg);
    expect(s.ok).toBe(true);
    if (!s.ok) return;
    expect(s.value.map((e) => e.header.command)).toEqual([Command.CREATE, Command.QUERY_INFO, Command.CLOSE]);
    expect(s.value.map((e) => e.offset)).toEqual([0, 128, 240]);
    expect(s.value[0]!.bytes.length).toBe(128);
    expect(s.value[2]!.body.length).toBe(24);
  });

  it('refuses unaligned, backward and past-the-end NextCommand, and over-long chains', () => {
    const msg = three();
    for (const v of [127, 8, 0x7fffffff, msg.length]) {
      const bad = Buffer.from(msg);
      bad.writeUInt32LE(v, 20);
      const r = splitCompound(bad);
      expect(r.ok).toBe(false);
    }
    expect(splitCompound(msg, 2).ok).toBe(false);
  });

  it('related elements inherit session, tree and FileId; an error propagates; a related first element fails', () => {
    const s = splitCompound(three());
    if (!s.ok) throw s.error;
    const chain = new RelatedChain();
    const [a, b, c] = s.value;
    expect(chain.next(a!.header)).toEqual({ sessionId: 5n, treeId: 1, inherit: false });
    chain.done(STATUS.SUCCESS, { persistent: 1n, volatile: 2n });
    expect(chain.next(b!.header)).toEqual({ sessionId: 5n, treeId: 1, inherit: true });
    expect(chain.currentFileId()).toEqual({ persistent: 1n, volatile: 2n });
    chain.done(STATUS.BUFFER_OVERFLOW); // a warning does not stop the chain
    expect(chain.next(c!.header).failWith).toBeUndefined();

    const chain2 = new RelatedChain();
    chain2.next(a!.header);
    chain2.done(STATUS.OBJECT_NAME_NOT_FOUND);
    expect(chain2.next(b!.header).failWith).toBe(STATUS.OBJECT_NAME_NOT_FOUND);
    expect(chain2.next(c!.header).failWith).toBe(STATUS.OBJECT_NAME_NOT_FOUND);

    // A failure after the chain has its FileId (a SET_INFO refused between CREATE and CLOSE) does
    // not stop the CLOSE: the open would leak (the Linux cifs client's rmdir compound).
    const chain4 = new RelatedChain();
    chain4.next(a!.header);
    chain4.done(STATUS.SUCCESS, { persistent: 1n, volatile: 2n });
    chain4.next(b!.header);
    chain4.done(STATUS.ACCESS_DENIED);
    expect(chain4.next(c!.header).failWith).toBeUndefined();
    expect(chain4.currentFileId()).toEqual({ persistent: 1n, volatile: 2n });

    expect(new RelatedChain().next(b!.header).failWith).toBe(STATUS.INVALID_PARAMETER);
    const unrelated = headerTemplate({ sessionId: 9n, treeId: 3 });
    const chain3 = new RelatedChain();
    chain3.next(a!.header);
    chain3.done(STATUS.ACCESS_DENIED);
    expect(chain3.next(unrelated)).toEqual({ sessionId: 9n, treeId: 3, inherit: false });
  });
});

describe('large messages: one buffer, pooled; responses written as pieces', () => {
  it('a message spanning chunks arrives whole in a pool buffer, which the next one reuses once given back', () => {
    const pool = new MessagePool(1024);
    const p = new FrameParser(1 << 20, pool.alloc);
    const body = Buffer.alloc(5000, 7);
    body[4999] = 9;
    const wire = frame(body);
    const got: Buffer[] = [];
    for (let at = 0; at < wire.length; at += 700) got.push(...p.push(wire.subarray(at, at + 700)).messages);
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(body)).toBe(true);
    const first = got[0]!.buffer;
    pool.release(got[0]!);
    pool.release(got[0]!); // a second release is ignored
    const again = p.push(wire.subarray(0, 3000)).messages.concat(p.push(wire.subarray(3000)).messages);
    expect(again[0]!.buffer).toBe(first);
    expect(again[0]!.equals(body)).toBe(true);
    // Small messages are not pooled, and a buffer the pool did not make is not taken.
    expect(pool.alloc(100).buffer).not.toBe(first);
    pool.release(Buffer.alloc(5000));
    // A view into a pooled message (decrypted in place: past its TRANSFORM_HEADER) gives it back too.
    expect(pool.owns(again[0]!.subarray(52))).toBe(true);
    pool.release(again[0]!.subarray(52));
    expect(pool.owns(again[0]!)).toBe(false);
    expect(pool.alloc(5000).buffer).toBe(first);
  });

  it('zero-copy receive: a large message is read straight into its buffer, never past its end; small ones are copied out of a reused read buffer', () => {
    const pool = new MessagePool(1024);
    const p = new FrameParser(1 << 20, pool.alloc);
    const big = Buffer.alloc(10_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const small = Buffer.from('next message');
    const wire = Buffer.concat([frame(big), frame(small)]);
    const scratch = Buffer.alloc(600); // the connection's read buffer, reused for every read
    expect(p.landingZone()).toBeUndefined(); // a header: read through push()
    wire.copy(scratch, 0, 0, 600);
    expect(p.push(scratch, true).messages).toEqual([]);
    const got: Buffer[] = [];
    let at = 600;
    for (let zone = p.landingZone(); zone; zone = p.landingZone()) {
      // What the kernel may write: the rest of this message, not a byte of the next one.
      expect(zone.length).toBe(4 + big.length - at);
      const n = Math.min(zone.length, 1500);
      wire.copy(zone, 0, at, at + n);
      at += n;
      got.push(...p.landed(n).messages);
    }
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(big)).toBe(true);
    expect(pool.owns(got[0]!)).toBe(true);
    // The next message comes through the read buffer and is a copy of it.
    wire.copy(scratch, 0, at);
    const rest = p.push(scratch.subarray(0, wire.length - at), true).messages;
    scratch.fill(0);
    expect(rest).toHaveLength(1);
    expect(rest[0]!.equals(small)).toBe(true);
    expect(() => p.landed(1)).toThrow(RangeError);
  });

  it('an accepted socket without a handle to hand over is read as it is (receiveInPlace gives up)', () => {
    expect(receiveInPlace(new Socket(), { buffer: Buffer.alloc(16), callback: () => true })).toBeUndefined();
  });

  it('writeFramed sends the Direct TCP header and the pieces in order', () => {
    const out: Buffer[] = [];
    const sink = { cork: () => undefined, uncork: () => undefined, write: (b: Buffer) => out.push(Buffer.from(b)) > 0 };
    writeFramed(sink, [Buffer.from('head'), Buffer.alloc(20_000, 1)]);
    const all = Buffer.concat(out);
    expect(all.readUInt32BE(0)).toBe(20_004);
    expect(all.subarray(4, 8).toString()).toBe('head');
    expect(all.length).toBe(20_008);
  });
});
