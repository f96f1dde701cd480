/**
 * SMB2/3 cryptography over node:crypto: AES-CMAC (RFC 4493), the SP800-108 counter-mode KDF
 * with HMAC-SHA256 (MS-SMB2 3.1.4.2), message signing (3.1.4.1 / 3.1.5.1), the 3.1.1 preauth
 * integrity hash (3.3.5.4, 3.3.5.5.3) and the TRANSFORM_HEADER's encryption (2.2.41, 3.1.4.3).
 *
 * Node has no CMAC primitive, so CMAC is built on AES-128-CBC with a zero IV (CBC-MAC over the
 * blocks, the last one xored with K1 or K2; one cipher call per message). GMAC is AES-128-GCM
 * with the message as AAD and no plaintext, its tag being the signature. With the native helper
 * (native.ts) GMAC signing and GCM encryption run on one OpenSSL context per key instead of a
 * cipher object per message (the same bytes; CCM stays on node:crypto).
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createSecretKey, timingSafeEqual, type KeyObject, type CipherCCM, type CipherCCMTypes, type CipherGCM, type CipherGCMTypes, type DecipherCCM, type DecipherGCM } from 'node:crypto';
import { Command, Flags, HEADER_BYTES, PROTOCOL_TRANSFORM } from './header.ts';
import { Cipher, Dialect, SigningAlgorithm } from './messages/negotiate.ts';
import { nativeContextOf, nativeGcmOf, type NativeGcm, type NativeGmac } from './native.ts';
import { SmbDecodeError, WireReader } from './wire.ts';

const ZERO16 = Buffer.alloc(16);
const SIG_AT = 48;

/**
 * A session key as a KeyObject, made once per key Buffer: node:crypto turns a Buffer key into a
 * KeyObject on every createCipheriv/createHmac, which cost ~40 µs against ~8 µs for the whole
 * AES-GMAC of a small message with a ready KeyObject (Node 24) — most of what signing and
 * checking a small request cost. Keys are never modified after derivation.
 */
const keyObjects = new WeakMap<Buffer, KeyObject>();
function keyOf(key: Buffer): KeyObject {
  let k = keyObjects.get(key);
  if (k === undefined) keyObjects.set(key, (k = createSecretKey(key)));
  return k;
}
/** AES-CMAC's subkeys K1 and K2, per key (RFC 4493 §2.3). */
const cmacSubkeys = new WeakMap<Buffer, { k1: Buffer; k2: Buffer }>();

function shiftLeft1(b: Buffer): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) out[i] = ((b[i]! << 1) | (i < 15 ? b[i + 1]! >> 7 : 0)) & 0xff;
  if (b[0]! & 0x80) out[15]! ^= 0x87;
  return out;
}

/** AES-CMAC (RFC 4493) with a 128-bit key: a 16-byte tag. */
export function aesCmac(key: Buffer, message: Buffer): Buffer {
  return aesCmacParts(key, [message]);
}

/**
 * AES-CMAC over the concatenation of `parts`, without concatenating them: the blocks before the
 * last go through one CBC pass as they are (only the last block, at most 16 bytes, is copied to
 * be padded and xored with K1 or K2). Signing a 1 MiB READ response thus copies nothing.
 */
export function aesCmacParts(key: Buffer, parts: Buffer[]): Buffer {
  if (key.length !== 16) throw new RangeError('AES-CMAC key must be 16 bytes');
  let keys = cmacSubkeys.get(key);
  if (keys === undefined) {
    const l = createCipheriv('aes-128-ecb', keyOf(key), null).setAutoPadding(false).update(ZERO16);
    const k1 = shiftLeft1(l);
    cmacSubkeys.set(key, (keys = { k1, k2: shiftLeft1(k1) }));
  }
  const { k1, k2 } = keys;
  const total = parts.reduce((n, p) => n + p.length, 0);
  const complete = total > 0 && total % 16 === 0;
  const lastStart = complete ? total - 16 : total - (total % 16);
  const last = Buffer.alloc(16);
  const cbc = createCipheriv('aes-128-cbc', keyOf(key), ZERO16).setAutoPadding(false);
  let at = 0;
  let out: Buffer = ZERO16;
  for (const p of parts) {
    const headEnd = Math.min(p.length, Math.max(0, lastStart - at));
    if (headEnd > 0) {
      const o = cbc.update(p.subarray(0, headEnd));
      if (o.length) out = o;
    }
    if (headEnd < p.length) p.copy(last, at + headEnd - lastStart, headEnd);
    at += p.length;
  }
  if (!complete) last[total - lastStart] = 0x80;
  const sub = complete ? k1 : k2;
  for (let i = 0; i < 16; i++) last[i]! ^= sub[i]!;
  out = cbc.update(last);
  return Buffer.from(out.subarray(out.length - 16));
}

