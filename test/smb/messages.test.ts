/**
 * Every command codec: request and response round trips, and bounds — every truncation of every
 * encoded message, and lying offsets and lengths, give an SmbDecodeError value through tryDecode,
 * never a RangeError.
 */
import { describe, expect, it } from 'vitest';
import { Command, HEADER_BYTES } from '../../protocols/smb/header.ts';
import { SmbDecodeError, tryDecode, type WireWriter } from '../../protocols/smb/wire.ts';
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
import * as SI from '../../protocols/smb/messages/simple.ts';
import { decodeSmb1Negotiate, encodeSmb1Negotiate, isSmb1, smb2DialectForSmb1 } from '../../protocols/smb/messages/smb1-negotiate.ts';
import { element, hex } from './helpers.ts';
import { hasImpacket, runPython } from './python.ts';

const fid = { persistent: 0x0102030405060708n, volatile: 0x1112131415161718n };
const guid = hex('00112233445566778899aabbccddeeff');

interface Case {
  name: string;
  command: number;
  encode: (w: WireWriter) => void;
  decode: (el: Buffer) => unknown;
  expected: unknown;
}

const negReq: N.NegotiateRequest = {
  dialects: [0x0202, 0x0210, 0x0300, 0x0302, 0x0311],
  securityMode: 1,
  capabilities: 0x7f,
  clientGuid: guid,
  contexts: [
    { type: N.ContextType.PREAUTH_INTEGRITY, hashAlgorithms: [1], salt: hex('aa'.repeat(32)) },
    { type: N.ContextType.ENCRYPTION, ciphers: [4, 2, 3, 1] },
    { type: 0x0005, data: Buffer.from('host\0', 'utf16le'), raw: true },
    { type: 0x0099, data: hex('01020304050607'), raw: true },
    { type: N.ContextType.SIGNING, signingAlgorithms: [2, 1, 0] },
  ],
};
const negResp: N.NegotiateResponse = {
  securityMode: 3, dialect: 0x0311, serverGuid: guid, capabilities: 4, maxTransactSize: 8 << 20, maxReadSize: 8 << 20, maxWriteSize: 8 << 20,
  systemTime: 133_000_000_000_000_000n, serverStartTime: 0n, securityBuffer: hex('6006'), contexts: [
    { type: 1, hashAlgorithms: [1], salt: hex('bb'.repeat(32)) },
    { type: 2, ciphers: [2] },
    { type: 8, signingAlgorithms: [2] },
  ],
};
const createReq: CR.CreateRequest = {
  securityFlags: 0, requestedOplockLevel: 0, impersonationLevel: 2, smbCreateFlags: 0n, desiredAccess: 0x120089, fileAttributes: 0x80,
  shareAccess: 7, createDisposition: 1, createOptions: 0x40, name: 'dir\\файл.txt',
  contexts: [{ name: Buffer.from('MxAc'), data: Buffer.alloc(0) }, { name: Buffer.from('QFid'), data: Buffer.alloc(0) }, { name: Buffer.from('DH2Q'), data: hex('00'.repeat(32)) }],
};
const times = { creationTime: 1n, lastAccessTime: 2n, lastWriteTime: 3n, changeTime: 4n };

