/**
 * NTLMSSP, server side (MS-NLMP): NEGOTIATE parsed, CHALLENGE built (TargetInfo AV pairs with a
 * timestamp, so clients send a MIC), AUTHENTICATE parsed with every field bounded, and NTLMv2
 * verified given the user's NT hash: NTProofStr, session base key, the KEY_EXCH exported session
 * key, and the MIC over the three messages. NTLMv1 and LM responses are refused (no modern client
 * needs them; they are crackable from a capture). The NT hash comes from the authenticator
 * (`Authenticator.ntHash`); this file never sees a password.
 *
 * The NTLM signature (3.4.4.2, with extended session security and key exchange) is here too: the
 * SPNEGO mechListMIC is one.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Rc4, rc4 } from './rc4.ts';
import { SmbDecodeError, WireReader, WireWriter } from './wire.ts';

export const NTLMSSP_SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

export const NtlmFlags = {
  UNICODE: 0x0000_0001,
  OEM: 0x0000_0002,
  REQUEST_TARGET: 0x0000_0004,
  SIGN: 0x0000_0010,
  SEAL: 0x0000_0020,
  LM_KEY: 0x0000_0080,
  NTLM: 0x0000_0200,
  ANONYMOUS: 0x0000_0800,
  ALWAYS_SIGN: 0x0000_8000,
  TARGET_TYPE_DOMAIN: 0x0001_0000,
  TARGET_TYPE_SERVER: 0x0002_0000,
  EXTENDED_SESSIONSECURITY: 0x0008_0000,
  IDENTIFY: 0x0010_0000,
  TARGET_INFO: 0x0080_0000,
  VERSION: 0x0200_0000,
  N128: 0x2000_0000,
  KEY_EXCH: 0x4000_0000,
  N56: 0x8000_0000,
} as const;

export const AvId = {
  EOL: 0,
  NB_COMPUTER_NAME: 1,
  NB_DOMAIN_NAME: 2,
  DNS_COMPUTER_NAME: 3,
  DNS_DOMAIN_NAME: 4,
  DNS_TREE_NAME: 5,
  FLAGS: 6,
  TIMESTAMP: 7,
  SINGLE_HOST: 8,
  TARGET_NAME: 9,
  CHANNEL_BINDINGS: 10,
} as const;

/** MsvAvFlags bit: the AUTHENTICATE message carries a MIC. */
export const AV_FLAG_MIC_PRESENT = 0x2;

/** Bounds: an AUTHENTICATE is ~1 KiB; names are at most 256 UTF-16 units; 32 AV pairs. */
export const MAX_NTLM_MESSAGE = 16 * 1024;
export const MAX_NAME_BYTES = 512;
export const MAX_AV_PAIRS = 32;

export type AvPair = { id: number; value: Buffer };

export interface NegotiateMessage {
  flags: number;
  domain: string;
  workstation: string;
}

export interface ChallengeMessage {
  flags: number;
  targetName: string;
  serverChallenge: Buffer;
  targetInfo: AvPair[];
  version: Buffer;
}

export interface AuthenticateMessage {
  flags: number;
  lmResponse: Buffer;
  ntResponse: Buffer;
  domain: string;
  user: string;
  workstation: string;
  encryptedRandomSessionKey: Buffer;
  /** Present when the client's AV pairs say so (MsvAvFlags 0x2). */
  mic?: Buffer;
  /** Where the MIC sits in the message (to zero it for verification). */
  micOffset: number;
}

function header(r: WireReader, type: number): void {
  r.need(12, 'NTLMSSP header');
  if (!r.bytes(8).equals(NTLMSSP_SIGNATURE)) throw new SmbDecodeError('bad-value', 'not an NTLMSSP message');
  const t = r.u32();
  if (t !== type) throw new SmbDecodeError('bad-value', `NTLMSSP message type ${t}, expected ${type}`, 8);
}

/** A {Len, MaxLen, Offset} field, bounded by the message. */
function payload(r: WireReader, what: string, max = MAX_NTLM_MESSAGE): Buffer {
  const len = r.u16();
  r.u16();
  const off = r.u32();
  if (len > max) throw new SmbDecodeError('too-long', `${what} of ${len} bytes`, r.pos - 8);
  return r.slice(off, len, what, 0);
}

function text(b: Buffer, unicode: boolean, what: string): string {
  if (!unicode) return b.toString('latin1');
  if (b.length & 1) throw new SmbDecodeError('bad-value', `${what}: odd UTF-16 length`);
  return b.toString('utf16le');
}

