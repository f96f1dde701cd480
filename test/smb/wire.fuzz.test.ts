/**
 * Property tests for the SMB wire decoders: Direct TCP framing, the SMB2 header and compound
 * splitting, every command decoder, the SMB1 negotiate, NTLMSSP and SPNEGO. Random bytes and
 * mutations of valid messages (every codec's encoded seed, smbclient's captured NegTokenInit,
 * MS-NLMP's AUTHENTICATE) must give a value or an SmbDecodeError — no other throw — in bounded
 * time (DCE/RPC PDUs and srvsvc NDR too), holding no more than the input: every Buffer in a decoded value is a view of the input,
 * arrays and strings no longer than it.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { readFileSync } from 'node:fs';
import { FrameParser, frame } from '../../protocols/smb/framing.ts';
import { Command, HEADER_BYTES, joinCompound, splitCompound } from '../../protocols/smb/header.ts';
import { SmbDecodeError, type WireWriter } from '../../protocols/smb/wire.ts';
import * as N from '../../protocols/smb/messages/negotiate.ts';
import * as SS from '../../protocols/smb/messages/session-setup.ts';
import * as TC from '../../protocols/smb/messages/tree-connect.ts';
import * as CR from '../../protocols/smb/messages/create.ts';
import * as CC from '../../protocols/smb/messages/create-contexts.ts';
import * as F from '../../protocols/smb/messages/file-ops.ts';
import * as IO from '../../protocols/smb/messages/ioctl.ts';
import * as INF from '../../protocols/smb/messages/info.ts';
import * as BR from '../../protocols/smb/messages/break.ts';
import * as ER from '../../protocols/smb/messages/error.ts';
import * as SD from '../../protocols/smb/messages/security-descriptor.ts';
import { decodeSmb1Negotiate, encodeSmb1Negotiate } from '../../protocols/smb/messages/smb1-negotiate.ts';
import { decodeAuthenticateMessage, decodeAvPairs, decodeChallengeMessage, decodeNegotiateMessage, NtlmServer } from '../../protocols/smb/ntlm.ts';
import { decodeSpnego, encodeNegTokenInit2, encodeNegTokenResp, OID } from '../../protocols/smb/spnego.ts';
import { decodeTransformHeader } from '../../protocols/smb/crypto.ts';
import { SYNTAX, decodePdu, decodeShareEnumAll, decodeShareGetInfo, encodeBind, encodeRequest, encodeShareEnumAllRequest } from '../../protocols/smb/dcerpc.ts';
import { element, hex } from './helpers.ts';
import { NEG_REQ, NEG_RESP, SS_REQ1, SS_REQ2, SS_RESP1, SS_RESP_FINAL } from './fixtures/ms-smb311.ts';

/** SMB_FUZZ_RUNS=N for a longer run than the suite's. */
const RUNS = Number(process.env.SMB_FUZZ_RUNS ?? 1000);
/** Superlinear work guard (not a speed target): the best of three calls on inputs up to 64 KiB. */
const MAX_CALL_MS = 50;

const fid = { persistent: 1n, volatile: 2n };
const CAPTURED_INIT = hex(readFileSync(new URL('./fixtures/smbclient-4.17-negtokeninit.hex', import.meta.url), 'utf8'));
const NTLM_NEGOTIATE = (() => {
  const t = decodeSpnego(CAPTURED_INIT);
  return t.kind === 'init' && t.mechToken ? Buffer.from(t.mechToken) : Buffer.alloc(0);
})();
const NTLM_CHALLENGE = new NtlmServer({ computerName: 'PORTICO', domainName: 'WORKGROUP' }).challenge(NTLM_NEGOTIATE);
const NLMP_AUTHENTICATE = hex(`4e544c4d5353500003000000180018006c00000054005400840000000c000c00480000000800080054000000100010005c000000
10001000d8000000358288e20501280a0000000f44006f006d00610069006e00550073006500720043004f004d00500055005400
4500520086c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa68cd0ab851e51c96aabc927bebef6a1c0101000000000000
0000000000000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e0001000c00530065007200760065007200
0000000000000000c5dad2544fc9799094ce1ce90bc9d03e`);

