/**
 * DCE/RPC over SMB named pipes (C706 ch. 12, MS-RPCE 2.2.2): the connection-oriented PDUs a
 * server needs (BIND -> BIND_ACK, REQUEST -> RESPONSE or FAULT) and NDR for the srvsvc calls
 * `smbclient -L` and Windows' `\\host` view make: NetrShareEnumAll (opnum 15) and
 * NetrShareGetInfo (opnum 16), information level 1 (MS-SRVS 3.1.4.8, 3.1.4.10).
 *
 * Bounds: a PDU's frag_length must match the bytes given (a pipe write carries whole PDUs; one
 * over `MAX_PDU` is refused); context and transfer-syntax counts are limited; NDR strings are
 * checked (offset 0, actual <= max, within the stub) before they are read. Only little-endian
 * NDR with ASCII characters is accepted (every client sends it); anything else is a decode
 * error, which the pipe answers with a FAULT or a BIND_NAK. Authenticated RPC (auth_length > 0)
 * is refused: srvsvc over SMB needs no RPC-level auth, the SMB session already has it.
 */
import { SmbDecodeError, WireReader, WireWriter } from './wire.ts';

export const PTYPE = { REQUEST: 0, RESPONSE: 2, FAULT: 3, BIND: 11, BIND_ACK: 12, BIND_NAK: 13, ALTER_CONTEXT: 14, ALTER_CONTEXT_RESP: 15 } as const;
export const PFC = { FIRST_FRAG: 0x01, LAST_FRAG: 0x02, OBJECT_UUID: 0x80 } as const;

/** A PDU is at most what Windows uses as max_xmit_frag (4280) times a margin: 64 KiB. */
export const MAX_PDU = 64 * 1024;
export const MAX_CONTEXTS = 16;
export const MAX_TRANSFER_SYNTAXES = 8;
/** What this server sends and receives per fragment (Windows' default). */
export const MAX_FRAG = 4280;

export interface SyntaxId {
  uuid: string;
  version: number;
}

export const SYNTAX = {
  SRVSVC: { uuid: '4b324fc8-1670-01d3-1278-5a47bf6ee188', version: 3 },
  NDR: { uuid: '8a885d04-1ceb-11c9-9fe8-08002b104860', version: 2 },
  NDR64: { uuid: '71710533-beba-4937-8319-b5dbef9ccc36', version: 1 },
} as const;
/** Bind-time feature negotiation (MS-RPCE 3.3.1.5.3): the uuid's first 8 bytes name it. */
export const BIND_TIME_FEATURE_PREFIX = '6cb71c2c-9812-4540';

export interface PduHeader {
  ptype: number;
  flags: number;
  fragLength: number;
  authLength: number;
  callId: number;
}

export interface PresentationContext {
  contextId: number;
  abstract: SyntaxId;
  transfer: SyntaxId[];
}

export interface BindPdu {
  header: PduHeader;
  maxXmitFrag: number;
  maxRecvFrag: number;
  assocGroupId: number;
  contexts: PresentationContext[];
}

export interface RequestPdu {
  header: PduHeader;
  allocHint: number;
  contextId: number;
  opnum: number;
  stub: Buffer;
}

export type Pdu = { kind: 'bind'; pdu: BindPdu } | { kind: 'request'; pdu: RequestPdu } | { kind: 'other'; header: PduHeader };