const CASES: Case[] = [
  { name: 'NEGOTIATE request (3.1.1 contexts incl. unknown ones)', command: Command.NEGOTIATE, encode: (w) => N.encodeNegotiateRequest(w, negReq), decode: N.decodeNegotiateRequest, expected: negReq },
  { name: 'NEGOTIATE request (2.x, no contexts)', command: Command.NEGOTIATE, encode: (w) => N.encodeNegotiateRequest(w, { ...negReq, dialects: [0x0202, 0x0210], contexts: [] }), decode: N.decodeNegotiateRequest, expected: { ...negReq, dialects: [0x0202, 0x0210], contexts: [] } },
  { name: 'NEGOTIATE response', command: Command.NEGOTIATE, encode: (w) => N.encodeNegotiateResponse(w, negResp), decode: N.decodeNegotiateResponse, expected: negResp },
  { name: 'SESSION_SETUP request', command: Command.SESSION_SETUP, encode: (w) => SS.encodeSessionSetupRequest(w, { flags: 0, securityMode: 1, capabilities: 1, channel: 0, previousSessionId: 5n, securityBuffer: hex('a1020304') }), decode: SS.decodeSessionSetupRequest, expected: { flags: 0, securityMode: 1, capabilities: 1, channel: 0, previousSessionId: 5n, securityBuffer: hex('a1020304') } },
  { name: 'SESSION_SETUP response', command: Command.SESSION_SETUP, encode: (w) => SS.encodeSessionSetupResponse(w, { sessionFlags: 4, securityBuffer: hex('a100') }), decode: SS.decodeSessionSetupResponse, expected: { sessionFlags: 4, securityBuffer: hex('a100') } },
  { name: 'TREE_CONNECT request', command: Command.TREE_CONNECT, encode: (w) => TC.encodeTreeConnectRequest(w, { flags: 0, path: '\\\\srv\\data' }), decode: TC.decodeTreeConnectRequest, expected: { flags: 0, path: '\\\\srv\\data' } },
  { name: 'TREE_CONNECT response', command: Command.TREE_CONNECT, encode: (w) => TC.encodeTreeConnectResponse(w, { shareType: 1, shareFlags: 0x800, capabilities: 0, maximalAccess: 0x1f01ff }), decode: TC.decodeTreeConnectResponse, expected: { shareType: 1, shareFlags: 0x800, capabilities: 0, maximalAccess: 0x1f01ff } },
  { name: 'CREATE request with contexts', command: Command.CREATE, encode: (w) => CR.encodeCreateRequest(w, createReq), decode: CR.decodeCreateRequest, expected: createReq },
  {
    name: 'CREATE response with contexts', command: Command.CREATE,
    encode: (w) => CR.encodeCreateResponse(w, { oplockLevel: 0, flags: 0, createAction: 1, ...times, allocationSize: 4096n, endOfFile: 10n, fileAttributes: 0x20, fileId: fid, contexts: [{ name: Buffer.from('MxAc'), data: hex('000000001f011f00') }] }),
    decode: CR.decodeCreateResponse,
    expected: { oplockLevel: 0, flags: 0, createAction: 1, ...times, allocationSize: 4096n, endOfFile: 10n, fileAttributes: 0x20, fileId: fid, contexts: [{ name: Buffer.from('MxAc'), data: hex('000000001f011f00') }] },
  },
  { name: 'CLOSE request', command: Command.CLOSE, encode: (w) => F.encodeCloseRequest(w, { flags: 1, fileId: fid }), decode: F.decodeCloseRequest, expected: { flags: 1, fileId: fid } },
  { name: 'CLOSE response', command: Command.CLOSE, encode: (w) => F.encodeCloseResponse(w, { flags: 1, ...times, allocationSize: 0n, endOfFile: 0n, fileAttributes: 0x10 }), decode: F.decodeCloseResponse, expected: { flags: 1, ...times, allocationSize: 0n, endOfFile: 0n, fileAttributes: 0x10 } },
  { name: 'FLUSH request', command: Command.FLUSH, encode: (w) => F.encodeFlushRequest(w, { fileId: fid }), decode: F.decodeFlushRequest, expected: { fileId: fid } },
  { name: 'READ request', command: Command.READ, encode: (w) => F.encodeReadRequest(w, { padding: 0x50, flags: 0, length: 65536, offset: 1n << 40n, fileId: fid, minimumCount: 0, channel: 0, remainingBytes: 0 }), decode: (el) => F.decodeReadRequest(el), expected: { padding: 0x50, flags: 0, length: 65536, offset: 1n << 40n, fileId: fid, minimumCount: 0, channel: 0, remainingBytes: 0 } },
  { name: 'READ response', command: Command.READ, encode: (w) => F.encodeReadResponse(w, { data: Buffer.from('hello'), dataRemaining: 0 }), decode: F.decodeReadResponse, expected: { data: Buffer.from('hello'), dataRemaining: 0 } },
  { name: 'WRITE request', command: Command.WRITE, encode: (w) => F.encodeWriteRequest(w, { offset: 3n, fileId: fid, channel: 0, remainingBytes: 0, flags: 1, data: Buffer.from('data!') }), decode: (el) => F.decodeWriteRequest(el), expected: { offset: 3n, fileId: fid, channel: 0, remainingBytes: 0, flags: 1, data: Buffer.from('data!') } },
  { name: 'WRITE response', command: Command.WRITE, encode: (w) => F.encodeWriteResponse(w, { count: 5, remaining: 0 }), decode: F.decodeWriteResponse, expected: { count: 5, remaining: 0 } },
  { name: 'LOCK request', command: Command.LOCK, encode: (w) => F.encodeLockRequest(w, { lockSequence: 0x10, fileId: fid, locks: [{ offset: 0n, length: 10n, flags: 0x12 }, { offset: 10n, length: 1n, flags: 4 }] }), decode: F.decodeLockRequest, expected: { lockSequence: 0x10, fileId: fid, locks: [{ offset: 0n, length: 10n, flags: 0x12 }, { offset: 10n, length: 1n, flags: 4 }] } },
  { name: 'IOCTL request', command: Command.IOCTL, encode: (w) => IO.encodeIoctlRequest(w, { ctlCode: IO.Fsctl.VALIDATE_NEGOTIATE_INFO, fileId: fid, input: hex('0102'), maxInputResponse: 0, maxOutputResponse: 24, flags: 1 }), decode: IO.decodeIoctlRequest, expected: { ctlCode: IO.Fsctl.VALIDATE_NEGOTIATE_INFO, fileId: fid, input: hex('0102'), maxInputResponse: 0, maxOutputResponse: 24, flags: 1 } },
  { name: 'IOCTL response', command: Command.IOCTL, encode: (w) => IO.encodeIoctlResponse(w, { ctlCode: 0x11c017, fileId: fid, input: hex('010203'), output: hex('0a0b'), flags: 1 }), decode: IO.decodeIoctlResponse, expected: { ctlCode: 0x11c017, fileId: fid, input: hex('010203'), output: hex('0a0b'), flags: 1 } },
  { name: 'QUERY_DIRECTORY request', command: Command.QUERY_DIRECTORY, encode: (w) => INF.encodeQueryDirectoryRequest(w, { infoClass: 37, flags: 1, fileIndex: 0, fileId: fid, pattern: '*', outputBufferLength: 65536 }), decode: INF.decodeQueryDirectoryRequest, expected: { infoClass: 37, flags: 1, fileIndex: 0, fileId: fid, pattern: '*', outputBufferLength: 65536 } },
  { name: 'QUERY_DIRECTORY response', command: Command.QUERY_DIRECTORY, encode: (w) => INF.encodeOutputResponse(w, hex('00112233')), decode: (el) => INF.decodeOutputResponse(el, 'QUERY_DIRECTORY'), expected: hex('00112233') },
  { name: 'QUERY_INFO request', command: Command.QUERY_INFO, encode: (w) => INF.encodeQueryInfoRequest(w, { infoType: 1, infoClass: 18, outputBufferLength: 4096, input: Buffer.alloc(0), additionalInformation: 0, flags: 0, fileId: fid }), decode: INF.decodeQueryInfoRequest, expected: { infoType: 1, infoClass: 18, outputBufferLength: 4096, input: Buffer.alloc(0), additionalInformation: 0, flags: 0, fileId: fid } },
  { name: 'SET_INFO request', command: Command.SET_INFO, encode: (w) => INF.encodeSetInfoRequest(w, { infoType: 1, infoClass: 10, additionalInformation: 0, fileId: fid, buffer: hex('0100000000000000') }), decode: INF.decodeSetInfoRequest, expected: { infoType: 1, infoClass: 10, additionalInformation: 0, fileId: fid, buffer: hex('0100000000000000') } },
  { name: 'CHANGE_NOTIFY request', command: Command.CHANGE_NOTIFY, encode: (w) => INF.encodeChangeNotifyRequest(w, { flags: 1, outputBufferLength: 4096, fileId: fid, completionFilter: 0x17 }), decode: INF.decodeChangeNotifyRequest, expected: { flags: 1, outputBufferLength: 4096, fileId: fid, completionFilter: 0x17 } },
  { name: 'OPLOCK_BREAK acknowledgment', command: Command.OPLOCK_BREAK, encode: (w) => BR.encodeBreakAck(w, { kind: 'oplock', oplockLevel: 1, fileId: fid }), decode: BR.decodeBreakAck, expected: { kind: 'oplock', oplockLevel: 1, fileId: fid } },
  { name: 'LEASE_BREAK acknowledgment', command: Command.OPLOCK_BREAK, encode: (w) => BR.encodeBreakAck(w, { kind: 'lease', flags: 0, leaseKey: guid, leaseState: 1, leaseDuration: 0n }), decode: BR.decodeBreakAck, expected: { kind: 'lease', flags: 0, leaseKey: guid, leaseState: 1, leaseDuration: 0n } },
  { name: 'LEASE_BREAK notification', command: Command.OPLOCK_BREAK, encode: (w) => BR.encodeLeaseBreakNotification(w, { newEpoch: 2, flags: 1, leaseKey: guid, currentLeaseState: 7, newLeaseState: 1 }), decode: BR.decodeLeaseBreakNotification, expected: { newEpoch: 2, flags: 1, leaseKey: guid, currentLeaseState: 7, newLeaseState: 1 } },
  { name: 'ERROR response (empty)', command: Command.CREATE, encode: (w) => ER.encodeErrorResponse(w), decode: ER.decodeErrorResponse, expected: { errorContextCount: 0, errorData: Buffer.alloc(0) } },
  { name: 'ERROR response (data)', command: Command.QUERY_INFO, encode: (w) => ER.encodeErrorResponse(w, { errorContextCount: 0, errorData: hex('10000000') }), decode: ER.decodeErrorResponse, expected: { errorContextCount: 0, errorData: hex('10000000') } },
  { name: 'ECHO', command: Command.ECHO, encode: SI.encodeEmpty, decode: (el) => SI.decodeEmpty(el, 'ECHO'), expected: undefined },
  { name: 'SET_INFO response', command: Command.SET_INFO, encode: SI.encodeSetInfoResponse, decode: SI.decodeSetInfoResponse, expected: undefined },
];