/** One seed per decoder: its command and a valid element. */
const DECODERS: { name: string; decode: (b: Buffer) => unknown; seed: Buffer }[] = [
  { name: 'NEGOTIATE request', decode: N.decodeNegotiateRequest, seed: element(Command.NEGOTIATE, (w) => N.encodeNegotiateRequest(w, {
    dialects: [0x202, 0x210, 0x300, 0x302, 0x311], securityMode: 1, capabilities: 0x7f, clientGuid: Buffer.alloc(16, 1),
    contexts: [{ type: 1, hashAlgorithms: [1], salt: Buffer.alloc(32, 2) }, { type: 2, ciphers: [2, 1] }, { type: 5, data: Buffer.from('h\0'), raw: true }, { type: 8, signingAlgorithms: [2, 1] }],
  })) },
  { name: 'NEGOTIATE response', decode: N.decodeNegotiateResponse, seed: element(Command.NEGOTIATE, (w) => N.encodeNegotiateResponse(w, {
    securityMode: 3, dialect: 0x311, serverGuid: Buffer.alloc(16), capabilities: 4, maxTransactSize: 1, maxReadSize: 1, maxWriteSize: 1, systemTime: 1n, serverStartTime: 0n,
    securityBuffer: encodeNegTokenInit2(), contexts: [{ type: 1, hashAlgorithms: [1], salt: Buffer.alloc(32) }, { type: 2, ciphers: [2] }],
  })) },
  { name: 'SESSION_SETUP request', decode: SS.decodeSessionSetupRequest, seed: element(Command.SESSION_SETUP, (w) => SS.encodeSessionSetupRequest(w, { flags: 0, securityMode: 1, capabilities: 1, channel: 0, previousSessionId: 0n, securityBuffer: CAPTURED_INIT })) },
  { name: 'SESSION_SETUP response', decode: SS.decodeSessionSetupResponse, seed: element(Command.SESSION_SETUP, (w) => SS.encodeSessionSetupResponse(w, { sessionFlags: 0, securityBuffer: encodeNegTokenResp({ negState: 1, supportedMech: OID.NTLMSSP, responseToken: NTLM_CHALLENGE }) })) },
  { name: 'TREE_CONNECT request', decode: TC.decodeTreeConnectRequest, seed: element(Command.TREE_CONNECT, (w) => TC.encodeTreeConnectRequest(w, { flags: 0, path: '\\\\127.0.0.1\\IPC$' })) },
  { name: 'CREATE request', decode: CR.decodeCreateRequest, seed: element(Command.CREATE, (w) => CR.encodeCreateRequest(w, {
    securityFlags: 0, requestedOplockLevel: 0, impersonationLevel: 2, smbCreateFlags: 0n, desiredAccess: 1, fileAttributes: 0, shareAccess: 7, createDisposition: 1, createOptions: 0, name: 'a\\b.txt',
    contexts: [{ name: Buffer.from('MxAc'), data: Buffer.alloc(0) }, { name: Buffer.from('DH2Q'), data: Buffer.alloc(32) }],
  })) },
  { name: 'CREATE response', decode: CR.decodeCreateResponse, seed: element(Command.CREATE, (w) => CR.encodeCreateResponse(w, { oplockLevel: 0, flags: 0, createAction: 1, creationTime: 1n, lastAccessTime: 1n, lastWriteTime: 1n, changeTime: 1n, allocationSize: 0n, endOfFile: 0n, fileAttributes: 0, fileId: fid, contexts: [{ name: Buffer.from('QFid'), data: Buffer.alloc(32) }] })) },
  { name: 'CLOSE request', decode: F.decodeCloseRequest, seed: element(Command.CLOSE, (w) => F.encodeCloseRequest(w, { flags: 1, fileId: fid })) },
  { name: 'FLUSH request', decode: F.decodeFlushRequest, seed: element(Command.FLUSH, (w) => F.encodeFlushRequest(w, { fileId: fid })) },
  { name: 'READ request', decode: (b) => F.decodeReadRequest(b), seed: element(Command.READ, (w) => F.encodeReadRequest(w, { padding: 0, flags: 0, length: 100, offset: 0n, fileId: fid, minimumCount: 0, channel: 0, remainingBytes: 0 })) },
  { name: 'READ response', decode: F.decodeReadResponse, seed: element(Command.READ, (w) => F.encodeReadResponse(w, { data: Buffer.alloc(20, 3), dataRemaining: 0 })) },
  { name: 'WRITE request', decode: (b) => F.decodeWriteRequest(b), seed: element(Command.WRITE, (w) => F.encodeWriteRequest(w, { offset: 0n, fileId: fid, channel: 0, remainingBytes: 0, flags: 0, data: Buffer.alloc(20, 4) })) },
  { name: 'LOCK request', decode: F.decodeLockRequest, seed: element(Command.LOCK, (w) => F.encodeLockRequest(w, { lockSequence: 0, fileId: fid, locks: [{ offset: 0n, length: 1n, flags: 2 }, { offset: 5n, length: 1n, flags: 1 }] })) },
  { name: 'IOCTL request', decode: IO.decodeIoctlRequest, seed: element(Command.IOCTL, (w) => IO.encodeIoctlRequest(w, { ctlCode: 0x11c017, fileId: fid, input: Buffer.alloc(72, 5), maxInputResponse: 0, maxOutputResponse: 4280, flags: 1 })) },
  { name: 'IOCTL response', decode: IO.decodeIoctlResponse, seed: element(Command.IOCTL, (w) => IO.encodeIoctlResponse(w, { ctlCode: 0x11c017, fileId: fid, input: Buffer.alloc(0), output: Buffer.alloc(40, 6), flags: 1 })) },
  { name: 'QUERY_DIRECTORY request', decode: INF.decodeQueryDirectoryRequest, seed: element(Command.QUERY_DIRECTORY, (w) => INF.encodeQueryDirectoryRequest(w, { infoClass: 37, flags: 0, fileIndex: 0, fileId: fid, pattern: '*', outputBufferLength: 65536 })) },
  { name: 'QUERY_INFO request', decode: INF.decodeQueryInfoRequest, seed: element(Command.QUERY_INFO, (w) => INF.encodeQueryInfoRequest(w, { infoType: 1, infoClass: 18, outputBufferLength: 1000, input: Buffer.alloc(8), additionalInformation: 0, flags: 0, fileId: fid })) },
  { name: 'SET_INFO request', decode: INF.decodeSetInfoRequest, seed: element(Command.SET_INFO, (w) => INF.encodeSetInfoRequest(w, { infoType: 1, infoClass: 10, additionalInformation: 0, fileId: fid, buffer: Buffer.alloc(30, 7) })) },
  { name: 'CHANGE_NOTIFY request', decode: INF.decodeChangeNotifyRequest, seed: element(Command.CHANGE_NOTIFY, (w) => INF.encodeChangeNotifyRequest(w, { flags: 1, outputBufferLength: 100, fileId: fid, completionFilter: 1 })) },
  { name: 'output response', decode: (b) => INF.decodeOutputResponse(b, 'QUERY_INFO'), seed: element(Command.QUERY_INFO, (w) => INF.encodeOutputResponse(w, Buffer.alloc(24, 1))) },
  { name: 'break acknowledgment', decode: BR.decodeBreakAck, seed: element(Command.OPLOCK_BREAK, (w) => BR.encodeBreakAck(w, { kind: 'lease', flags: 0, leaseKey: Buffer.alloc(16), leaseState: 1, leaseDuration: 0n })) },
  { name: 'ERROR response', decode: ER.decodeErrorResponse, seed: element(Command.CREATE, (w) => ER.encodeErrorResponse(w, { errorContextCount: 0, errorData: Buffer.alloc(8, 1) })) },
  { name: 'SMB1 NEGOTIATE', decode: decodeSmb1Negotiate, seed: encodeSmb1Negotiate(['NT LM 0.12', 'SMB 2.002', 'SMB 2.???']) },
  { name: 'TRANSFORM_HEADER', decode: decodeTransformHeader, seed: Buffer.concat([hex('fd534d42'), Buffer.alloc(32), hex('0a000000 0000 0100 0100000000000000'), Buffer.alloc(10)]) },
  { name: 'NTLMSSP NEGOTIATE', decode: decodeNegotiateMessage, seed: NTLM_NEGOTIATE },
  { name: 'NTLMSSP CHALLENGE', decode: decodeChallengeMessage, seed: NTLM_CHALLENGE },
  { name: 'NTLMSSP AUTHENTICATE', decode: decodeAuthenticateMessage, seed: NLMP_AUTHENTICATE },
  { name: 'AV pairs', decode: decodeAvPairs, seed: NTLM_CHALLENGE.subarray(NTLM_CHALLENGE.readUInt32LE(44)) },
  { name: 'SPNEGO', decode: decodeSpnego, seed: CAPTURED_INIT },
  { name: 'DCE/RPC BIND', decode: decodePdu, seed: encodeBind(1, [{ contextId: 0, abstract: SYNTAX.SRVSVC, transfer: [SYNTAX.NDR, SYNTAX.NDR64] }, { contextId: 1, abstract: SYNTAX.SRVSVC, transfer: [SYNTAX.NDR] }]) },
  { name: 'DCE/RPC REQUEST', decode: decodePdu, seed: encodeRequest(2, 0, 15, encodeShareEnumAllRequest('\\\\127.0.0.1')) },
  { name: 'NetrShareEnumAll', decode: decodeShareEnumAll, seed: encodeShareEnumAllRequest('\\\\127.0.0.1') },
  { name: 'NetrShareGetInfo', decode: decodeShareGetInfo, seed: hex('00000000 05000000 00000000 05000000 64006100740061000000 0000 01000000') },
  { name: 'VALIDATE_NEGOTIATE_INFO', decode: IO.decodeValidateNegotiateInfo, seed: IO.encodeValidateNegotiateInfo({ capabilities: 0x7f, guid: Buffer.alloc(16, 3), securityMode: 1, dialects: [0x202, 0x210, 0x300, 0x302] }) },
  { name: 'NETWORK_INTERFACE_INFO', decode: IO.decodeNetworkInterfaceInfo, seed: IO.encodeNetworkInterfaceInfo([{ ifIndex: 1, capability: 1, linkSpeed: 1n, address: '10.0.0.1' }, { ifIndex: 2, capability: 0, linkSpeed: 1n, address: 'fe80::1' }]) },
  { name: 'RqLs', decode: CC.decodeLeaseRequest, seed: CC.encodeLease({ version: 2, leaseKey: Buffer.alloc(16, 1), leaseState: 7, flags: 4, parentLeaseKey: Buffer.alloc(16, 2), epoch: 1 }) },
  { name: 'DH2Q', decode: CC.decodeDurableRequestV2, seed: CC.encodeDurableRequestV2({ timeoutMs: 0, flags: 2, createGuid: Buffer.alloc(16, 5) }) },
  { name: 'security descriptor', decode: SD.decodeSecurityDescriptor, seed: SD.encodeSecurityDescriptor({
    control: SD.SdControl.DACL_PROTECTED, owner: { authority: 22, subAuthorities: [1, 1001] }, group: { authority: 22, subAuthorities: [2, 1001] },
    sacl: { revision: 2, aces: [] },
    dacl: { revision: 2, aces: [{ type: 1, flags: 3, mask: 0x116, sid: { authority: 22, subAuthorities: [1, 1001] } }, { type: 0, flags: 0, mask: 0x1200a9, sid: { authority: 5, subAuthorities: [11] } }, { type: 0x11, flags: 0, raw: Buffer.alloc(12, 1) }] },
  }) },
  { name: 'symbolic link error response', decode: ER.decodeSymlinkErrorData, seed: ER.encodeSymlinkErrorData({ unparsedPathLength: 4, substituteName: 'a\\b', printName: 'a\\b', relative: true }) },
  // Windows 10's packets from Microsoft's 3.1.1 walkthrough.
  { name: 'NEGOTIATE request (Windows)', decode: N.decodeNegotiateRequest, seed: NEG_REQ },
  { name: 'NEGOTIATE response (Windows, NEGOEX)', decode: N.decodeNegotiateResponse, seed: NEG_RESP },
  { name: 'SESSION_SETUP request (Windows NEGOTIATE)', decode: SS.decodeSessionSetupRequest, seed: SS_REQ1 },
  { name: 'SESSION_SETUP request (Windows AUTHENTICATE)', decode: SS.decodeSessionSetupRequest, seed: SS_REQ2 },
  { name: 'SESSION_SETUP response (Windows CHALLENGE)', decode: SS.decodeSessionSetupResponse, seed: SS_RESP1 },
  { name: 'SESSION_SETUP response (Windows final)', decode: SS.decodeSessionSetupResponse, seed: SS_RESP_FINAL },
  { name: 'SPNEGO (Windows NegTokenInit2 with NEGOEX)', decode: decodeSpnego, seed: Buffer.from(N.decodeNegotiateResponse(NEG_RESP).securityBuffer) },
  { name: 'SPNEGO (Windows NegTokenResp with mechListMIC)', decode: decodeSpnego, seed: Buffer.from(SS.decodeSessionSetupRequest(SS_REQ2).securityBuffer) },
  { name: 'NTLMSSP AUTHENTICATE (Windows, with MIC)', decode: decodeAuthenticateMessage, seed: (() => {
    const t = decodeSpnego(SS.decodeSessionSetupRequest(SS_REQ2).securityBuffer);
    return Buffer.from(t.kind === 'resp' && t.responseToken ? t.responseToken : Buffer.alloc(0));
  })() },
  { name: 'SPNEGO NegTokenResp', decode: decodeSpnego, seed: encodeNegTokenResp({ negState: 0, supportedMech: OID.NTLMSSP, responseToken: NLMP_AUTHENTICATE, mechListMIC: Buffer.alloc(16, 9) }) },
];