/**
 * SP800-108 KDF in counter mode with HMAC-SHA256, r = 32, one iteration (L <= 256):
 * HMAC(Ki, [i=1]_32 || Label || 0x00 || Context || [L]_32), truncated to L bits (MS-SMB2 3.1.4.2).
 * The labels and contexts MS-SMB2 gives already end with their NUL terminator.
 */
export function kdfCounterSha256(ki: Buffer, label: Buffer, context: Buffer, lBits: 128 | 256): Buffer {
  const h = createHmac('sha256', ki);
  const i = Buffer.alloc(4);
  i.writeUInt32BE(1);
  const l = Buffer.alloc(4);
  l.writeUInt32BE(lBits);
  h.update(i).update(label).update(Buffer.from([0])).update(context).update(l);
  return h.digest().subarray(0, lBits / 8);
}

const z = (s: string): Buffer => Buffer.from(`${s}\0`, 'latin1');

export interface SessionKeys {
  /** The key used to sign: the session key itself for 2.x. */
  signingKey: Buffer;
  /** ServerOut: what the server encrypts with (the client's DecryptionKey). */
  encryptionKey: Buffer;
  /** ServerIn: what the server decrypts with (the client's EncryptionKey). */
  decryptionKey: Buffer;
  applicationKey: Buffer;
}

/**
 * The session's keys from its session key (MS-SMB2 3.3.5.5.3). 3.0/3.0.2 use fixed contexts;
 * 3.1.1 uses the session's preauth integrity hash as the context of every key. With an AES-256
 * cipher the encryption keys are 256 bits, derived from the full session key (NTLM's is 16 bytes
 * anyway; Kerberos' may be 32); all other keys come from its first 16 bytes.
 */
export function deriveKeys(fullSessionKey: Buffer, dialect: number, opts: { preauthHash?: Buffer; cipher?: number } = {}): SessionKeys {
  const sk = Buffer.alloc(16);
  fullSessionKey.copy(sk, 0, 0, 16);
  if (dialect < Dialect.SMB3_0) return { signingKey: sk, encryptionKey: Buffer.alloc(0), decryptionKey: Buffer.alloc(0), applicationKey: sk };
  const aes256 = opts.cipher === Cipher.AES_256_CCM || opts.cipher === Cipher.AES_256_GCM;
  const encKi = aes256 ? fullSessionKey : sk;
  const encL = aes256 ? 256 : 128;
  if (dialect === Dialect.SMB3_1_1) {
    const ctx = opts.preauthHash;
    if (!ctx || ctx.length !== 64) throw new RangeError('SMB 3.1.1 keys need the 64-byte preauth integrity hash');
    return {
      signingKey: kdfCounterSha256(sk, z('SMBSigningKey'), ctx, 128),
      applicationKey: kdfCounterSha256(sk, z('SMBAppKey'), ctx, 128),
      encryptionKey: kdfCounterSha256(encKi, z('SMBS2CCipherKey'), ctx, encL),
      decryptionKey: kdfCounterSha256(encKi, z('SMBC2SCipherKey'), ctx, encL),
    };
  }
  return {
    signingKey: kdfCounterSha256(sk, z('SMB2AESCMAC'), z('SmbSign'), 128),
    applicationKey: kdfCounterSha256(sk, z('SMB2APP'), z('SmbRpc'), 128),
    encryptionKey: kdfCounterSha256(encKi, z('SMB2AESCCM'), z('ServerOut'), encL),
    decryptionKey: kdfCounterSha256(encKi, z('SMB2AESCCM'), z('ServerIn '), encL),
  };
}

/** Which algorithm signs on a connection: by dialect, and the 3.1.1 SIGNING_CAPABILITIES choice. */
export function signingAlgorithmFor(dialect: number, negotiated?: number): number {
  if (dialect < Dialect.SMB3_0) return SigningAlgorithm.HMAC_SHA256;
  if (dialect === Dialect.SMB3_1_1 && negotiated !== undefined) return negotiated;
  return SigningAlgorithm.AES_CMAC;
}