export function decodeNegotiateMessage(msg: Buffer): NegotiateMessage {
  if (msg.length > MAX_NTLM_MESSAGE) throw new SmbDecodeError('too-long', `NTLMSSP message of ${msg.length} bytes`);
  const r = new WireReader(msg);
  header(r, 1);
  const flags = r.u32();
  // Domain and workstation fields are optional in old clients' 16-byte NEGOTIATE.
  if (r.remaining < 16) return { flags, domain: '', workstation: '' };
  const domain = payload(r, 'domain', MAX_NAME_BYTES).toString('latin1');
  const workstation = payload(r, 'workstation', MAX_NAME_BYTES).toString('latin1');
  return { flags, domain, workstation };
}

export function decodeAvPairs(b: Buffer): AvPair[] {
  const r = new WireReader(b);
  const out: AvPair[] = [];
  for (;;) {
    if (out.length >= MAX_AV_PAIRS) throw new SmbDecodeError('too-long', `more than ${MAX_AV_PAIRS} AV pairs`, r.pos);
    const id = r.u16();
    const len = r.u16();
    const value = r.bytes(len, 'AV pair');
    if (id === AvId.EOL) return out;
    out.push({ id, value });
  }
}

export function encodeAvPairs(pairs: AvPair[]): Buffer {
  const w = new WireWriter(256);
  for (const p of pairs) w.u16(p.id).u16(p.value.length).bytes(p.value);
  w.u32(0);
  return w.finish();
}

/** The version field Portico announces: Windows 10.0 build 20348, NTLMSSP revision 15. */
export const SERVER_VERSION = Buffer.from([10, 0, 0x7c, 0x4f, 0, 0, 0, 15]);

export function encodeChallengeMessage(c: ChallengeMessage): Buffer {
  const unicode = (c.flags & NtlmFlags.UNICODE) !== 0;
  const target = Buffer.from(c.targetName, unicode ? 'utf16le' : 'latin1');
  const info = encodeAvPairs(c.targetInfo);
  const base = 56;
  const w = new WireWriter(base + target.length + info.length);
  w.bytes(NTLMSSP_SIGNATURE).u32(2);
  w.u16(target.length).u16(target.length).u32(base);
  w.u32(c.flags).bytes(c.serverChallenge).zeros(8);
  w.u16(info.length).u16(info.length).u32(base + target.length);
  w.bytes(c.version);
  w.bytes(target).bytes(info);
  return w.finish();
}

export function decodeChallengeMessage(msg: Buffer): ChallengeMessage {
  const r = new WireReader(msg);
  header(r, 2);
  const nameLen = r.u16();
  r.u16();
  const nameOff = r.u32();
  const flags = r.u32();
  const serverChallenge = r.bytes(8);
  r.skip(8);
  const info = payload(r, 'target info');
  const version = r.bytes(8);
  const targetName = text(r.slice(nameOff, nameLen, 'target name', 0), (flags & NtlmFlags.UNICODE) !== 0, 'target name');
  return { flags, targetName, serverChallenge, targetInfo: decodeAvPairs(info), version };
}

/** The NTLMv2 client blob (the NT response after NTProofStr): its AV pairs are what matter to the server. */
export interface NtlmV2Blob {
  timestamp: bigint;
  clientChallenge: Buffer;
  avPairs: AvPair[];
}

export function decodeNtlmV2Blob(blob: Buffer): NtlmV2Blob {
  const r = new WireReader(blob);
  const type = r.u8();
  const hi = r.u8();
  if (type !== 1 || hi !== 1) throw new SmbDecodeError('bad-value', `NTLMv2 response version ${type}.${hi}`);
  r.skip(6);
  const timestamp = r.u64();
  const clientChallenge = r.bytes(8);
  r.skip(4);
  return { timestamp, clientChallenge, avPairs: decodeAvPairs(blob.subarray(r.pos)) };
}

export function decodeAuthenticateMessage(msg: Buffer): AuthenticateMessage {
  if (msg.length > MAX_NTLM_MESSAGE) throw new SmbDecodeError('too-long', `NTLMSSP message of ${msg.length} bytes`);
  const r = new WireReader(msg);
  header(r, 3);
  const lmResponse = payload(r, 'LM response');
  const ntResponse = payload(r, 'NT response');
  const domainB = payload(r, 'domain', MAX_NAME_BYTES);
  const userB = payload(r, 'user', MAX_NAME_BYTES);
  const wsB = payload(r, 'workstation', MAX_NAME_BYTES);
  const encryptedRandomSessionKey = payload(r, 'session key', 16);
  const flags = r.u32();
  const unicode = (flags & NtlmFlags.UNICODE) !== 0;
  const out: AuthenticateMessage = {
    flags,
    lmResponse,
    ntResponse,
    domain: text(domainB, unicode, 'domain'),
    user: text(userB, unicode, 'user'),
    workstation: text(wsB, unicode, 'workstation'),
    encryptedRandomSessionKey,
    micOffset: 72,
  };
  // The MIC follows the 8-byte Version at 64 when the client's AV pairs announce it (MS-NLMP 2.2.1.3).
  if (ntResponse.length > 24) {
    const blob = decodeNtlmV2Blob(ntResponse.subarray(16));
    const avFlags = blob.avPairs.find((p) => p.id === AvId.FLAGS);
    if (avFlags && avFlags.value.length === 4 && avFlags.value.readUInt32LE(0) & AV_FLAG_MIC_PRESENT) {
      out.mic = r.slice(72, 16, 'MIC', 0);
    }
  }
  return out;
}