/** Random edits of a seed: byte sets, 16/32-bit little-endian words set to edge values, inserts, deletes, truncation. */
function mutated(seeds: Buffer[]): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ k: fc.constant('byte' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('u16' as const), at: fc.nat(), v: fc.constantFrom(0, 1, 2, 7, 8, 9, 64, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff) }),
    fc.record({ k: fc.constant('u32' as const), at: fc.nat(), v: fc.constantFrom(0, 1, 8, 64, 0x80, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffff8, 0xffffffff) }),
    fc.record({ k: fc.constant('insert' as const), at: fc.nat(), v: fc.uint8Array({ maxLength: 12 }) }),
    fc.record({ k: fc.constant('delete' as const), at: fc.nat(), v: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ k: fc.constant('truncate' as const), at: fc.nat(), v: fc.constant(0) }),
  );
  return fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([i, edits]) => {
    let b = Buffer.from(seeds[i] as Buffer);
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.at % b.length;
      if (e.k === 'byte' && b.length > 0) b[at] = e.v;
      else if (e.k === 'u16' && b.length >= 2) b.writeUInt16LE(e.v, Math.min(at, b.length - 2));
      else if (e.k === 'u32' && b.length >= 4) b.writeUInt32LE(e.v >>> 0, Math.min(at, b.length - 4));
      else if (e.k === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.v), b.subarray(at)]);
      else if (e.k === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.v)]);
      else if (e.k === 'truncate') b = b.subarray(0, at);
    }
    return b;
  });
}