/**
 * The signature of one message (a compound element with its padding), computed with the
 * signature field taken as zero; the message itself is not modified.
 */
export function computeSignature(element: Buffer, key: Buffer, algorithm: number): Buffer {
  return computeSignatureParts([element], key, algorithm);
}

/** computeSignatureParts' scratch space: used synchronously, within one call (the ciphers and HMAC take their input at once). */
const SIGN_SCRATCH = Buffer.alloc(16 * 1024);

/**
 * AES-GMAC contexts of the native helper, one per signing key (keys are never modified after
 * derivation); `null` for a key the helper refused. createCipheriv per message cost ~10 µs of a
 * small request's ~100 in the running server (8-16% of an smbclient small file's CPU, 8 messages
 * each), the native tag ~1 µs.
 */
const gmacContexts = new WeakMap<Uint8Array, NativeGmac | null>();
function nativeGmacOf(key: Buffer): NativeGmac | undefined {
  if (key.length !== 16) return undefined; // AES-128-GMAC only; node:crypto refuses another key as before
  return nativeContextOf(gmacContexts, key, (native) => new native.Gmac(key));
}
const GMAC_NONCE = Buffer.alloc(12);
const GMAC_OPTIONS = { authTagLength: 16 } as const;

/**
 * The signature of one message given as consecutive pieces (the header and fixed body, then a
 * READ's payload as the backend returned it), so that a large response is signed where it lies
 * and never joined into one buffer. The first piece holds the whole 64-byte header.
 */
export function computeSignatureParts(pieces: Buffer[], key: Buffer, algorithm: number): Buffer {
  const head = pieces[0];
  if (!head || head.length < HEADER_BYTES) throw new RangeError('message shorter than an SMB2 header');
  // The message as signed: the signature field read as zeros. A small message in one piece (every
  // request, every response but a READ's) is copied once into a scratch buffer with that field
  // zeroed and fed in one call; a large or split one is fed in parts, never copied.
  let parts: Buffer[];
  if (pieces.length === 1 && head.length <= SIGN_SCRATCH.length) {
    head.copy(SIGN_SCRATCH);
    SIGN_SCRATCH.fill(0, SIG_AT, SIG_AT + 16);
    parts = [SIGN_SCRATCH.subarray(0, head.length)];
  } else {
    parts = [head.subarray(0, SIG_AT), ZERO16, head.subarray(SIG_AT + 16)];
    for (let i = 1; i < pieces.length; i++) parts.push(pieces[i]!);
  }
  switch (algorithm) {
    case SigningAlgorithm.HMAC_SHA256: {
      const h = createHmac('sha256', keyOf(key));
      for (const p of parts) h.update(p);
      return h.digest().subarray(0, 16);
    }
    case SigningAlgorithm.AES_CMAC:
      return aesCmacParts(key, parts);
    case SigningAlgorithm.AES_GMAC: {
      // 3.1.4.1: nonce = MessageId, then a 32-bit word: bit 0 set by the server, bit 1 for CANCEL.
      // (The nonce buffer is shared: createCipheriv copies it.)
      const nonce = GMAC_NONCE;
      head.copy(nonce, 0, 24, 32);
      const flags = head.readUInt32LE(16);
      const command = head.readUInt16LE(12);
      nonce.writeUInt32LE(((flags & Flags.SERVER_TO_REDIR) ? 1 : 0) | (command === Command.CANCEL ? 2 : 0), 8);
      const native = nativeGmacOf(key);
      if (native) {
        const tag = Buffer.allocUnsafe(16);
        native.tag(nonce, parts, tag, 0);
        return tag;
      }
      const gcm = createCipheriv('aes-128-gcm', keyOf(key), nonce, GMAC_OPTIONS);
      // GCM takes its AAD in several calls (GHASH runs over their concatenation).
      for (const p of parts) gcm.setAAD(p);
      gcm.final();
      return gcm.getAuthTag();
    }
    default:
      throw new RangeError(`signing algorithm ${algorithm}`);
  }
}

/** Signs in place: sets SMB2_FLAGS_SIGNED and writes the signature. */
export function signMessage(element: Buffer, key: Buffer, algorithm: number): void {
  signMessageParts([element], key, algorithm);
}