describe('round trips', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    expect(c.decode(element(c.command, c.encode))).toEqual(c.expected);
  });
});

describe('bounds: every truncation is an SmbDecodeError value', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    const el = element(c.command, c.encode);
    for (let n = 0; n < el.length; n++) {
      const r = tryDecode(() => c.decode(el.subarray(0, n)));
      // A shorter message may still decode when the cut only removes a trailing buffer's padding byte.
      if (!r.ok) expect(r.error).toBeInstanceOf(SmbDecodeError);
    }
    // Cutting the fixed part always fails.
    expect(tryDecode(() => c.decode(el.subarray(0, HEADER_BYTES + 1))).ok).toBe(false);
  });
});

describe('bounds: lying offsets and lengths', () => {
  it('a security buffer whose length or offset runs past the message', () => {
    const el = element(Command.SESSION_SETUP, (w) => SS.encodeSessionSetupRequest(w, { flags: 0, securityMode: 1, capabilities: 0, channel: 0, previousSessionId: 0n, securityBuffer: hex('a1020304') }));
    const past = Buffer.from(el);
    past.writeUInt16LE(200, HEADER_BYTES + 14);
    expect(tryDecode(() => SS.decodeSessionSetupRequest(past))).toMatchObject({ ok: false, error: { kind: 'bad-offset' } });
    const off = Buffer.from(el);
    off.writeUInt16LE(0xfff0, HEADER_BYTES + 12);
    expect(tryDecode(() => SS.decodeSessionSetupRequest(off))).toMatchObject({ ok: false, error: { kind: 'bad-offset' } });
  });

  it('READ and WRITE lengths over the configured maximum', () => {
    const el = element(Command.READ, (w) => F.encodeReadRequest(w, { padding: 0, flags: 0, length: 2 << 20, offset: 0n, fileId: fid, minimumCount: 0, channel: 0, remainingBytes: 0 }));
    expect(tryDecode(() => F.decodeReadRequest(el, 1 << 20))).toMatchObject({ ok: false, error: { kind: 'too-long' } });
    const wr = element(Command.WRITE, (w) => F.encodeWriteRequest(w, { offset: 0n, fileId: fid, channel: 0, remainingBytes: 0, flags: 0, data: Buffer.alloc(100) }));
    wr.writeUInt32LE(0xffffffff, HEADER_BYTES + 4);
    expect(tryDecode(() => F.decodeWriteRequest(wr)).ok).toBe(false);
  });

  it('LOCK with zero or too many elements', () => {
    const el = element(Command.LOCK, (w) => F.encodeLockRequest(w, { lockSequence: 0, fileId: fid, locks: [{ offset: 0n, length: 1n, flags: 2 }] }));
    el.writeUInt16LE(0, HEADER_BYTES + 2);
    expect(tryDecode(() => F.decodeLockRequest(el)).ok).toBe(false);
    el.writeUInt16LE(60000, HEADER_BYTES + 2);
    expect(tryDecode(() => F.decodeLockRequest(el))).toMatchObject({ ok: false, error: { kind: 'too-long' } });
  });

  it('create contexts: Next unaligned, backward, or looping; a nameless context', () => {
    const el = element(Command.CREATE, (w) => CR.encodeCreateRequest(w, createReq));
    const ctxOff = el.readUInt32LE(HEADER_BYTES + 48);
    for (const next of [3, 8, 0xfffffff8]) {
      const bad = Buffer.from(el);
      bad.writeUInt32LE(next, ctxOff);
      expect(tryDecode(() => CR.decodeCreateRequest(bad)).ok).toBe(false);
    }
    const nameless = Buffer.from(el);
    nameless.writeUInt16LE(0, ctxOff + 6);
    expect(tryDecode(() => CR.decodeCreateRequest(nameless)).ok).toBe(false);
  });

  it('negotiate: a known context twice is refused, too many dialects or contexts are refused, unknown ones are kept raw', () => {
    const dup = element(Command.NEGOTIATE, (w) => N.encodeNegotiateRequest(w, { ...negReq, contexts: [negReq.contexts[0]!, negReq.contexts[0]!] }));
    expect(tryDecode(() => N.decodeNegotiateRequest(dup)).ok).toBe(false);
    const many = element(Command.NEGOTIATE, (w) => N.encodeNegotiateRequest(w, { ...negReq, dialects: new Array(65).fill(0x0311) }));
    expect(tryDecode(() => N.decodeNegotiateRequest(many)).ok).toBe(false);
    const el = element(Command.NEGOTIATE, (w) => N.encodeNegotiateRequest(w, negReq));
    el.writeUInt16LE(1000, HEADER_BYTES + 32);
    expect(tryDecode(() => N.decodeNegotiateRequest(el))).toMatchObject({ ok: false, error: { kind: 'too-long' } });
    const d = N.decodeNegotiateRequest(element(Command.NEGOTIATE, (w) => N.encodeNegotiateRequest(w, negReq)));
    expect(d.contexts.filter((c) => 'raw' in c).map((c) => c.type)).toEqual([5, 0x99]);
  });

  it('chooseContexts: server preference among the offered; no SHA-512 means no hash', () => {
    expect(N.chooseContexts(negReq.contexts, { ciphers: [2, 1], signing: [2, 1] })).toEqual({ hashAlgorithm: 1, cipher: 2, signingAlgorithm: 2 });
    expect(N.chooseContexts([{ type: 1, hashAlgorithms: [7], salt: Buffer.alloc(0) }], { ciphers: [2], signing: [1] })).toEqual({});
    expect(N.chooseContexts([{ type: 2, ciphers: [9] }], { ciphers: [2], signing: [1] })).toEqual({ cipher: 0 });
  });

  it('a TREE_CONNECT path of odd UTF-16 length, and the 3.1.1 extension flag, are refused', () => {
    const el = element(Command.TREE_CONNECT, (w) => TC.encodeTreeConnectRequest(w, { flags: 0, path: '\\\\a\\b' }));
    const odd = Buffer.from(el);
    odd.writeUInt16LE(odd.readUInt16LE(HEADER_BYTES + 6) - 1, HEADER_BYTES + 6);
    expect(tryDecode(() => TC.decodeTreeConnectRequest(odd)).ok).toBe(false);
    const ext = Buffer.from(el);
    ext.writeUInt16LE(4, HEADER_BYTES + 2);
    expect(tryDecode(() => TC.decodeTreeConnectRequest(ext)).ok).toBe(false);
  });
});