const hmacMd5 = (key: Buffer, ...data: Buffer[]): Buffer => {
  const h = createHmac('md5', key);
  for (const d of data) h.update(d);
  return h.digest();
};

/** NTOWFv2 (MS-NLMP 3.3.2): HMAC-MD5(NT hash, UNICODE(Uppercase(user) || domain)). */
export function ntowfv2(ntHash: Buffer, user: string, domain: string): Buffer {
  return hmacMd5(ntHash, Buffer.from(user.toUpperCase() + domain, 'utf16le'));
}

/** An anonymous AUTHENTICATE (MS-NLMP 3.2.5.1.2): no user, no NT response, an empty or one-zero-byte LM response. */
export function isAnonymous(auth: AuthenticateMessage): boolean {
  return auth.user === '' && auth.ntResponse.length === 0 && auth.lmResponse.length <= 1;
}

/** The time as a FILETIME (100 ns since 1601-01-01). */
export function fileTimeNow(ms = Date.now()): bigint {
  return BigInt(ms) * 10_000n + 116_444_736_000_000_000n;
}

export interface NtlmServerOptions {
  /** NetBIOS name of the server and of its "domain" (the workgroup); DNS names for the AV pairs. */
  computerName: string;
  domainName: string;
  dnsComputerName?: string;
  dnsDomainName?: string;
  /** Tests: a fixed challenge. */
  serverChallenge?: Buffer;
  now?: () => bigint;
}

export type NtlmResult =
  | { ok: true; anonymous: false; user: string; domain: string; sessionBaseKey: Buffer; exportedSessionKey: Buffer; flags: number }
  | { ok: true; anonymous: true; flags: number }
  | { ok: false; reason: 'bad-password' | 'bad-mic' | 'ntlmv1' | 'malformed' | 'unknown-user' };

/**
 * One NTLM authentication, server side: negotiate -> challenge, then authenticate.
 * Keeps the three messages for the MIC.
 */
export class NtlmServer {
  private readonly opts: NtlmServerOptions;
  negotiateBytes: Buffer | undefined;
  challengeBytes: Buffer | undefined;
  readonly serverChallenge: Buffer;
  flags = 0;

  constructor(opts: NtlmServerOptions) {
    this.opts = opts;
    this.serverChallenge = opts.serverChallenge ?? randomBytes(8);
  }

  /** Takes the client's NEGOTIATE and returns the CHALLENGE. Throws SmbDecodeError. */
  challenge(negotiate: Buffer): Buffer {
    const n = decodeNegotiateMessage(negotiate);
    this.negotiateBytes = Buffer.from(negotiate);
    const asked = n.flags;
    // Answer with what both sides do (3.2.5.1.1); NTLMv2 needs extended session security.
    let flags = NtlmFlags.REQUEST_TARGET | NtlmFlags.NTLM | NtlmFlags.TARGET_TYPE_SERVER | NtlmFlags.TARGET_INFO | NtlmFlags.VERSION | NtlmFlags.EXTENDED_SESSIONSECURITY;
    flags |= asked & (NtlmFlags.UNICODE | NtlmFlags.SIGN | NtlmFlags.SEAL | NtlmFlags.ALWAYS_SIGN | NtlmFlags.N128 | NtlmFlags.N56 | NtlmFlags.KEY_EXCH);
    if (!(asked & NtlmFlags.UNICODE)) flags |= NtlmFlags.OEM;
    this.flags = flags >>> 0;
    const o = this.opts;
    const u = (s: string): Buffer => Buffer.from(s, 'utf16le');
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64LE((o.now ?? fileTimeNow)());
    const msg = encodeChallengeMessage({
      flags: this.flags,
      targetName: o.domainName,
      serverChallenge: this.serverChallenge,
      targetInfo: [
        { id: AvId.NB_DOMAIN_NAME, value: u(o.domainName) },
        { id: AvId.NB_COMPUTER_NAME, value: u(o.computerName) },
        { id: AvId.DNS_DOMAIN_NAME, value: u(o.dnsDomainName ?? o.domainName.toLowerCase()) },
        { id: AvId.DNS_COMPUTER_NAME, value: u(o.dnsComputerName ?? o.computerName.toLowerCase()) },
        { id: AvId.TIMESTAMP, value: ts },
      ],
      version: SERVER_VERSION,
    });
    this.challengeBytes = msg;
    return msg;
  }