/** Signs a message given as pieces (see computeSignatureParts): flag and signature go into the first. */
export function signMessageParts(pieces: Buffer[], key: Buffer, algorithm: number): void {
  const head = pieces[0]!;
  head.writeUInt32LE((head.readUInt32LE(16) | Flags.SIGNED) >>> 0, 16);
  // AES-GMAC with the native helper: the whole message (and a READ's payload) in one call, the
  // tag written where it goes (native/smb_addon.cc says why).
  if (algorithm === SigningAlgorithm.AES_GMAC && pieces.length <= 2 && head.length >= HEADER_BYTES) {
    const native = nativeGmacOf(key);
    if (native?.sign) return native.sign(head, pieces[1]);
  }
  computeSignatureParts(pieces, key, algorithm).copy(head, SIG_AT);
}

/** Constant-time check of a received message's signature. */
export function verifySignature(element: Buffer, key: Buffer, algorithm: number): boolean {
  if (element.length < HEADER_BYTES) return false;
  if (algorithm === SigningAlgorithm.AES_GMAC) {
    const native = nativeGmacOf(key);
    if (native?.verify) return native.verify(element);
  }
  const expected = computeSignature(element, key, algorithm);
  return timingSafeEqual(expected, element.subarray(SIG_AT, SIG_AT + 16));
}

/** The SHA-512 chain of 3.1.1: H(i) = SHA-512(H(i-1) || message), from 64 zero bytes. */
export class PreauthHash {
  value: Buffer;
  constructor(start: Buffer = Buffer.alloc(64)) {
    this.value = Buffer.from(start);
  }
  update(message: Buffer): this {
    this.value = createHash('sha512').update(this.value).update(message).digest();
    return this;
  }
  /** A session's chain starts from the connection's value after NEGOTIATE. */
  fork(): PreauthHash {
    return new PreauthHash(this.value);
  }
}

export const TRANSFORM_HEADER_BYTES = 52;
const ENCRYPTED_FLAG = 0x0001;

export interface TransformHeader {
  signature: Buffer;
  nonce: Buffer;
  originalMessageSize: number;
  flags: number;
  sessionId: bigint;
}

export function decodeTransformHeader(message: Buffer): TransformHeader {
  const r = new WireReader(message);
  r.need(TRANSFORM_HEADER_BYTES, 'TRANSFORM_HEADER');
  if (r.u32() !== PROTOCOL_TRANSFORM) throw new SmbDecodeError('bad-value', 'not a TRANSFORM_HEADER');
  const signature = r.bytes(16);
  const nonce = r.bytes(16);
  const originalMessageSize = r.u32();
  r.u16();
  const flags = r.u16();
  const sessionId = r.u64();
  if (originalMessageSize !== message.length - TRANSFORM_HEADER_BYTES) {
    throw new SmbDecodeError('bad-value', `OriginalMessageSize ${originalMessageSize}, ${message.length - TRANSFORM_HEADER_BYTES} bytes follow`, 36);
  }
  if (flags !== ENCRYPTED_FLAG) throw new SmbDecodeError('bad-value', `TRANSFORM_HEADER Flags ${flags}`, 42);
  return { signature, nonce, originalMessageSize, flags, sessionId };
}

function cipherName(cipher: number): { name: CipherCCMTypes | CipherGCMTypes; nonce: number; ccm: boolean } {
  switch (cipher) {
    case Cipher.AES_128_CCM:
      return { name: 'aes-128-ccm', nonce: 11, ccm: true };
    case Cipher.AES_256_CCM:
      return { name: 'aes-256-ccm', nonce: 11, ccm: true };
    case Cipher.AES_128_GCM:
      return { name: 'aes-128-gcm', nonce: 12, ccm: false };
    case Cipher.AES_256_GCM:
      return { name: 'aes-256-gcm', nonce: 12, ccm: false };
    default:
      throw new RangeError(`cipher ${cipher}`);
  }
}

/** The nonce size a cipher uses from the TRANSFORM_HEADER's 16-byte Nonce field (the rest is zero). */
export function nonceBytes(cipher: number): number {
  return cipherName(cipher).nonce;
}

/**
 * A TRANSFORM_HEADER for a message of `length` bytes, its Signature (the tag, bytes 4-20) left zero.
 * Its bytes from 20 on (Nonce to SessionId) are the AAD.
 */
