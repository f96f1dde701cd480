/**
 * The SMB2/3 server: the connection loop over the wire layer (framing → decrypt → compound split →
 * signature check → command → joined, signed or encrypted response) and the per-connection state:
 * the negotiated dialect, signing algorithm and cipher, the SMB sessions (one core ClientState
 * each, opened at the end of SESSION_SETUP; every call runs through a Session view of it as the
 * session's principal), their trees and opens. The commands themselves are in commands.ts.
 *
 * Messages of one connection are handled one at a time, in order, except lone READs and WRITEs,
 * which run side by side (up to MAX_IO_IN_FLIGHT; accept()); a request that waits (a blocking
 * LOCK) goes async (async.ts) and the connection moves on.
 */
import { Socket, createServer, type AddressInfo, type Server } from 'node:net';
import { receiveInPlace } from '../../../src/util/receive-in-place.ts';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { FrameParser, MessagePool, writeFramed, type FramePush } from '../framing.ts';
import { Command, Flags, LAST_COMMAND, PROTOCOL_TRANSFORM, RelatedChain, headerTemplate, joinCompound, splitCompound, writeResponseHeader, type Smb2Header } from '../header.ts';
import { STATUS } from '../status.ts';
import { WireWriter, tryDecode } from '../wire.ts';
import {
  Capabilities, Cipher, ContextType, Dialect, HashAlgorithm, SecurityMode, SigningAlgorithm,
  chooseContexts, decodeNegotiateRequest, encodeNegotiateResponse, type NegotiateContext, type NegotiateRequest, type NegotiateResponse,
} from '../messages/negotiate.ts';
import { decodeSessionSetupRequest, encodeSessionSetupResponse } from '../messages/session-setup.ts';
import { encodeErrorResponse } from '../messages/error.ts';
import { encodeEmpty } from '../messages/simple.ts';
import { decodeSmb1Negotiate, isSmb1, smb2DialectForSmb1 } from '../messages/smb1-negotiate.ts';
import { PreauthHash, TRANSFORM_HEADER_BYTES, decodeTransformHeader, decryptMessage, deriveKeys, encryptMessageParts, nodeCipherName, nonceBytes, signMessage, signMessageParts, signingAlgorithmFor, transformHeader, verifySignature, type SessionKeys } from '../crypto.ts';
import { sealWorker } from '../seal-worker.ts';
import { OID, encodeNegTokenInit2 } from '../spnego.ts';
import { fileTimeNow } from '../ntlm.ts';
import { SpnegoLogin } from '../login.ts';
import type { SessionManager } from '../../../src/session/session-manager.ts';
import type { Session } from '../../../src/session/session.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import type { FileAttr } from '../../../src/vfs/types.ts';
import { runCommand, type CommandResult } from './commands.ts';
import { countForGc } from '../../../src/util/gc-hint.ts';
import { guestSharesExist } from './share-policy.ts';
import { asyncTable, type AsyncOp } from './async.ts';

/**
 * Largest READ/WRITE/transact announced and accepted (the decoders' bound). 8 MiB, as Windows and
 * Samba announce, by measurement against 1 MiB (smbclient 4.17 get/put of 100 MB through the
 * real gateway, server CPU, 3 rounds each, load ~29): get 0.82-1.18 against 1.13-1.53 ms per MB,
 * put 68-150 against 137-201 ms of user CPU per 100 MB (fewer messages: fewer signatures, headers
 * and VFS calls), encrypted the same within the noise. smbclient keeps one or two 8 MiB requests
 * outstanding either way; the cost is a connection's buffers (MessagePool: 4 x 8 MiB at most).
 */
export const MAX_IO = 8 * 1024 * 1024;
/** Credits granted per response at most; a client asking for more gets this many (Windows: 512 by default at first, then up to 8192). */
export const MAX_CREDIT_GRANT = 512;
/** Whole messages read and not yet answered, per connection, before reading stops. */
export const MAX_QUEUED = 64;
/** Credits a client may hold unspent; grants stop growing its window past this. */
export const MAX_OUTSTANDING_CREDITS = 8192;
/** READs and WRITEs of one connection running side by side (their disk waits overlap). */
export const MAX_IO_IN_FLIGHT = 16;