describe('SMB1 NEGOTIATE', () => {
  it('finds "SMB 2.002" and "SMB 2.???" among NT LM 0.12 and others', () => {
    const m = encodeSmb1Negotiate(['NT LM 0.12', 'SMB 2.002', 'SMB 2.???']);
    expect(isSmb1(m)).toBe(true);
    expect(decodeSmb1Negotiate(m)).toEqual({ dialects: ['NT LM 0.12', 'SMB 2.002', 'SMB 2.???'], smb2002: true, smb2Wildcard: true });
    expect(decodeSmb1Negotiate(encodeSmb1Negotiate(['NT LM 0.12']))).toMatchObject({ smb2002: false, smb2Wildcard: false });
    expect(smb2DialectForSmb1(decodeSmb1Negotiate(m))).toBe(0x02ff);
    expect(smb2DialectForSmb1(decodeSmb1Negotiate(encodeSmb1Negotiate(['NT LM 0.12', 'SMB 2.002'])))).toBe(0x0202);
    expect(smb2DialectForSmb1(decodeSmb1Negotiate(encodeSmb1Negotiate(['NT LM 0.12'])))).toBeUndefined();
  });

  it('unterminated strings, a wrong buffer format, another command: SmbDecodeError', () => {
    const m = encodeSmb1Negotiate(['SMB 2.002']);
    for (let n = 0; n < m.length; n++) {
      const r = tryDecode(() => decodeSmb1Negotiate(m.subarray(0, n)));
      expect(r.ok).toBe(false);
    }
    const fmt = Buffer.from(m);
    fmt[35] = 3;
    expect(tryDecode(() => decodeSmb1Negotiate(fmt)).ok).toBe(false);
    const cmd = Buffer.from(m);
    cmd[4] = 0x73;
    expect(tryDecode(() => decodeSmb1Negotiate(cmd)).ok).toBe(false);
  });
});