export function transformHeader(length: number, sessionId: bigint, nonce: Buffer): Buffer {
  const header = Buffer.alloc(TRANSFORM_HEADER_BYTES);
  header.writeUInt32LE(PROTOCOL_TRANSFORM, 0);
  nonce.copy(header, 20);
  header.writeUInt32LE(length, 36);
  header.writeUInt16LE(ENCRYPTED_FLAG, 42);
  header.writeBigUInt64LE(sessionId, 44);
  return header;
}

/** node:crypto's name of an SMB3 cipher (for the seal worker). */
export function nodeCipherName(cipher: number): CipherGCMTypes | CipherCCMTypes {
  return cipherName(cipher).name;
}

/**
 * Encrypts one message (a whole, possibly compounded, SMB2 message) into TRANSFORM_HEADER +
 * ciphertext. The AAD is the header from Nonce to SessionId (32 bytes). `nonce` must never repeat
 * under one key: the caller keeps a counter per session (a random nonce is not safe for GCM
 * over 2^32 messages).
 */
export function encryptMessage(message: Buffer, key: Buffer, cipher: number, sessionId: bigint, nonce: Buffer): Buffer {
  return Buffer.concat(encryptMessageParts([message], key, cipher, sessionId, nonce));
}

/**
 * encryptMessage for a message given as pieces, returned as pieces to be written in order: the
 * 52-byte TRANSFORM_HEADER, then the ciphertext as the cipher produced it. The ciphertext is the
 * one copy of the payload (nothing is joined before or after it), except that CCM takes its
 * plaintext in one call, so CCM joins the pieces first. Pieces from index `inPlaceFrom` on are the
 * caller's to overwrite: with GCM a large one is encrypted where it lies (updateInPlace) and
 * returned itself, so the caller keeps it until the socket has sent it.
 */
export function encryptMessageParts(pieces: Buffer[], key: Buffer, cipher: number, sessionId: bigint, nonce: Buffer, opts: { inPlaceFrom?: number } = {}): Buffer[] {
  const c = cipherName(cipher);
  if (nonce.length !== c.nonce) throw new RangeError(`nonce must be ${c.nonce} bytes`);
  let length = 0;
  for (const p of pieces) length += p.length;
  const header = transformHeader(length, sessionId, nonce);
  const aad = header.subarray(20, TRANSFORM_HEADER_BYTES);
  const native = nativeGcmFor(c, key);
  if (native) {
    const tag = header.subarray(4, 20);
    const [head, payload] = pieces;
    // A response head and a large payload that is the caller's to overwrite (a READ's): the head
    // into a buffer of its own, the payload where it lies.
    if (pieces.length === 2 && (opts.inPlaceFrom ?? Infinity) <= 1 && payload!.length >= IN_PLACE_MIN) {
      const headOut = Buffer.allocUnsafe(head!.length);
      native.seal(nonce, aad, head!, headOut, payload!, tag);
      return [header, headOut, payload!];
    }
    // Anything else is copied once into the ciphertext's buffer and encrypted there.
    const ct = Buffer.allocUnsafe(length);
    let at = 0;
    for (const p of pieces) at += p.copy(ct, at);
    native.seal(nonce, aad, EMPTY, EMPTY, ct, tag);
    return [header, ct];
  }
  const enc: CipherCCM | CipherGCM = c.ccm
    ? createCipheriv(c.name as CipherCCMTypes, keyOf(key), nonce, { authTagLength: 16 })
    : createCipheriv(c.name as CipherGCMTypes, keyOf(key), nonce, { authTagLength: 16 });
  // CCM needs the plaintext length up front; GCM accepts and ignores it.
  (enc as CipherCCM).setAAD(aad, { plaintextLength: length });
  const out: Buffer[] = [header];
  const plain = c.ccm && pieces.length > 1 ? [Buffer.concat(pieces, length)] : pieces;
  const inPlaceFrom = c.ccm ? Infinity : (opts.inPlaceFrom ?? Infinity);
  plain.forEach((p, i) => {
    if (i >= inPlaceFrom && p.length >= IN_PLACE_MIN) {
      updateInPlace(enc, p);
      out.push(p);
      return;
    }
    const b = enc.update(p);
    if (b.length) out.push(b);
  });
  const tail = enc.final();
  if (tail.length) out.push(tail);
  enc.getAuthTag().copy(header, 4);
  return out;
}

