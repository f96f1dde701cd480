/**
 * NEGOTIATE request and response (MS-SMB2 2.2.3, 2.2.4) with the SMB 3.1.1 negotiate contexts
 * (2.2.3.1): PREAUTH_INTEGRITY_CAPABILITIES, ENCRYPTION_CAPABILITIES, SIGNING_CAPABILITIES
 * decoded; every other context type (COMPRESSION, NETNAME, TRANSPORT, RDMA, unknown ones) is kept
 * as raw bytes and ignored by the server, as 3.3.5.4 requires ("the server MUST ignore" unknown
 * context types). Contexts are 8-byte aligned from the header.
 */
import { SmbDecodeError, WireReader, WireWriter } from '../wire.ts';
import { bodyReader } from './body.ts';

export const Dialect = {
  SMB2_0_2: 0x0202,
  SMB2_1: 0x0210,
  SMB3_0: 0x0300,
  SMB3_0_2: 0x0302,
  SMB3_1_1: 0x0311,
  /** The answer to an SMB1 negotiate offering "SMB 2.???": the client must negotiate again over SMB2. */
  WILDCARD: 0x02ff,
} as const;

export const SecurityMode = { SIGNING_ENABLED: 0x1, SIGNING_REQUIRED: 0x2 } as const;

export const Capabilities = {
  DFS: 0x01,
  LEASING: 0x02,
  LARGE_MTU: 0x04,
  MULTI_CHANNEL: 0x08,
  PERSISTENT_HANDLES: 0x10,
  DIRECTORY_LEASING: 0x20,
  ENCRYPTION: 0x40,
} as const;

export const ContextType = {
  PREAUTH_INTEGRITY: 0x0001,
  ENCRYPTION: 0x0002,
  COMPRESSION: 0x0003,
  NETNAME: 0x0005,
  TRANSPORT: 0x0006,
  RDMA_TRANSFORM: 0x0007,
  SIGNING: 0x0008,
} as const;

export const HashAlgorithm = { SHA512: 0x0001 } as const;
export const Cipher = { AES_128_CCM: 0x0001, AES_128_GCM: 0x0002, AES_256_CCM: 0x0003, AES_256_GCM: 0x0004 } as const;
export const SigningAlgorithm = { HMAC_SHA256: 0x0000, AES_CMAC: 0x0001, AES_GMAC: 0x0002 } as const;

/** Bounds: more than this is refused as malformed (Windows sends 5 dialects, 4 ciphers, ~6 contexts). */
export const MAX_DIALECTS = 64;
export const MAX_CONTEXTS = 32;
export const MAX_ALGORITHMS = 32;
export const MAX_SALT = 64;

export type NegotiateContext =
  | { type: 0x0001; hashAlgorithms: number[]; salt: Buffer }
  | { type: 0x0002; ciphers: number[] }
  | { type: 0x0008; signingAlgorithms: number[] }
  | { type: number; data: Buffer; raw: true };

export interface NegotiateRequest {
  dialects: number[];
  securityMode: number;
  capabilities: number;
  clientGuid: Buffer;
  /** 3.1.1 only (empty otherwise). */
  contexts: NegotiateContext[];
}

export interface NegotiateResponse {
  securityMode: number;
  dialect: number;
  serverGuid: Buffer;
  capabilities: number;
  maxTransactSize: number;
  maxReadSize: number;
  maxWriteSize: number;
  /** FILETIME (100 ns since 1601). */
  systemTime: bigint;
  serverStartTime: bigint;
  securityBuffer: Buffer;
  contexts: NegotiateContext[];
}

function readAlgorithms(r: WireReader, what: string): number[] {
  const at = r.pos;
  const n = r.u16();
  if (n === 0 || n > MAX_ALGORITHMS) throw new SmbDecodeError('bad-value', `${what} count ${n}`, at);
  r.need(n * 2, what);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.u16());
  return out;
}