export interface SmbServerOptions {
  sessions: SessionManager;
  logger?: Logger | undefined;
  /** Require every request after SESSION_SETUP to be signed (or encrypted). Default true. */
  signingRequired?: boolean;
  /**
   * Encryption for every session (MS-SMB2 EncryptData / RejectUnencryptedAccess): `off` (default:
   * encrypted when the client asks), `desired` (sessions are told to encrypt when the dialect can;
   * 2.x clients still served in clear), `required` (as desired, and a session that cannot encrypt
   * is refused, an unencrypted request refused).
   */
  encrypt?: 'off' | 'desired' | 'required';
  /** Per-share encryption (`shares[].smb.encrypt`) by lower-cased name; absent: `encrypt` (share-policy.ts). */
  shareEncrypt?: ReadonlyMap<string, 'off' | 'desired' | 'required'>;
  serverGuid?: Buffer;
  /** Reads into the connection's own buffers (receiveInPlace; default true). false: 'data' events, the fallback. */
  receiveInPlace?: boolean;
  computerName?: string;
  domainName?: string;
}

export interface DirState {
  pattern?: string;
  /** Resume after this cookie; undefined before the first page. */
  cookie?: bigint;
  dotsSent: boolean;
  eof: boolean;
  /** Entries read and not yet returned. */
  pending: { name: string; attr: FileAttr }[];
  /** A name without wildcards was answered. */
  single?: boolean;
}

export interface Open {
  volatile: bigint;
  tree: Tree;
  kind: 'file' | 'dir' | 'pipe';
  handle?: Handle;
  grantedAccess: number;
  deletePending: boolean;
  dir?: DirState;
  /** srvsvc pipe: bytes waiting for a READ. */
  pipe?: Buffer[];
}

export interface Tree {
  id: number;
  /** undefined: IPC$. */
  share: string | undefined;
  maximalAccess: number;
  /** The share requires encryption: unencrypted requests on this tree are refused. */
  encryptRequired?: boolean;
}

export interface SmbSession {
  id: bigint;
  preauth: PreauthHash;
  login: SpnegoLogin;
  keys?: SessionKeys;
  /** The core client state's root view (opened once authenticated); `view` is the call's. */
  root?: Session;
  nonce: bigint;
  trees: Map<number, Tree>;
  opens: Map<bigint, Open>;
  nextTree: number;
  encrypted: boolean;
  /** Unencrypted requests are refused (encrypt: required). */
  encryptRequired: boolean;
  /** A null session (IS_NULL): the guest, no session key, so nothing is signed or encrypted. */
  anonymous?: boolean;
}

export interface Conn {
  id: number;
  sock: Socket;
  preauth: PreauthHash;
  dialect: number;
  signingAlgorithm: number;
  cipher: number;
  sessions: Map<bigint, SmbSession>;
  negotiate?: NegotiateRequest;
  serverCapabilities: number;
  securityMode: number;
  /** Credits (MS-SMB2 3.3.1.1): MessageIds below `seqLow` are spent, `seqHigh` and up not granted yet; `seqUsed` the spent ones above `seqLow`. */
  seqLow: bigint;
  seqHigh: bigint;
  seqUsed: Set<bigint>;
  /** Large buffers reused on this connection: WRITE requests, READ payloads (framing.ts). */
  pool?: MessagePool;
}

let nextConnId = 1;

const PROTOCOL_SMB2 = 0x424d53fe;
/** One READ or WRITE, not compounded: what may run beside others of its kind (accept()). */
function isLoneIo(m: Buffer): boolean {
  if (m.length < 64 || m.readUInt32LE(0) !== PROTOCOL_SMB2 || m.readUInt32LE(20) !== 0) return false;
  const command = m.readUInt16LE(12);
  return command === Command.READ || command === Command.WRITE;
}

/** Spends the MessageIds a request is charged (one per credit) from the connection's window. */
function spend(conn: Conn, h: Smb2Header): boolean {
  // The common case, a client numbering in order (smbclient's one request at a time): the lowest
  // MessageId with none spent above it. The window just moves, no set of spent ids is touched
  // (the general path below gives the same answer, with a BigInt set insertion per id).
  if (h.messageId === conn.seqLow && conn.seqUsed.size === 0) {
    const end = h.messageId + (h.creditCharge > 1 ? BigInt(h.creditCharge) : 1n);
    if (end > conn.seqHigh) return false;
    conn.seqLow = end;
    return true;
  }
  const charge = BigInt(Math.max(1, h.creditCharge));
  if (h.messageId < conn.seqLow || h.messageId + charge > conn.seqHigh) return false;
  for (let id = h.messageId; id < h.messageId + charge; id++) if (conn.seqUsed.has(id)) return false;
  for (let id = h.messageId; id < h.messageId + charge; id++) conn.seqUsed.add(id);
  while (conn.seqUsed.delete(conn.seqLow)) conn.seqLow++;
  return true;
}
/**
 * An answer there is no key to sign (no session): to a signed request it still carries the SIGNED
 * flag with a zero signature, as Windows and Samba send it. A client that requires signing
 * (Samba's smbXcli) refuses an answer without the flag (ACCESS_DENIED) and skips the check for
 * USER_SESSION_DELETED, INVALID_PARAMETER, FILE_CLOSED and NETWORK_NAME_DELETED.
 */