const EMPTY = Buffer.alloc(0);

/**
 * The native helper's GCM context for a message's key (one per key: the key schedule made once, a
 * new nonce per message, in place; createCipheriv per message cost ~10-15 us in a loop, two per
 * encrypted request and response), when loaded and the key fits the cipher; undefined for CCM
 * (3.0/3.0.2, and 3.1.1 when a client prefers it) and without the helper: node:crypto as before.
 */
function nativeGcmFor(c: { name: string; ccm: boolean }, key: Buffer): NativeGcm | undefined {
  if (c.ccm || key.length !== (c.name === 'aes-256-gcm' ? 32 : 16)) return undefined;
  return nativeGcmOf(key);
}

/** Below this, a piece is encrypted or decrypted into a buffer of its own (one allocation, no copy back). */
const IN_PLACE_MIN = 64 * 1024;
/** The slice of a large piece the cipher gets at once when working in place. */
const IN_PLACE_CHUNK = 64 * 1024;

/**
 * GCM's update() turns a piece into as many bytes as it was given (a stream mode), so a large piece
 * can be turned into its ciphertext (or plaintext) where it lies: node:crypto has no in-place
 * API, so each 64 KiB slice comes back in a small buffer of its own and is copied over the slice
 * it came from. Why: node:crypto's output for an 8 MiB message is a fresh 8 MiB ArrayBuffer per
 * message, outside the JS heap; under an encrypted put or get they outlived young collections and
 * were left to full mark-compacts (5-11 per 100 MB, most of the encrypted rows' CPU). 64 KiB
 * buffers die at once and the copy back stays in the cache. Never used for CCM (one update call).
 */
function updateInPlace(c: { update(data: Buffer): Buffer }, buf: Buffer): void {
  let written = 0;
  for (let at = 0; at < buf.length; at += IN_PLACE_CHUNK) {
    // At most what was consumed so far comes out, so a copy never reaches bytes not yet read.
    written += c.update(buf.subarray(at, Math.min(buf.length, at + IN_PLACE_CHUNK))).copy(buf, written);
  }
  if (written !== buf.length) throw new Error(`in-place cipher produced ${written} of ${buf.length} bytes`);
}

/**
 * Decrypts a TRANSFORM_HEADER message with the session's decryption key. Returns undefined when
 * authentication fails (a forged or corrupted message: the server drops it and the connection,
 * MS-SMB2 3.3.5.2.1.1). With `inPlace` (GCM, a large message the caller owns) the plaintext is
 * written over the ciphertext and returned as a view of `message` past the TRANSFORM_HEADER.
 */
export function decryptMessage(message: Buffer, key: Buffer, cipher: number, opts: { inPlace?: boolean } = {}): Buffer | undefined {
  const h = decodeTransformHeader(message);
  const c = cipherName(cipher);
  const nonce = h.nonce.subarray(0, c.nonce);
  const aad = message.subarray(20, TRANSFORM_HEADER_BYTES);
  const ct = message.subarray(TRANSFORM_HEADER_BYTES);
  const native = nativeGcmFor(c, key);
  if (native) {
    // In place when the caller owns a large message (as below), else into a copy of its own.
    const out = opts.inPlace && ct.length >= IN_PLACE_MIN ? ct : Buffer.from(ct);
    return native.open(nonce, aad, out, h.signature) ? out : undefined;
  }
  try {
    const dec: DecipherCCM | DecipherGCM = c.ccm
      ? createDecipheriv(c.name as CipherCCMTypes, keyOf(key), nonce, { authTagLength: 16 })
      : createDecipheriv(c.name as CipherGCMTypes, keyOf(key), nonce, { authTagLength: 16 });
    dec.setAuthTag(h.signature);
    (dec as DecipherCCM).setAAD(aad, { plaintextLength: ct.length });
    if (opts.inPlace && !c.ccm && ct.length >= IN_PLACE_MIN) {
      // The plaintext replaces the ciphertext in the message (see updateInPlace); on a bad tag the
      // message is garbage, which the caller drops with the connection.
      updateInPlace(dec, ct);
      dec.final();
      return ct;
    }
    const out = dec.update(ct);
    dec.final();
    return out;
  } catch {
    return undefined;
  }
}