describe('IOCTL payloads', () => {
  it('VALIDATE_NEGOTIATE_INFO round-trips and must repeat the NEGOTIATE exactly', () => {
    const neg = { capabilities: 0x7f, clientGuid: guid, securityMode: 1, dialects: [0x0202, 0x0210, 0x0300, 0x0302] };
    const q = IO.decodeValidateNegotiateInfo(IO.encodeValidateNegotiateInfo({ capabilities: 0x7f, guid, securityMode: 1, dialects: neg.dialects }));
    expect(IO.validateNegotiateMatches(q, neg)).toBe(true);
    expect(IO.validateNegotiateMatches({ ...q, dialects: [0x0300] }, neg)).toBe(false);
    expect(IO.validateNegotiateMatches({ ...q, securityMode: 2 }, neg)).toBe(false);
    expect(IO.validateNegotiateMatches({ ...q, capabilities: 0 }, neg)).toBe(false);
    const resp = { capabilities: 4, guid, securityMode: 3, dialect: 0x0302 };
    expect(IO.decodeValidateNegotiateInfoResponse(IO.encodeValidateNegotiateInfoResponse(resp))).toEqual(resp);
    const bad = IO.encodeValidateNegotiateInfo({ capabilities: 0, guid, securityMode: 1, dialects: [0x0300] });
    bad.writeUInt16LE(9, 22);
    expect(tryDecode(() => IO.decodeValidateNegotiateInfo(bad)).ok).toBe(false);
  });

  it('QUERY_NETWORK_INTERFACE_INFO entries, IPv4 and IPv6', () => {
    const list = [
      { ifIndex: 1, capability: 1, linkSpeed: 10_000_000_000n, address: '192.168.1.10' },
      { ifIndex: 2, capability: 0, linkSpeed: 1_000_000_000n, address: 'fe80:0:0:0:0:0:0:1' },
    ];
    const b = IO.encodeNetworkInterfaceInfo(list);
    expect(b.length).toBe(2 * 152);
    expect(IO.decodeNetworkInterfaceInfo(b)).toEqual(list);
    expect(IO.decodeNetworkInterfaceInfo(IO.encodeNetworkInterfaceInfo([{ ...list[1]!, address: 'fe80::1' }]))[0]!.address).toBe('fe80:0:0:0:0:0:0:1');
  });
});