function unsignedAnswer(resp: Buffer, req: Smb2Header): Buffer {
  if (req.flags & Flags.SIGNED) resp.writeUInt32LE(resp.readUInt32LE(16) | Flags.SIGNED, 16);
  return resp;
}

const SESSION_FLAG_ENCRYPT_DATA = 0x0004;
const SESSION_FLAG_IS_NULL = 0x0002;

export class SmbServer {
  readonly sessions: SessionManager;
  readonly logger: Logger | undefined;
  readonly serverGuid: Buffer;
  readonly signingRequired: boolean;
  readonly encrypt: 'off' | 'desired' | 'required';
  readonly shareEncrypt: ReadonlyMap<string, 'off' | 'desired' | 'required'>;
  private readonly receiveInPlace: boolean;
  private readonly computerName: string;
  private readonly domainName: string;
  private server: Server | undefined;
  private readonly conns = new Set<Conn>();
  private nextSession = 0x1000n;
  private nextFile = 1n;
  readonly startTime = fileTimeNow();

  constructor(o: SmbServerOptions) {
    this.sessions = o.sessions;
    this.logger = o.logger;
    this.serverGuid = o.serverGuid ?? randomBytes(16);
    this.signingRequired = o.signingRequired ?? true;
    this.encrypt = o.encrypt ?? 'off';
    this.shareEncrypt = o.shareEncrypt ?? new Map();
    this.receiveInPlace = o.receiveInPlace ?? true;
    this.computerName = o.computerName ?? 'PORTICO';
    this.domainName = o.domainName ?? 'WORKGROUP';
  }