  /**
   * Verifies an AUTHENTICATE with the NT hash of the user it names (`ntHash(auth.user)`, or
   * undefined when unknown). The caller reads `auth.user` first (decodeAuthenticateMessage) to
   * look the hash up and to throttle.
   */
  verify(authBytes: Buffer, auth: AuthenticateMessage, ntHash: Buffer | undefined): NtlmResult {
    if (isAnonymous(auth)) return { ok: true, anonymous: true, flags: auth.flags };
    if (auth.ntResponse.length <= 24) return { ok: false, reason: 'ntlmv1' };
    if (!ntHash) return { ok: false, reason: 'unknown-user' };
    const proof = auth.ntResponse.subarray(0, 16);
    const blob = auth.ntResponse.subarray(16);
    // The domain as the client typed it; clients differ in case and some send none (Samba tries these too).
    const domains = [...new Set([auth.domain, auth.domain.toUpperCase(), ''])];
    for (const domain of domains) {
      const key = ntowfv2(ntHash, auth.user, domain);
      const expected = hmacMd5(key, this.serverChallenge, blob);
      if (!timingSafeEqual(expected, proof)) continue;
      const sessionBaseKey = hmacMd5(key, proof);
      const exportedSessionKey = exportedKey(sessionBaseKey, auth);
      if (auth.mic) {
        if (!this.negotiateBytes || !this.challengeBytes) return { ok: false, reason: 'malformed' };
        const mic = computeMic(exportedSessionKey, this.negotiateBytes, this.challengeBytes, authBytes, auth.micOffset);
        if (!timingSafeEqual(mic, auth.mic)) return { ok: false, reason: 'bad-mic' };
      }
      return { ok: true, anonymous: false, user: auth.user, domain: auth.domain, sessionBaseKey, exportedSessionKey, flags: auth.flags };
    }
    return { ok: false, reason: 'bad-password' };
  }
}

/** KXKEY for NTLMv2 is the session base key; with KEY_EXCH the client's random key is RC4-sealed under it (3.1.5.1.2). */
export function exportedKey(sessionBaseKey: Buffer, auth: AuthenticateMessage): Buffer {
  if (auth.flags & NtlmFlags.KEY_EXCH && auth.encryptedRandomSessionKey.length === 16) return rc4(sessionBaseKey, auth.encryptedRandomSessionKey);
  return sessionBaseKey;
}

/** MIC = HMAC-MD5(ExportedSessionKey, NEGOTIATE || CHALLENGE || AUTHENTICATE with the MIC zeroed) (3.1.5.1.2). */
export function computeMic(exportedSessionKey: Buffer, negotiate: Buffer, challenge: Buffer, authenticate: Buffer, micOffset = 72): Buffer {
  const auth = Buffer.from(authenticate);
  auth.fill(0, micOffset, micOffset + 16);
  return hmacMd5(exportedSessionKey, negotiate, challenge, auth);
}

const magic = (s: string): Buffer => Buffer.from(`session key to ${s} key magic constant\0`, 'latin1');

/**
 * One direction of NTLM message signing with extended session security (3.4.4.2):
 * checksum = HMAC-MD5(SignKey, SeqNum || message)[0..8], RC4-sealed under the direction's sealing
 * key when KEY_EXCH was negotiated; signature = Version 1 || checksum || SeqNum.
 */
export class NtlmSigner {
  private readonly signKey: Buffer;
  private readonly seal: Rc4 | undefined;
  seq = 0;

  constructor(exportedSessionKey: Buffer, direction: 'client-to-server' | 'server-to-client', flags: number) {
    const md5 = (...b: Buffer[]): Buffer => {
      const h = createHash('md5');
      for (const x of b) h.update(x);
      return h.digest();
    };
    this.signKey = md5(exportedSessionKey, magic(`${direction} signing`));
    const sealKey = flags & NtlmFlags.N128 ? exportedSessionKey : flags & NtlmFlags.N56 ? exportedSessionKey.subarray(0, 7) : exportedSessionKey.subarray(0, 5);
    this.seal = flags & NtlmFlags.KEY_EXCH ? new Rc4(md5(sealKey, magic(`${direction} sealing`))) : undefined;
  }

  sign(message: Buffer): Buffer {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.seq++);
    let checksum = hmacMd5(this.signKey, seq, message).subarray(0, 8);
    if (this.seal) checksum = this.seal.update(checksum);
    return Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seq]);
  }

  /** Checks a peer's signature (advancing the sequence and the RC4 stream as the peer did). */
  verify(message: Buffer, signature: Buffer): boolean {
    if (signature.length !== 16) return false;
    return timingSafeEqual(this.sign(message), signature);
  }
}