const randomBytes = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 256 }).map((u) => Buffer.from(u)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096 }).map((u) => Buffer.from(u)) },
);

/** Everything a decoded value holds is paid for by the input. */
function expectBoundedBy(value: unknown, input: Buffer, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'string') expect(value.length).toBeLessThanOrEqual(input.length);
    return;
  }
  if (seen.has(value)) return;
  seen.add(value);
  if (Buffer.isBuffer(value)) {
    if (value.length > 0) expect(value.buffer === input.buffer, 'a Buffer that is not a view of the input').toBe(true);
    return;
  }
  if (Array.isArray(value)) expect(value.length).toBeLessThanOrEqual(input.length / 2 + 1);
  for (const v of Object.values(value)) expectBoundedBy(v, input, seen);
}

/** A value or an SmbDecodeError; anything else escapes and fails the property. */
function decodeOrCodecError(decode: (b: Buffer) => unknown, input: Buffer): void {
  let v: unknown;
  try {
    v = decode(input);
  } catch (e) {
    if (e instanceof SmbDecodeError) return;
    throw e;
  }
  expectBoundedBy(v, input);
}

function timed(fn: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    try {
      fn();
    } catch {
      // the codec's error; timing only
    }
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

describe('seeds', () => {
  it('every seed decodes whole', () => {
    for (const d of DECODERS) expect(() => d.decode(d.seed), d.name).not.toThrow();
  });
});

describe('framing', () => {
  it('any byte stream cut anywhere: messages or an error value, never a throw, never more held than the bound', () => {
    const seeds = DECODERS.slice(0, 8).map((d) => Buffer.concat([frame(d.seed), frame(d.seed)]));
    fc.assert(
      fc.property(fc.oneof(randomBytes, mutated(seeds)), fc.array(fc.nat(), { maxLength: 8 }), (stream, cuts) => {
        const p = new FrameParser(2048);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        let prev = 0;
        let out = 0;
        for (const c of [...points, stream.length]) {
          const r = p.push(stream.subarray(prev, c));
          for (const m of r.messages) out += m.length;
          prev = c;
          expect(p.buffered).toBeLessThanOrEqual(2048 + 4);
        }
        expect(out).toBeLessThanOrEqual(stream.length);
      }),
      { numRuns: runs(RUNS) },
    );
  });
});

describe('header and compounds', () => {
  it('random and mutated compounds: elements inside the message, or an error value', () => {
    const seeds = [joinCompound(DECODERS.slice(4, 9).map((d) => d.seed)).message, ...DECODERS.slice(0, 6).map((d) => d.seed)];
    fc.assert(
      fc.property(fc.oneof(randomBytes, mutated(seeds)), (msg) => {
        const r = splitCompound(msg);
        if (!r.ok) return void expect(r.error).toBeInstanceOf(SmbDecodeError);
        let total = 0;
        for (const e of r.value) {
          expect(e.bytes.buffer === msg.buffer).toBe(true);
          expect(e.bytes.length).toBeGreaterThanOrEqual(HEADER_BYTES);
          total += e.bytes.length;
        }
        expect(total).toBe(msg.length);
      }),
      { numRuns: runs(RUNS) },
    );
  });
});

describe('every decoder', () => {
  it.each(DECODERS.map((d) => [d.name, d] as const))('%s: random and mutated input give a value bounded by it or an SmbDecodeError', (_n, d) => {
    fc.assert(fc.property(fc.oneof({ weight: 1, arbitrary: randomBytes }, { weight: 4, arbitrary: mutated([d.seed]) }), (b) => decodeOrCodecError(d.decode, b)), { numRuns: runs(Math.ceil(RUNS / 4)) });
  });

  it('every command decoder fed every other command\'s body', () => {
    for (const a of DECODERS) for (const b of DECODERS) decodeOrCodecError(a.decode, b.seed);
  });

  it('no superlinear work on 64 KiB inputs', () => {
    const big = [Buffer.alloc(65536, 0x30), Buffer.alloc(65536, 0xa0), Buffer.alloc(65536, 0xff), Buffer.alloc(65536)];
    for (const d of DECODERS) {
      for (const b of big) {
        const input = Buffer.concat([d.seed, b]);
        expect(timed(() => d.decode(input)), d.name).toBeLessThan(MAX_CALL_MS);
      }
    }
    // A 64 KiB run of nested DER headers (each claiming the rest) is refused in bounded time.
    const nested = Buffer.alloc(65536);
    for (let i = 0; i + 4 <= nested.length; i += 4) nested.set([0xa0, 0x82, 0xff, 0xfb], i);
    expect(timed(() => decodeSpnego(nested))).toBeLessThan(MAX_CALL_MS);
  });
});