function decodeContextData(type: number, data: Buffer): NegotiateContext {
  const r = new WireReader(data);
  switch (type) {
    case ContextType.PREAUTH_INTEGRITY: {
      const count = r.u16();
      const saltLength = r.u16();
      if (count === 0 || count > MAX_ALGORITHMS) throw new SmbDecodeError('bad-value', `preauth HashAlgorithmCount ${count}`);
      if (saltLength > MAX_SALT) throw new SmbDecodeError('too-long', `preauth salt of ${saltLength} bytes`);
      r.need(count * 2, 'hash algorithms');
      const hashAlgorithms: number[] = [];
      for (let i = 0; i < count; i++) hashAlgorithms.push(r.u16());
      return { type, hashAlgorithms, salt: r.bytes(saltLength, 'salt') };
    }
    case ContextType.ENCRYPTION:
      return { type, ciphers: readAlgorithms(r, 'ciphers') };
    case ContextType.SIGNING:
      return { type, signingAlgorithms: readAlgorithms(r, 'signing algorithms') };
    default:
      return { type, data, raw: true };
  }
}

/** Negotiate contexts: `count` of them from `offset` (from the header), each 8-byte aligned. */
export function decodeContexts(r: WireReader, offset: number, count: number): NegotiateContext[] {
  if (count > MAX_CONTEXTS) throw new SmbDecodeError('too-long', `${count} negotiate contexts`, offset);
  const out: NegotiateContext[] = [];
  const seen = new Set<number>();
  let at = offset;
  for (let i = 0; i < count; i++) {
    if (i > 0) at += (8 - (at % 8)) % 8;
    const head = r.slice(at, 8, 'negotiate context header');
    const type = head.readUInt16LE(0);
    const len = head.readUInt16LE(2);
    const data = r.slice(at + 8, len, 'negotiate context data');
    // 3.3.5.4: a context type given twice is malformed (STATUS_INVALID_PARAMETER), for the ones the server reads.
    if ((type === ContextType.PREAUTH_INTEGRITY || type === ContextType.ENCRYPTION || type === ContextType.SIGNING) && seen.has(type)) {
      throw new SmbDecodeError('bad-value', `negotiate context ${type} twice`, at);
    }
    seen.add(type);
    out.push(decodeContextData(type, data));
    at += 8 + len;
  }
  return out;
}

export function decodeNegotiateRequest(element: Buffer): NegotiateRequest {
  const r = bodyReader(element, 'NEGOTIATE');
  r.structure(36, 'NEGOTIATE request');
  const dialectCount = r.u16();
  const securityMode = r.u16();
  r.u16();
  const capabilities = r.u32();
  const clientGuid = r.bytes(16);
  const ctxOffset = r.u32();
  const ctxCount = r.u16();
  r.u16();
  if (dialectCount === 0 || dialectCount > MAX_DIALECTS) throw new SmbDecodeError('bad-value', `DialectCount ${dialectCount}`, r.pos);
  r.need(dialectCount * 2, 'dialects');
  const dialects: number[] = [];
  for (let i = 0; i < dialectCount; i++) dialects.push(r.u16());
  // The context fields mean ClientStartTime unless 3.1.1 is offered (2.2.3).
  const contexts = dialects.includes(Dialect.SMB3_1_1) && ctxCount > 0 ? decodeContexts(r, ctxOffset, ctxCount) : [];
  return { dialects, securityMode, capabilities, clientGuid, contexts };
}

function writeContextData(w: WireWriter, c: NegotiateContext): void {
  if ('raw' in c) {
    w.bytes(c.data);
  } else if (c.type === ContextType.PREAUTH_INTEGRITY && 'hashAlgorithms' in c) {
    w.u16(c.hashAlgorithms.length).u16(c.salt.length);
    for (const a of c.hashAlgorithms) w.u16(a);
    w.bytes(c.salt);
  } else if ('ciphers' in c) {
    w.u16(c.ciphers.length);
    for (const a of c.ciphers) w.u16(a);
  } else if ('signingAlgorithms' in c) {
    w.u16(c.signingAlgorithms.length);
    for (const a of c.signingAlgorithms) w.u16(a);
  }
}

/** Appends 8-aligned contexts at the writer's position; the writer's origin is the header. */
export function writeContexts(w: WireWriter, contexts: NegotiateContext[]): void {
  contexts.forEach((c, i) => {
    if (i > 0) w.align(8);
    const start = w.len;
    w.u16(c.type).u16(0).u32(0);
    writeContextData(w, c);
    w.patchU16(start + 2, w.len - start - 8);
  });
}