describe('create context payloads', () => {
  it('round trips and exact sizes', () => {
    expect(CC.decodeMaximalAccessRequest(Buffer.alloc(0))).toEqual({});
    expect(CC.decodeMaximalAccessRequest(hex('0100000000000000'))).toEqual({ timestamp: 1n });
    expect(CC.encodeMaximalAccessResponse(0, 0x1f01ff).toString('hex')).toBe('00000000ff011f00');
    expect(CC.encodeQueryOnDiskIdResponse(7n, 9n).length).toBe(32);
    const dh2q = { timeoutMs: 60000, flags: 0, createGuid: guid };
    expect(CC.decodeDurableRequestV2(CC.encodeDurableRequestV2(dh2q))).toEqual(dh2q);
    const dh2c = { fileId: fid, createGuid: guid, flags: 0 };
    expect(CC.decodeDurableReconnectV2(CC.encodeDurableReconnectV2(dh2c))).toEqual(dh2c);
    const v1 = { version: 1 as const, leaseKey: guid, leaseState: 7, flags: 0 };
    const v2 = { version: 2 as const, leaseKey: guid, leaseState: 3, flags: 4, parentLeaseKey: Buffer.alloc(16, 9), epoch: 5 };
    expect(CC.decodeLeaseRequest(CC.encodeLease(v1))).toEqual(v1);
    expect(CC.decodeLeaseRequest(CC.encodeLease(v2))).toEqual(v2);
    for (const [fn, n] of [[CC.decodeDurableRequest, 15], [CC.decodeDurableRequestV2, 31], [CC.decodeLeaseRequest, 40], [CC.decodeTimewarp, 4], [CC.decodeAllocationSize, 9], [CC.decodeDurableReconnect, 17]] as const) {
      const r = tryDecode(() => (fn as (b: Buffer) => unknown)(Buffer.alloc(n)));
      expect(r.ok).toBe(false);
    }
  });

  it('findContext by name in a decoded CREATE', () => {
    const q = CR.decodeCreateRequest(element(Command.CREATE, (w) => CR.encodeCreateRequest(w, createReq)));
    expect(CC.findContext(q.contexts, CC.ContextName.DURABLE_REQUEST_V2)?.data.length).toBe(32);
    expect(CC.findContext(q.contexts, CC.ContextName.LEASE)).toBeUndefined();
  });
});