function uuidFrom(b: Buffer): string {
  const h = b.toString('hex');
  const le = (s: string): string => s.match(/../g)!.reverse().join('');
  return `${le(h.slice(0, 8))}-${le(h.slice(8, 12))}-${le(h.slice(12, 16))}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidBytes(uuid: string): Buffer {
  const p = uuid.split('-');
  const le = (s: string): Buffer => Buffer.from(s, 'hex').reverse();
  return Buffer.concat([le(p[0]!), le(p[1]!), le(p[2]!), Buffer.from(p[3]! + p[4]!, 'hex')]);
}

function readSyntax(r: WireReader): SyntaxId {
  const uuid = uuidFrom(r.bytes(16));
  return { uuid, version: r.u32() };
}

function readHeader(r: WireReader, total: number): PduHeader {
  r.need(16, 'RPC header');
  const vers = r.u8();
  const minor = r.u8();
  if (vers !== 5 || minor > 1) throw new SmbDecodeError('bad-value', `RPC version ${vers}.${minor}`);
  const ptype = r.u8();
  const flags = r.u8();
  const drep = r.u32();
  // Little-endian integers, ASCII characters, IEEE floats: 0x10 0 0 0.
  if ((drep & 0xffff) !== 0x0010) throw new SmbDecodeError('bad-value', `RPC data representation 0x${drep.toString(16)}`, 4);
  const fragLength = r.u16();
  const authLength = r.u16();
  const callId = r.u32();
  if (fragLength !== total) throw new SmbDecodeError('bad-value', `frag_length ${fragLength}, ${total} bytes`, 8);
  if (authLength !== 0) throw new SmbDecodeError('bad-value', 'authenticated RPC is not supported', 10);
  return { ptype, flags, fragLength, authLength, callId };
}

/** Decodes one whole PDU (a pipe write or a transceive input). Throws SmbDecodeError. */
export function decodePdu(b: Buffer): Pdu {
  if (b.length > MAX_PDU) throw new SmbDecodeError('too-long', `RPC PDU of ${b.length} bytes`);
  const r = new WireReader(b);
  const header = readHeader(r, b.length);
  if (header.ptype === PTYPE.BIND || header.ptype === PTYPE.ALTER_CONTEXT) {
    const maxXmitFrag = r.u16();
    const maxRecvFrag = r.u16();
    const assocGroupId = r.u32();
    const n = r.u8();
    r.skip(3);
    if (n === 0 || n > MAX_CONTEXTS) throw new SmbDecodeError('bad-value', `${n} presentation contexts`, 24);
    const contexts: PresentationContext[] = [];
    for (let i = 0; i < n; i++) {
      const contextId = r.u16();
      const nt = r.u8();
      r.skip(1);
      if (nt === 0 || nt > MAX_TRANSFER_SYNTAXES) throw new SmbDecodeError('bad-value', `${nt} transfer syntaxes`, r.pos);
      const abstract = readSyntax(r);
      const transfer: SyntaxId[] = [];
      for (let j = 0; j < nt; j++) transfer.push(readSyntax(r));
      contexts.push({ contextId, abstract, transfer });
    }
    return { kind: 'bind', pdu: { header, maxXmitFrag, maxRecvFrag, assocGroupId, contexts } };
  }
  if (header.ptype === PTYPE.REQUEST) {
    const allocHint = r.u32();
    const contextId = r.u16();
    const opnum = r.u16();
    if (header.flags & PFC.OBJECT_UUID) r.skip(16);
    if ((header.flags & (PFC.FIRST_FRAG | PFC.LAST_FRAG)) !== (PFC.FIRST_FRAG | PFC.LAST_FRAG)) {
      throw new SmbDecodeError('bad-value', 'fragmented RPC requests are not supported', 3);
    }
    return { kind: 'request', pdu: { header, allocHint, contextId, opnum, stub: r.bytes(r.remaining) } };
  }
  return { kind: 'other', header };
}

function writeHeader(w: WireWriter, ptype: number, callId: number, flags = PFC.FIRST_FRAG | PFC.LAST_FRAG): number {
  w.u8(5).u8(0).u8(ptype).u8(flags).u32(0x10);
  const lenAt = w.len;
  w.u16(0).u16(0).u32(callId);
  return lenAt;
}

/** Result of one presentation context (C706 p_cont_def_result_t; 3 = negotiate_ack, MS-RPCE). */
export const BindResult = { ACCEPTANCE: 0, USER_REJECTION: 1, PROVIDER_REJECTION: 2, NEGOTIATE_ACK: 3 } as const;
export const BindReason = { NOT_SPECIFIED: 0, ABSTRACT_SYNTAX_NOT_SUPPORTED: 1, TRANSFER_SYNTAXES_NOT_SUPPORTED: 2 } as const;

export interface ContextResult {
  result: number;
  reason: number;
  transfer: SyntaxId;
}

/** Accepts NDR for the abstract syntaxes listed; rejects the rest; acknowledges bind-time feature negotiation without features. */
export function bindResults(bind: BindPdu, supported: readonly SyntaxId[]): ContextResult[] {
  const none = { uuid: '00000000-0000-0000-0000-000000000000', version: 0 };
  return bind.contexts.map((c) => {
    const feature = c.transfer.find((t) => t.uuid.startsWith(BIND_TIME_FEATURE_PREFIX));
    if (feature) return { result: BindResult.NEGOTIATE_ACK, reason: 0, transfer: none };
    if (!supported.some((s) => s.uuid === c.abstract.uuid && s.version === c.abstract.version)) {
      return { result: BindResult.PROVIDER_REJECTION, reason: BindReason.ABSTRACT_SYNTAX_NOT_SUPPORTED, transfer: none };
    }
    const ndr = c.transfer.find((t) => t.uuid === SYNTAX.NDR.uuid && t.version === SYNTAX.NDR.version);
    if (!ndr) return { result: BindResult.PROVIDER_REJECTION, reason: BindReason.TRANSFER_SYNTAXES_NOT_SUPPORTED, transfer: none };
    return { result: BindResult.ACCEPTANCE, reason: 0, transfer: ndr };
  });
}

export function encodeBindAck(bind: BindPdu, results: ContextResult[], secondaryAddress: string, assocGroupId: number): Buffer {
  const w = new WireWriter(128);
  const lenAt = writeHeader(w, bind.header.ptype === PTYPE.ALTER_CONTEXT ? PTYPE.ALTER_CONTEXT_RESP : PTYPE.BIND_ACK, bind.header.callId);
  w.u16(Math.min(bind.maxRecvFrag, MAX_FRAG)).u16(Math.min(bind.maxXmitFrag, MAX_FRAG)).u32(assocGroupId);
  const addr = Buffer.from(`${secondaryAddress}\0`, 'latin1');
  w.u16(addr.length).bytes(addr).align(4);
  w.u8(results.length).u8(0).u16(0);
  for (const r of results) w.u16(r.result).u16(r.reason).bytes(uuidBytes(r.transfer.uuid)).u32(r.transfer.version);
  w.patchU16(lenAt, w.len);
  return Buffer.from(w.finish());
}

export function encodeBindNak(callId: number, reason = 0): Buffer {
  const w = new WireWriter(32);
  const lenAt = writeHeader(w, PTYPE.BIND_NAK, callId);
  w.u16(reason).u8(0);
  w.patchU16(lenAt, w.len);
  return Buffer.from(w.finish());
}

/** RESPONSE fragments of at most `maxFrag` bytes each carrying part of the stub. */
export function encodeResponse(req: RequestPdu, stub: Buffer, maxFrag = MAX_FRAG): Buffer[] {
  const room = maxFrag - 24;
  const out: Buffer[] = [];
  let at = 0;
  do {
    const part = stub.subarray(at, at + room);
    const flags = (at === 0 ? PFC.FIRST_FRAG : 0) | (at + part.length >= stub.length ? PFC.LAST_FRAG : 0);
    const w = new WireWriter(24 + part.length);
    const lenAt = writeHeader(w, PTYPE.RESPONSE, req.header.callId, flags);
    w.u32(stub.length - at).u16(req.contextId).u8(0).u8(0).bytes(part);
    w.patchU16(lenAt, w.len);
    out.push(Buffer.from(w.finish()));
    at += part.length;
  } while (at < stub.length);
  return out;
}

/** nca_s_op_rng_error and friends (C706 Appendix E; MS-RPCE 3.1.1.5.5). */
export const FaultStatus = { OP_RNG_ERROR: 0x1c010002, PROTO_ERROR: 0x1c01000b, UNSPEC_REJECT: 0x1c000009, ACCESS_DENIED: 0x00000005 } as const;

export function encodeFault(callId: number, contextId: number, status: number): Buffer {
  const w = new WireWriter(32);
  const lenAt = writeHeader(w, PTYPE.FAULT, callId);
  w.u32(0).u16(contextId).u8(0).u8(0).u32(status).u32(0);
  w.patchU16(lenAt, w.len);
  return Buffer.from(w.finish());
}

// ---------------------------------------------------------------- NDR (srvsvc)

/** A bounded NDR reader over a stub: 4-byte alignment from the stub's start. */
class NdrReader extends WireReader {
  align4(): void {
    const pad = (4 - ((this.pos - this.start) % 4)) % 4;
    this.skip(pad);
  }
  /** A conformant varying UTF-16 string (max_count, offset, actual_count, chars), NUL dropped. */
  string(what: string): string {
    this.align4();
    const max = this.u32();
    const offset = this.u32();
    const actual = this.u32();
    if (offset !== 0 || actual > max || actual * 2 > this.remaining) throw new SmbDecodeError('bad-value', `${what}: NDR string ${offset}/${actual}/${max}`, this.pos);
    const s = this.bytes(actual * 2).toString('utf16le');
    return s.endsWith('\0') ? s.slice(0, -1) : s;
  }
  /** A unique pointer's referent id: 0 is NULL. */
  pointer(): number {
    this.align4();
    return this.u32();
  }
}

class NdrWriter extends WireWriter {
  private ref = 0x20000;
  referent(): number {
    this.u32(this.ref);
    return (this.ref += 4);
  }
  string(s: string): void {
    this.align(4);
    const n = s.length + 1;
    this.u32(n).u32(0).u32(n).bytes(Buffer.from(`${s}\0`, 'utf16le'));
    this.align(4);
  }
}

export const SrvsvcOpnum = { NetrShareEnumAll: 15, NetrShareGetInfo: 16 } as const;

export interface ShareEnumRequest {
  serverName?: string;
  level: number;
  preferredMaximumLength: number;
  resumeHandle?: number;
}

export function decodeShareEnumAll(stub: Buffer): ShareEnumRequest {
  const r = new NdrReader(stub);
  const out: ShareEnumRequest = { level: 0, preferredMaximumLength: 0 };
  if (r.pointer() !== 0) out.serverName = r.string('ServerName');
  r.align4();
  out.level = r.u32();
  const sw = r.u32();
  if (sw !== out.level) throw new SmbDecodeError('bad-value', `union switch ${sw} for level ${out.level}`);
  // The container the client sends in is empty (EntriesRead 0, NULL buffer); read past it.
  if (r.pointer() !== 0) {
    r.u32();
    r.pointer();
  }
  out.preferredMaximumLength = r.u32();
  if (r.pointer() !== 0) out.resumeHandle = r.u32();
  return out;
}

export interface ShareGetInfoRequest {
  serverName?: string;
  netName: string;
  level: number;
}

export function decodeShareGetInfo(stub: Buffer): ShareGetInfoRequest {
  const r = new NdrReader(stub);
  let serverName: string | undefined;
  if (r.pointer() !== 0) serverName = r.string('ServerName');
  const netName = r.string('NetName');
  r.align4();
  const level = r.u32();
  return { ...(serverName !== undefined ? { serverName } : {}), netName, level };
}

/** STYPE_* (MS-SRVS 2.2.2.4). */
export const ShareType = { DISKTREE: 0x0, IPC: 0x3, SPECIAL: 0x8000_0000 } as const;

export interface ShareInfo1 {
  name: string;
  type: number;
  remark: string;
}

/** WERROR values the two calls return. */
export const WERR = { OK: 0, ACCESS_DENIED: 5, INVALID_LEVEL: 124, NET_NAME_NOT_FOUND: 2310 } as const;

/** NetrShareEnumAll's response stub, level 1 (all entries in one answer; resume handle 0). */
export function encodeShareEnumAllResponse(shares: ShareInfo1[], resume: boolean, werror: number = WERR.OK): Buffer {
  const w = new NdrWriter(256);
  w.u32(1).u32(1);
  w.referent(); // SHARE_INFO_1_CONTAINER
  w.u32(shares.length);
  if (shares.length) {
    w.referent();
    w.u32(shares.length);
    for (const s of shares) {
      w.referent();
      w.u32(s.type >>> 0);
      w.referent();
    }
    for (const s of shares) {
      w.string(s.name);
      w.string(s.remark);
    }
  } else {
    w.u32(0);
  }
  w.u32(shares.length); // TotalEntries
  if (resume) {
    w.referent();
    w.u32(0);
  } else {
    w.u32(0);
  }
  w.u32(werror);
  return Buffer.from(w.finish());
}

export function encodeShareGetInfoResponse(share: ShareInfo1 | undefined, werror: number): Buffer {
  const w = new NdrWriter(128);
  w.u32(1);
  if (share) {
    w.referent();
    w.referent();
    w.u32(share.type >>> 0);
    w.referent();
    w.string(share.name);
    w.string(share.remark);
  } else {
    w.u32(0);
  }
  w.u32(werror);
  return Buffer.from(w.finish());
}

/** Test/client side: decodes a level-1 NetrShareEnumAll response stub. */
export function decodeShareEnumAllResponse(stub: Buffer): { shares: ShareInfo1[]; total: number; werror: number } {
  const r = new NdrReader(stub);
  const level = r.u32();
  r.u32();
  if (level !== 1) throw new SmbDecodeError('bad-value', `level ${level}`);
  const shares: ShareInfo1[] = [];
  if (r.pointer() !== 0) {
    const n = r.u32();
    if (r.pointer() !== 0) {
      const count = r.u32();
      if (count !== n || count * 12 > r.remaining) throw new SmbDecodeError('bad-value', `array of ${count}`);
      const fixed: { type: number }[] = [];
      for (let i = 0; i < count; i++) {
        r.u32();
        fixed.push({ type: r.u32() });
        r.u32();
      }
      for (const f of fixed) shares.push({ name: r.string('netname'), type: f.type, remark: r.string('remark') });
    }
  }
  const total = r.u32();
  if (r.pointer() !== 0) r.u32();
  return { shares, total, werror: r.u32() };
}

/** Test/client side: a BIND and a REQUEST as a client sends them. */
export function encodeBind(callId: number, contexts: PresentationContext[]): Buffer {
  const w = new WireWriter(128);
  const lenAt = writeHeader(w, PTYPE.BIND, callId);
  w.u16(MAX_FRAG).u16(MAX_FRAG).u32(0).u8(contexts.length).u8(0).u16(0);
  for (const c of contexts) {
    w.u16(c.contextId).u8(c.transfer.length).u8(0).bytes(uuidBytes(c.abstract.uuid)).u32(c.abstract.version);
    for (const t of c.transfer) w.bytes(uuidBytes(t.uuid)).u32(t.version);
  }
  w.patchU16(lenAt, w.len);
  return Buffer.from(w.finish());
}

export function encodeRequest(callId: number, contextId: number, opnum: number, stub: Buffer): Buffer {
  const w = new WireWriter(24 + stub.length);
  const lenAt = writeHeader(w, PTYPE.REQUEST, callId);
  w.u32(stub.length).u16(contextId).u16(opnum).bytes(stub);
  w.patchU16(lenAt, w.len);
  return Buffer.from(w.finish());
}

export function encodeShareEnumAllRequest(serverName: string, resume = true): Buffer {
  const w = new NdrWriter(128);
  w.referent();
  w.string(serverName);
  w.u32(1).u32(1);
  w.referent();
  w.u32(0).u32(0);
  w.u32(0xffffffff);
  if (resume) {
    w.referent();
    w.u32(0);
  } else w.u32(0);
  return Buffer.from(w.finish());
}