/** Test/client side: the request layout. */
export function encodeNegotiateRequest(w: WireWriter, q: NegotiateRequest): void {
  const start = w.len;
  w.u16(36).u16(q.dialects.length).u16(q.securityMode).u16(0).u32(q.capabilities).bytes(q.clientGuid);
  const ctxOffsetAt = w.len;
  w.u32(0).u16(q.contexts.length).u16(0);
  for (const d of q.dialects) w.u16(d);
  if (q.contexts.length > 0) {
    w.align(8);
    w.patchU32(ctxOffsetAt, w.len - start + 64);
    writeContexts(w, q.contexts);
  }
}

export function encodeNegotiateResponse(w: WireWriter, p: NegotiateResponse): void {
  w.u16(65).u16(p.securityMode).u16(p.dialect).u16(p.dialect === Dialect.SMB3_1_1 ? p.contexts.length : 0);
  w.bytes(p.serverGuid).u32(p.capabilities).u32(p.maxTransactSize).u32(p.maxReadSize).u32(p.maxWriteSize);
  w.u64(p.systemTime).u64(p.serverStartTime);
  const secAt = w.len;
  w.u16(0).u16(p.securityBuffer.length);
  const ctxAt = w.len;
  w.u32(0);
  // Fixed part ends at 64 + 64 = 128 from the header (StructureSize 65 counts one buffer byte).
  if (p.securityBuffer.length > 0) {
    w.patchU16(secAt, w.len);
    w.bytes(p.securityBuffer);
  } else {
    w.u8(0); // the buffer's one counted byte
  }
  if (p.dialect === Dialect.SMB3_1_1 && p.contexts.length > 0) {
    w.align(8);
    w.patchU32(ctxAt, w.len);
    writeContexts(w, p.contexts);
  }
}

export function decodeNegotiateResponse(element: Buffer): NegotiateResponse {
  const r = bodyReader(element, 'NEGOTIATE response');
  r.structure(65, 'NEGOTIATE response');
  const securityMode = r.u16();
  const dialect = r.u16();
  const ctxCount = r.u16();
  const serverGuid = r.bytes(16);
  const capabilities = r.u32();
  const maxTransactSize = r.u32();
  const maxReadSize = r.u32();
  const maxWriteSize = r.u32();
  const systemTime = r.u64();
  const serverStartTime = r.u64();
  const secOffset = r.u16();
  const secLength = r.u16();
  const ctxOffset = r.u32();
  const securityBuffer = r.slice(secOffset, secLength, 'security buffer');
  const contexts = dialect === Dialect.SMB3_1_1 && ctxCount > 0 ? decodeContexts(r, ctxOffset, ctxCount) : [];
  return { securityMode, dialect, serverGuid, capabilities, maxTransactSize, maxReadSize, maxWriteSize, systemTime, serverStartTime, securityBuffer, contexts };
}

/** The server's choice among the contexts a 3.1.1 client offered (3.3.5.4); undefined members: nothing acceptable. */
export interface ContextChoice {
  hashAlgorithm?: number;
  salt?: Buffer;
  cipher?: number;
  signingAlgorithm?: number;
}

/**
 * Picks the first of the server's preferences the client offered. A 3.1.1 NEGOTIATE without a
 * PREAUTH_INTEGRITY context, or one without SHA-512, must fail (3.3.5.4: STATUS_INVALID_PARAMETER
 * / STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP); the caller checks `hashAlgorithm`.
 */
export function chooseContexts(
  offered: NegotiateContext[],
  prefs: { ciphers: readonly number[]; signing: readonly number[] },
): ContextChoice {
  const out: ContextChoice = {};
  for (const c of offered) {
    if ('hashAlgorithms' in c && c.hashAlgorithms.includes(HashAlgorithm.SHA512)) out.hashAlgorithm = HashAlgorithm.SHA512;
    if ('ciphers' in c) out.cipher = prefs.ciphers.find((x) => c.ciphers.includes(x)) ?? 0;
    if ('signingAlgorithms' in c) {
      const s = prefs.signing.find((x) => c.signingAlgorithms.includes(x));
      if (s !== undefined) out.signingAlgorithm = s;
    }
  }
  return out;
}