describe('ERROR data', () => {
  const link = { unparsedPathLength: 8, substituteName: '..\\target dir\\f', printName: '..\\target dir\\f', relative: true };

  it('the symbolic link error response round-trips, bare and in a 3.1.1 error context', () => {
    expect(ER.decodeSymlinkErrorData(ER.encodeSymlinkErrorData(link))).toEqual(link);
    const e = ER.errorWithContexts([{ id: ER.ErrorId.DEFAULT, data: ER.encodeSymlinkErrorData(link) }, { id: 7, data: hex('01') }]);
    const el = element(Command.CREATE, (w) => ER.encodeErrorResponse(w, e), { status: 0x8000002d });
    const back = ER.decodeErrorResponse(el);
    const ctx = ER.decodeErrorContexts(back);
    expect(ctx.map((c) => c.id)).toEqual([0, 7]);
    expect(ER.decodeSymlinkErrorData(ctx[0]!.data)).toEqual(link);
    expect(ER.encodeRequiredSize(4096).readUInt32LE(0)).toBe(4096);
  });

  it('impacket reads Portico\'s symbolic link error response field by field', async () => {
    if (!(await hasImpacket())) return;
    const py = await runPython(`from impacket.smb3structs import SMB2ErrorSymbolicLink
s = SMB2ErrorSymbolicLink(h(inp['b']))
pb = s['PathBuffer']
out = {k: s[k] for k in ['SymLinkLength', 'SymLinkErrorTag', 'ReparseTag', 'ReparseDataLenght', 'UnparsedPathLength', 'SubstituteNameLength', 'PrintNameOffset', 'Flags']}
out['sub'] = pb[s['SubstituteNameOffset']:s['SubstituteNameOffset'] + s['SubstituteNameLength']].decode('utf-16le')`, { b: ER.encodeSymlinkErrorData(link).toString('hex') });
    const n = Buffer.byteLength(link.substituteName, 'utf16le');
    expect(py).toEqual({ SymLinkLength: 24 + 2 * n, SymLinkErrorTag: 0x4c4d5953, ReparseTag: 0xa000000c, ReparseDataLenght: 12 + 2 * n, UnparsedPathLength: 8, SubstituteNameLength: n, PrintNameOffset: n, Flags: 1, sub: link.substituteName });
  });

  it('lying lengths are SmbDecodeErrors', () => {
    const b = ER.encodeSymlinkErrorData(link);
    for (let n = 0; n < b.length; n++) expect(tryDecode(() => ER.decodeSymlinkErrorData(b.subarray(0, n))).ok).toBe(false);
    const bad = Buffer.from(b);
    bad.writeUInt16LE(0xfff0, 16);
    expect(tryDecode(() => ER.decodeSymlinkErrorData(bad)).ok).toBe(false);
    expect(tryDecode(() => ER.decodeErrorContexts({ errorContextCount: 3, errorData: hex('0400000000000000aabbccdd') })).ok).toBe(false);
  });
});