  newFileId(): bigint {
    return this.nextFile++;
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    // Accepted sockets start paused: accept() re-makes them with a read buffer of its own first.
    const server = (this.server = createServer({ pauseOnConnect: true }, (sock) => this.accept(sock)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) c.sock.destroy();
    for (const c of [...this.conns]) await this.endConn(c);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(accepted: Socket): void {
    const pool = new MessagePool();
    const parser = new FrameParser(MAX_IO + 64 * 1024, pool.alloc);
    // Reads land in a 64 KiB buffer of the connection's, or straight in the large message being
    // received (receiveInPlace); where that cannot be done, 'data' events as any socket.
    const scratch = Buffer.allocUnsafe(64 * 1024);
    let onFrames: (r: FramePush) => void = () => undefined;
    const adopted = !this.receiveInPlace ? undefined : receiveInPlace(accepted, {
      buffer: () => parser.landingZone() ?? scratch,
      callback: (n, buf) => {
        onFrames(buf === scratch ? parser.push(scratch.subarray(0, n), true) : parser.landed(n));
        return true;
      },
    });
    const sock = adopted ?? accepted;
    const conn: Conn = { id: nextConnId++, sock, preauth: new PreauthHash(), dialect: 0, signingAlgorithm: 0, cipher: 0, sessions: new Map(), serverCapabilities: 0, securityMode: 0, seqLow: 0n, seqHigh: 1n, seqUsed: new Set() };
    this.conns.add(conn);
    conn.pool = pool;
    let queue = Promise.resolve();
    // Messages waiting for their turn: past MAX_QUEUED the socket is paused (TCP backpressure), so
    // a client pipelining faster than the VFS answers holds at most that many messages here.
    let queued = 0;
    const failed = (e: unknown): void => {
      this.logger?.warn({ err: e }, 'smb: connection failed');
      sock.destroy();
    };
    // A lone READ or WRITE does not hold the queue while the VFS works: up to MAX_IO_IN_FLIGHT run
    // side by side (a client pipelines 1 MiB reads and writes; served one at a time, each waited
    // for its disk round trip alone). Their order up to the VFS call is the arrival order (the
    // credit window, the signature check and the open lookup run before the first await), their
    // responses go out as they finish (MS-SMB2 3.2.5.1: matched by MessageId). Any other message
    // waits for those in flight and runs alone, so a CLOSE or FLUSH never overtakes a WRITE.
    const inFlight = new Set<Promise<void>>();
    const dispatch = async (m: Buffer): Promise<void> => {
      // (A plain message is taken as it is, without the await of plaintextOf: a promise and a turn less.)
      const d = m.length >= 4 && m.readUInt32LE(0) === PROTOCOL_TRANSFORM ? await this.plaintextOf(conn, m) : { msg: m };
      // A message decrypted into a buffer of its own: the ciphertext is not referred to any more
      // (a large one is decrypted in place, d.msg a view of m, released once answered like m).
      if (d && d.msg.buffer !== m.buffer) pool.release(m);
      if (!d || !isLoneIo(d.msg)) {
        if (inFlight.size) await Promise.all(inFlight);
        return d ? this.onMessage(conn, d.msg, d.encryptedFor) : this.onMessage(conn, m);
      }
      while (inFlight.size >= MAX_IO_IN_FLIGHT) await Promise.race(inFlight);
      // Once answered, nothing refers to a READ or WRITE request (the VFS copied a WRITE's data).
      const p: Promise<void> = this.onMessage(conn, d.msg, d.encryptedFor)
        .catch(failed)
        .finally(() => {
          inFlight.delete(p);
          pool.release(d.msg);
        });
      inFlight.add(p);
    };
    sock.setNoDelay(true);
    onFrames = (r: FramePush): void => {
      for (const m of r.messages) {
        // A CANCEL is handled on arrival, never queued behind what it cancels (async.ts).
        if (asyncTable(this, conn).intercept(m)) continue;
        if (++queued >= MAX_QUEUED) sock.pause();
        queue = queue
          .then(() => dispatch(m))
          .catch(failed)
          .finally(() => {
            if (--queued === MAX_QUEUED / 2 && !sock.destroyed) sock.resume();
          });
      }
      if (r.error) queue = queue.then(() => void sock.destroy());
    };
    if (!adopted) {
      sock.on('data', (chunk: Buffer) => {
        countForGc(chunk.length);
        onFrames(parser.push(chunk));
      });
      sock.resume();
    }
    sock.on('error', () => undefined);
    sock.on('close', () => {
      queue = queue.then(() => Promise.all(inFlight)).then(() => this.endConn(conn));
    });
  }

  /**
   * A TRANSFORM_HEADER message (the caller tells them from the others) as onMessage runs it:
   * decrypted, or undefined when it cannot be (onMessage then refuses the original).
   */
  private async plaintextOf(conn: Conn, m: Buffer): Promise<{ msg: Buffer; encryptedFor?: { sess: SmbSession; sessionId: bigint } } | undefined> {
    const t = tryDecode(() => decodeTransformHeader(m));
    const sess = t.ok ? conn.sessions.get(t.value.sessionId) : undefined;
    if (!t.ok || !sess?.keys || !conn.cipher) return undefined;
    // A small message the CANCEL check on arrival decrypted already (async.ts intercept): not twice.
    const opened = asyncTable(this, conn).takePlaintext(m, sess);
    if (opened) {
      sess.encrypted = true;
      return { msg: opened, encryptedFor: { sess, sessionId: t.value.sessionId } };
    }
    // A pooled message (a large WRITE) is the connection's own: decrypted where it lies by the
    // seal worker (seal-worker.ts says why), else here.
    const inPlace = conn.pool?.owns(m) ?? false;
    const ct = m.subarray(TRANSFORM_HEADER_BYTES);
    let plain: Buffer | undefined;
    if (inPlace && sealWorker.canTake(ct)) {
      const ok = await sealWorker.open(nodeCipherName(conn.cipher), sess.keys.decryptionKey, t.value.nonce.subarray(0, nonceBytes(conn.cipher)), m.subarray(20, TRANSFORM_HEADER_BYTES), t.value.signature, ct);
      plain = ok ? ct : undefined;
    } else {
      plain = decryptMessage(m, sess.keys.decryptionKey, conn.cipher, { inPlace });
      if (plain) countForGc(plain.length);
    }
    if (!plain) return undefined;
    sess.encrypted = true;
    return { msg: plain, encryptedFor: { sess, sessionId: t.value.sessionId } };
  }

  private async endConn(conn: Conn): Promise<void> {
    if (!this.conns.delete(conn)) return;
    for (const s of conn.sessions.values()) await this.endSession(s);
    conn.sessions.clear();
  }

  async endSession(s: SmbSession): Promise<void> {
    s.opens.clear();
    s.trees.clear();
    const root = s.root;
    s.root = undefined;
    if (root) await root.end().catch((e: unknown) => this.logger?.warn({ err: e }, 'smb: ending a session failed'));
  }

  response(conn: Conn, req: Smb2Header, status: number, body: (w: WireWriter) => void, over: Partial<Smb2Header> = {}): Buffer {
    const w = new WireWriter(512);
    // Credits: what the client asks for, at least what the request cost and one, at most the grant,
    // and never past MAX_OUTSTANDING_CREDITS unspent (but one while it holds none).
    const room = MAX_OUTSTANDING_CREDITS - Number(conn.seqHigh - conn.seqLow);
    // The final response of an async request grants none (`over.credits` 0, MS-SMB2 3.3.4.3).
    const credits = over.credits ?? Math.max(conn.seqHigh > conn.seqLow ? 0 : 1, Math.min(Math.max(1, req.creditCharge, Math.min(req.credits, MAX_CREDIT_GRANT)), room));
    // The header written field by field, `over` taking precedence: no header object built from two
    // object spreads per response (V8's CopyDataProperties, ~1% of an smbclient mget's samples).
    writeResponseHeader(w, req, status, credits, over);
    body(w);
    conn.seqHigh += BigInt(credits);
    return w.finish(); // the writer's own bytes (a slice of Node's pool for most), not copied again
  }

  error(conn: Conn, req: Smb2Header, status: number): Buffer {
    return this.response(conn, req, status, (w) => encodeErrorResponse(w));
  }

  private negotiateResponse(conn: Conn, dialect: number, contexts: NegotiateContext[], capabilities: number): NegotiateResponse {
    conn.securityMode = SecurityMode.SIGNING_ENABLED | (this.signingRequired ? SecurityMode.SIGNING_REQUIRED : 0);
    return {
      securityMode: conn.securityMode,
      dialect, serverGuid: this.serverGuid, capabilities,
      maxTransactSize: MAX_IO, maxReadSize: MAX_IO, maxWriteSize: MAX_IO,
      systemTime: fileTimeNow(), serverStartTime: 0n,
      securityBuffer: encodeNegTokenInit2([OID.NTLMSSP]),
      contexts,
    };
  }

  /**
   * Writes one response message, encrypted when it answers an encrypted request (`encryptedFor`).
   * A promise when the seal worker encrypts it (a large READ's pooled payload): settled once the
   * message is handed to the socket.
   */
  transmit(conn: Conn, out: Buffer | Buffer[], encryptedFor?: { sess: SmbSession; sessionId: bigint }, written?: () => void): void | Promise<void> {
    const sock = conn.sock;
    if (sock.destroyed) return written?.();
    // A message may come as pieces (a READ response and its payload): written as they are.
    const pieces = Buffer.isBuffer(out) ? [out] : out;
    if (!encryptedFor?.sess.keys) {
      if (pieces.length > 1 && !conn.pool?.owns(pieces[1]!)) countForGc(pieces[1]!.length);
      return writeFramed(sock, pieces, written);
    }
    // An encrypted request is answered encrypted, under the same session (MS-SMB2 3.3.4.1.4),
    // with a per-session nonce counter (never a repeated nonce under one key).
    const nonce = Buffer.alloc(nonceBytes(conn.cipher));
    nonce.writeBigUInt64LE(encryptedFor.sess.nonce++);
    const payload = pieces[1];
    if (written && pieces.length === 2 && payload && sealWorker.canTake(payload)) {
      // The payload is ours until `written` runs: the worker encrypts it where it lies, the
      // response head (a hundred bytes) comes back encrypted beside the tag.
      const header = transformHeader(pieces[0]!.length + payload.length, encryptedFor.sessionId, nonce);
      return sealWorker.seal(nodeCipherName(conn.cipher), encryptedFor.sess.keys.encryptionKey, nonce, header.subarray(20), pieces[0]!, payload).then(
        ({ head, tag }) => {
          tag.copy(header, 4);
          if (sock.destroyed) return written();
          writeFramed(sock, [header, head, payload], written);
        },
        (e: unknown) => {
          // The payload may be half encrypted: nothing can be answered; the client reconnects.
          this.logger?.warn({ err: e }, 'smb: sealing a response failed');
          written();
          sock.destroy();
        },
      );
    }
    if (pieces.length > 1) countForGc(pieces[1]!.length);
    // With `written` the pieces after the first are ours until it runs (a READ's pooled payload):
    // GCM encrypts them in place, and they go back once the socket has sent them.
    const sealed = encryptMessageParts(pieces, encryptedFor.sess.keys.encryptionKey, conn.cipher, encryptedFor.sessionId, nonce, written ? { inPlaceFrom: 1 } : {});
    const inPlace = sealed.some((p) => pieces.includes(p));
    if (!inPlace) written?.(); // the cipher has read the pieces
    writeFramed(sock, sealed, inPlace ? written : undefined);
  }

  private async onMessage(conn: Conn, msg: Buffer, encryptedFor?: { sess: SmbSession; sessionId: bigint }): Promise<void> {
    const sock = conn.sock;
    const send = (out: Buffer | Buffer[], written?: () => void): void | Promise<void> => this.transmit(conn, out, encryptedFor, written);

    if (msg.length >= 4 && msg.readUInt32LE(0) === PROTOCOL_TRANSFORM) {
      const t = tryDecode(() => decodeTransformHeader(msg));
      const sess = t.ok ? conn.sessions.get(t.value.sessionId) : undefined;
      const plain = t.ok && sess?.keys && conn.cipher ? decryptMessage(msg, sess.keys.decryptionKey, conn.cipher) : undefined;
      if (!plain || !sess || !t.ok) return void sock.destroy();
      sess.encrypted = true;
      return this.onMessage(conn, plain, { sess, sessionId: t.value.sessionId });
    }
    if (isSmb1(msg)) {
      const d = tryDecode(() => decodeSmb1Negotiate(msg));
      const dialect = d.ok ? smb2DialectForSmb1(d.value) : undefined;
      if (!d.ok || dialect === undefined) return void sock.destroy();
      // The SMB1 NEGOTIATE spends MessageId 0; its answer grants the next (3.3.5.3.1).
      if (conn.seqLow === 0n) conn.seqLow = 1n;
      const req = headerTemplate({ command: Command.NEGOTIATE, credits: 1 });
      if (dialect === Dialect.SMB2_0_2) conn.dialect = dialect;
      return send(this.response(conn, req, 0, (w) => encodeNegotiateResponse(w, this.negotiateResponse(conn, dialect, [], 0))));
    }
    const split = splitCompound(msg);
    if (!split.ok) return void sock.destroy();
    const out: { resp: Buffer; key?: Buffer | undefined; payload?: Buffer | undefined; payloadDone?: (() => void) | undefined }[] = [];
    const started: { op: AsyncOp; key: Buffer | undefined }[] = [];
    const chain = new RelatedChain();
    for (const el of split.value) {
      const h = el.header;
      // CANCEL spends no credit and gets no answer (MS-SMB2 3.3.5.16); a lone one never gets here (async.ts).
      if (h.command === Command.CANCEL) {
        asyncTable(this, conn).cancelElement(h, el.bytes, encryptedFor !== undefined);
        continue;
      }
      // A MessageId outside the granted window, or spent already, ends the connection (3.3.5.2.3).
      if (!spend(conn, h)) return void sock.destroy();
      if (h.command === Command.NEGOTIATE) {
        // A second NEGOTIATE on a negotiated connection ends it (MS-SMB2 3.3.5.3.1).
        if (conn.negotiate) return void sock.destroy();
        const d = tryDecode(() => decodeNegotiateRequest(el.bytes));
        if (!d.ok) return void sock.destroy();
        const q = d.value;
        const dialect = [Dialect.SMB3_1_1, Dialect.SMB3_0_2, Dialect.SMB3_0, Dialect.SMB2_1, Dialect.SMB2_0_2].find((x) => q.dialects.includes(x));
        if (dialect === undefined) {
          out.push({ resp: this.error(conn, h, STATUS.NOT_SUPPORTED) });
          continue;
        }
        const choice = chooseContexts(q.contexts, {
          ciphers: [Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM],
          signing: [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC],
        });
        if (dialect === Dialect.SMB3_1_1 && choice.hashAlgorithm === undefined) {
          out.push({ resp: this.error(conn, h, STATUS.INVALID_PARAMETER) });
          continue;
        }
        const contexts: NegotiateContext[] = [];
        if (dialect === Dialect.SMB3_1_1) {
          contexts.push({ type: ContextType.PREAUTH_INTEGRITY, hashAlgorithms: [HashAlgorithm.SHA512], salt: randomBytes(32) });
          if (choice.cipher) contexts.push({ type: ContextType.ENCRYPTION, ciphers: [choice.cipher] });
          if (choice.signingAlgorithm !== undefined) contexts.push({ type: ContextType.SIGNING, signingAlgorithms: [choice.signingAlgorithm] });
        }
        conn.dialect = dialect;
        conn.signingAlgorithm = signingAlgorithmFor(dialect, choice.signingAlgorithm);
        conn.cipher = dialect === Dialect.SMB3_1_1 ? (choice.cipher ?? 0) : dialect >= Dialect.SMB3_0 && q.capabilities & Capabilities.ENCRYPTION ? Cipher.AES_128_CCM : 0;
        const caps = (dialect >= Dialect.SMB2_1 ? Capabilities.LARGE_MTU : 0) | (dialect >= Dialect.SMB3_0 && dialect < Dialect.SMB3_1_1 && conn.cipher ? Capabilities.ENCRYPTION : 0);
        conn.negotiate = q;
        conn.serverCapabilities = caps;
        const resp = this.response(conn, h, 0, (w) => encodeNegotiateResponse(w, this.negotiateResponse(conn, dialect, contexts, caps)));
        conn.preauth.update(el.bytes).update(resp);
        out.push({ resp });
        continue;
      }
      if (h.command === Command.SESSION_SETUP) {
        out.push(await this.sessionSetup(conn, h, el.bytes));
        continue;
      }
      const ids = chain.next(h);
      // A related first element is refused whatever its (meaningless) SessionId (smbtorture
      // smb2.compound.invalid*); an ECHO needs no session (MS-SMB2 3.3.5.2.9; smb2.connect echoes
      // after its LOGOFF).
      if (ids.failWith !== undefined && !ids.inherit) {
        out.push({ resp: unsignedAnswer(this.error(conn, h, ids.failWith), h) });
        chain.done(ids.failWith);
        continue;
      }
      if (h.command === Command.ECHO && !conn.sessions.get(ids.sessionId)?.keys) {
        out.push({ resp: this.response(conn, h, 0, encodeEmpty) });
        chain.done(0);
        continue;
      }
      const sess = conn.sessions.get(ids.sessionId);
      if (!sess?.root || (!sess.keys && !sess.anonymous)) {
        // A related element whose chain has no valid session is INVALID_PARAMETER (MS-SMB2
        // 3.3.5.2.7.2; smbtorture smb2.compound.invalid2, related9), an unrelated one USER_SESSION_DELETED.
        const status = ids.inherit ? STATUS.INVALID_PARAMETER : STATUS.USER_SESSION_DELETED;
        out.push({ resp: unsignedAnswer(this.error(conn, h, status), h) });
        chain.done(status);
        continue;
      }
      if ((sess.encryptRequired || sess.trees.get(ids.treeId)?.encryptRequired) && !encryptedFor) {
        out.push({ resp: this.error(conn, h, STATUS.ACCESS_DENIED) });
        chain.done(STATUS.ACCESS_DENIED);
        continue;
      }
      const signed = (h.flags & Flags.SIGNED) !== 0;
      // A request with a bad signature is refused, never executed (MS-SMB2 3.3.5.2.4); with
      // signing required an unsigned one too (encrypted requests are authenticated by the cipher).
      // A null session has no key: nothing can be signed (MS-SMB2 3.3.5.5.3), so nothing is checked.
      const keys = sess.keys;
      if (!encryptedFor && keys && ((signed && !verifySignature(el.bytes, keys.signingKey, conn.signingAlgorithm)) || (!signed && this.signingRequired))) {
        out.push({ resp: this.error(conn, h, STATUS.ACCESS_DENIED) });
        chain.done(STATUS.ACCESS_DENIED);
        continue;
      }
      const key = encryptedFor || !keys || !(signed || this.signingRequired) ? undefined : keys.signingKey;
      // A command code past the last one is INVALID_PARAMETER (MS-SMB2 3.3.5.2), before a failure
      // it would inherit from its chain (smbtorture smb2.compound.invalid4).
      const failWith = h.command > LAST_COMMAND ? STATUS.INVALID_PARAMETER : ids.failWith;
      if (failWith !== undefined) {
        out.push({ resp: this.error(conn, h, failWith), ...(key ? { key } : {}) });
        continue;
      }
      let r: CommandResult;
      try {
        // A related element runs with the ids it inherits; any other with its own (no copy of its header).
        const eh = ids.sessionId === h.sessionId && ids.treeId === h.treeId ? h : { ...h, sessionId: ids.sessionId, treeId: ids.treeId };
        r = await runCommand(this, conn, sess, eh, el.bytes, chain.currentFileId());
      } catch (e) {
        this.logger?.warn({ err: e, command: h.command }, 'smb: command failed');
        r = { resp: this.error(conn, h, STATUS.INTERNAL_ERROR) };
      }
      chain.done(r.resp.readUInt32LE(8), r.fileId);
      // An interim STATUS_PENDING response is not signed (3.3.4.2); its final response is, later.
      out.push({ resp: r.resp, key: key && !r.async ? key : undefined, payload: r.payload, payloadDone: r.payloadDone });
      if (r.async) started.push({ op: r.async, key });
      if (r.after) await r.after();
    }
    if (out.length === 0) return;
    const lone = out.length === 1 ? out[0]! : undefined;
    if (lone?.payload) {
      // One response with a payload (a READ): signed and sent as two pieces, the payload never copied.
      const pieces = [lone.resp, lone.payload];
      if (lone.key) signMessageParts(pieces, lone.key, conn.signingAlgorithm);
      await send(pieces, lone.payloadDone);
      for (const s of started) s.op.arm({ key: s.key, encryptedFor });
      return;
    }
    if (lone) {
      // One response without payload (most requests): signed where it lies and sent as it is —
      // joinCompound would copy it unchanged (the last element is neither padded nor patched).
      if (lone.key) signMessage(lone.resp, lone.key, conn.signingAlgorithm);
      lone.payloadDone?.();
      send(lone.resp);
      for (const s of started) s.op.arm({ key: s.key, encryptedFor });
      return;
    }
    const joined = joinCompound(out.map((o) => (o.payload ? Buffer.concat([o.resp, o.payload]) : o.resp)));
    for (const o of out) o.payloadDone?.();
    out.forEach((o, i) => {
      if (o.key) signMessage(joined.message.subarray(joined.offsets[i], joined.offsets[i]! + joined.lengths[i]!), o.key, conn.signingAlgorithm);
    });
    send(joined.message);
    for (const s of started) s.op.arm({ key: s.key, encryptedFor });
  }

  private async sessionSetup(conn: Conn, h: Smb2Header, bytes: Buffer): Promise<{ resp: Buffer; key?: Buffer }> {
    const d = tryDecode(() => decodeSessionSetupRequest(bytes));
    if (!d.ok) return { resp: this.error(conn, h, STATUS.INVALID_PARAMETER) };
    let sessionId = h.sessionId;
    let sess = conn.sessions.get(sessionId);
    if (sess?.keys || sess?.root) return { resp: this.error(conn, h, STATUS.REQUEST_NOT_ACCEPTED) }; // re-authentication: later
    if (!sess) {
      sessionId = this.nextSession++;
      sess = {
        id: sessionId,
        preauth: conn.preauth.fork(),
        login: new SpnegoLogin({ authenticator: this.sessions.authenticator, ctx: { protocol: 'smb', clientAddress: conn.sock.remoteAddress ?? '' }, computerName: this.computerName, domainName: this.domainName, allowAnonymous: guestSharesExist(this.sessions) }),
        nonce: 1n,
        trees: new Map(),
        opens: new Map(),
        nextTree: 1,
        encrypted: false,
        encryptRequired: false,
      };
      conn.sessions.set(sessionId, sess);
    }
    sess.preauth.update(bytes);
    const step = await sess.login.step(d.value.securityBuffer);
    if (step.kind === 'continue') {
      const resp = this.response(conn, h, STATUS.MORE_PROCESSING_REQUIRED, (w) => encodeSessionSetupResponse(w, { sessionFlags: 0, securityBuffer: step.token }), { sessionId });
      sess.preauth.update(resp);
      return { resp };
    }
    if (step.kind === 'failed') {
      conn.sessions.delete(sessionId);
      return { resp: this.error(conn, { ...h, sessionId }, step.status) };
    }
    if (step.anonymous) {
      // A null session (login.ts allows it only while a share has `guest: read`): the guest
      // principal with no session key, answered IS_NULL and unsigned; it cannot encrypt, so
      // encrypt: required refuses it.
      if (this.encrypt === 'required') {
        conn.sessions.delete(sessionId);
        return { resp: this.error(conn, { ...h, sessionId }, STATUS.ACCESS_DENIED) };
      }
      sess.anonymous = true;
      sess.root = this.sessions.openSession({ principal: step.principal, protocol: 'smb', clientAddress: conn.sock.remoteAddress ?? '' });
      return { resp: this.response(conn, h, STATUS.SUCCESS, (w) => encodeSessionSetupResponse(w, { sessionFlags: SESSION_FLAG_IS_NULL, securityBuffer: step.token }), { sessionId }) };
    }
    // MS-SMB2 3.3.5.5.3: with encryption required, a connection that negotiated no cipher (2.x, or
    // a 3.x client without encryption) gets no session.
    if (this.encrypt === 'required' && !conn.cipher) {
      conn.sessions.delete(sessionId);
      return { resp: this.error(conn, { ...h, sessionId }, STATUS.ACCESS_DENIED) };
    }
    sess.keys = deriveKeys(step.sessionKey, conn.dialect, { preauthHash: sess.preauth.value, cipher: conn.cipher });
    sess.root = this.sessions.openSession({ principal: step.principal, protocol: 'smb', clientAddress: conn.sock.remoteAddress ?? '' });
    const encryptData = this.encrypt !== 'off' && conn.cipher !== 0;
    sess.encryptRequired = encryptData && this.encrypt === 'required';
    // MS-SMB2 3.3.5.5.3: the final SESSION_SETUP response is signed (not encrypted).
    const sessionFlags = encryptData ? SESSION_FLAG_ENCRYPT_DATA : 0;
    return { resp: this.response(conn, h, STATUS.SUCCESS, (w) => encodeSessionSetupResponse(w, { sessionFlags, securityBuffer: step.token }), { sessionId }), key: sess.keys.signingKey };
  }
}
