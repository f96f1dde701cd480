/**
 * Test-only: a minimal SMB2 server over the wire layer, enough for a real client to negotiate
 * (every dialect, 3.1.1 contexts), authenticate with NTLMv2 inside SPNEGO, sign or encrypt, and
 * (with `shares`) list shares over DCE/RPC on IPC$\srvsvc. It is not the SMB front-end (that
 * comes with the command semantics); it exists to put the encoders, the preauth hash, the key
 * derivation, signing, encryption, NTLMSSP, SPNEGO and DCE/RPC in front of smbclient, which
 * checks every one of them: it refuses a session whose final SESSION_SETUP response is not
 * signed with the key derived from the preauth hash, or whose mechListMIC does not verify, and
 * an encrypted answer that does not authenticate.
 *
 * After authentication every request's signature is checked and recorded. Without `shares`
 * every command is answered STATUS_ACCESS_DENIED, so the client stops there.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { FrameParser, frame } from '../../protocols/smb/framing.ts';
import { Command, Flags, PROTOCOL_TRANSFORM, RelatedChain, headerTemplate, joinCompound, splitCompound, writeHeader, type Smb2Header } from '../../protocols/smb/header.ts';
import { STATUS } from '../../protocols/smb/status.ts';
import { WireWriter, isRelatedFileId, tryDecode, type FileId } from '../../protocols/smb/wire.ts';
import {
  Capabilities, Cipher, ContextType, Dialect, HashAlgorithm, SecurityMode, SigningAlgorithm,
  chooseContexts, decodeNegotiateRequest, encodeNegotiateResponse, type NegotiateContext, type NegotiateRequest, type NegotiateResponse,
} from '../../protocols/smb/messages/negotiate.ts';
import { decodeSessionSetupRequest, encodeSessionSetupResponse, type SessionSetupRequest } from '../../protocols/smb/messages/session-setup.ts';
import { encodeErrorResponse } from '../../protocols/smb/messages/error.ts';
import { decodeSmb1Negotiate, isSmb1, smb2DialectForSmb1 } from '../../protocols/smb/messages/smb1-negotiate.ts';
import { ShareType as TreeShareType, decodeTreeConnectRequest, encodeTreeConnectResponse } from '../../protocols/smb/messages/tree-connect.ts';
import { decodeCreateRequest, encodeCreateResponse } from '../../protocols/smb/messages/create.ts';
import { decodeCloseRequest, decodeReadRequest, decodeWriteRequest, encodeCloseResponse, encodeReadResponse, encodeWriteResponse } from '../../protocols/smb/messages/file-ops.ts';
import { Fsctl, decodeIoctlRequest, decodeValidateNegotiateInfo, encodeIoctlResponse, encodeValidateNegotiateInfoResponse, validateNegotiateMatches } from '../../protocols/smb/messages/ioctl.ts';
import { encodeEmpty } from '../../protocols/smb/messages/simple.ts';
import {
  PreauthHash, decodeTransformHeader, decryptMessage, deriveKeys, encryptMessage, nonceBytes, signMessage, signingAlgorithmFor, verifySignature, type SessionKeys,
} from '../../protocols/smb/crypto.ts';
import { OID, decodeSpnego, encodeNegTokenInit2, type SpnegoToken } from '../../protocols/smb/spnego.ts';
import { fileTimeNow } from '../../protocols/smb/ntlm.ts';
import { SpnegoLogin } from '../../protocols/smb/login.ts';
import type { Authenticator } from '../../src/auth/authenticator.ts';
import {
  SYNTAX, SrvsvcOpnum, WERR, bindResults, decodePdu, decodeShareEnumAll, decodeShareGetInfo, encodeBindAck, encodeBindNak, encodeFault,
  encodeResponse, encodeShareEnumAllResponse, encodeShareGetInfoResponse, FaultStatus, type ShareInfo1,
} from '../../protocols/smb/dcerpc.ts';

export type SmokeEvent =
  | { kind: 'smb1-negotiate'; dialects: string[] }
  | { kind: 'negotiate'; request: NegotiateRequest; dialect: number; signing?: number; cipher?: number }
  | { kind: 'session-setup'; request: SessionSetupRequest; spnego: SpnegoToken; ntlmType: number; securityBuffer: Buffer }
  | { kind: 'authenticate'; ok: boolean; user?: string; uid?: number; reason?: string }
  | { kind: 'signed-request'; command: number; signatureOk: boolean; path?: string; encrypted: boolean }
  | { kind: 'decrypt'; ok: boolean; cipher: number }
  | { kind: 'rpc'; ptype: number; opnum?: number; ok: boolean }
  | { kind: 'validate-negotiate'; ok: boolean }
  | { kind: 'decode-error'; message: string };

export interface SmokeServer {
  port: number;
  events: SmokeEvent[];
  close(): Promise<void>;
}

interface Conn {
  preauth: PreauthHash;
  dialect: number;
  signingAlgorithm: number;
  /** 0: no encryption negotiated. */
  cipher: number;
  sessions: Map<bigint, Sess>;
  /** What the client's NEGOTIATE said and what we answered (for VALIDATE_NEGOTIATE_INFO). */
  negotiate?: NegotiateRequest;
  serverCapabilities: number;
}
interface Sess {
  preauth: PreauthHash;
  login: SpnegoLogin;
  keys?: SessionKeys;
  nonce: bigint;
  /** srvsvc pipe opens: volatile FileId -> bytes waiting for a READ. */
  pipes: Map<bigint, Buffer[]>;
}

const IPC_TREE = 1;
const NTLMSSP_TYPE = (b: Buffer | undefined): number => (b && b.length >= 12 ? b.readUInt32LE(8) : 0);

export interface SmokeOptions {
  /** Serve IPC$ and srvsvc with these shares; without, every command after login is refused. */
  shares?: ShareInfo1[];
  /** The server's cipher and signing preferences for 3.1.1 (default: GCM before CCM, 128 before 256; GMAC, CMAC). */
  ciphers?: number[];
  signing?: number[];
}

export async function startSmokeServer(authenticator: Authenticator, opts: SmokeOptions = {}): Promise<SmokeServer> {
  const events: SmokeEvent[] = [];
  const serverGuid = randomBytes(16);
  const sockets = new Set<Socket>();
  let nextSession = 0x1000n;
  let nextFile = 1n;

  const response = (req: Smb2Header, status: number, body: (w: WireWriter) => void, over: Partial<Smb2Header> = {}): Buffer => {
    const w = new WireWriter(512);
    writeHeader(w, headerTemplate({
      status, command: req.command, credits: Math.max(1, Math.min(req.credits, 64)), creditCharge: req.creditCharge,
      flags: Flags.SERVER_TO_REDIR | (req.flags & Flags.RELATED_OPERATIONS), messageId: req.messageId, treeId: req.treeId, sessionId: req.sessionId, ...over,
    }));
    body(w);
    return Buffer.from(w.finish());
  };
  const error = (req: Smb2Header, status: number): Buffer => response(req, status, (w) => encodeErrorResponse(w));

  function negotiateResponse(dialect: number, contexts: NegotiateContext[], capabilities: number): NegotiateResponse {
    return {
      securityMode: SecurityMode.SIGNING_ENABLED | SecurityMode.SIGNING_REQUIRED,
      dialect, serverGuid, capabilities,
      maxTransactSize: 8 << 20, maxReadSize: 8 << 20, maxWriteSize: 8 << 20,
      systemTime: fileTimeNow(), serverStartTime: 0n,
      securityBuffer: encodeNegTokenInit2([OID.NTLMSSP]),
      contexts,
    };
  }

  /** srvsvc over a pipe: one PDU in, one PDU out. */
  function rpc(input: Buffer): Buffer {
    const d = tryDecode(() => decodePdu(input));
    if (!d.ok) {
      events.push({ kind: 'rpc', ptype: input[2] ?? -1, ok: false });
      return encodeBindNak(input.length >= 16 ? input.readUInt32LE(12) : 0);
    }
    const pdu = d.value;
    if (pdu.kind === 'bind') {
      events.push({ kind: 'rpc', ptype: pdu.pdu.header.ptype, ok: true });
      return encodeBindAck(pdu.pdu, bindResults(pdu.pdu, [SYNTAX.SRVSVC]), '\\PIPE\\srvsvc', 0x12345);
    }
    if (pdu.kind === 'request') {
      const q = pdu.pdu;
      const shares = opts.shares ?? [];
      if (q.opnum === SrvsvcOpnum.NetrShareEnumAll) {
        const a = tryDecode(() => decodeShareEnumAll(q.stub));
        events.push({ kind: 'rpc', ptype: 0, opnum: q.opnum, ok: a.ok });
        if (!a.ok) return encodeFault(q.header.callId, q.contextId, FaultStatus.PROTO_ERROR);
        return Buffer.concat(encodeResponse(q, encodeShareEnumAllResponse(a.value.level === 1 ? shares : [], a.value.resumeHandle !== undefined, a.value.level === 1 ? WERR.OK : WERR.INVALID_LEVEL)));
      }
      if (q.opnum === SrvsvcOpnum.NetrShareGetInfo) {
        const a = tryDecode(() => decodeShareGetInfo(q.stub));
        events.push({ kind: 'rpc', ptype: 0, opnum: q.opnum, ok: a.ok });
        if (!a.ok) return encodeFault(q.header.callId, q.contextId, FaultStatus.PROTO_ERROR);
        const s = shares.find((x) => x.name.toLowerCase() === a.value.netName.toLowerCase());
        return Buffer.concat(encodeResponse(q, encodeShareGetInfoResponse(s, s ? WERR.OK : WERR.NET_NAME_NOT_FOUND)));
      }
      events.push({ kind: 'rpc', ptype: 0, opnum: q.opnum, ok: false });
      return encodeFault(q.header.callId, q.contextId, FaultStatus.OP_RNG_ERROR);
    }
    events.push({ kind: 'rpc', ptype: pdu.header.ptype, ok: false });
    return encodeFault(pdu.header.callId, 0, FaultStatus.PROTO_ERROR);
  }

  /** One command after authentication, IPC$ and srvsvc only. */
  function command(h: Smb2Header, el: Buffer, sess: Sess, fileId: FileId | undefined, conn: Conn, sock: Socket): { resp: Buffer; fileId?: FileId } {
    const zeroTimes = { creationTime: 0n, lastAccessTime: 0n, lastWriteTime: 0n, changeTime: 0n };
    const fid = (id: FileId): FileId => (isRelatedFileId(id) && fileId ? fileId : id);
    switch (h.command) {
      case Command.TREE_CONNECT: {
        const t = decodeTreeConnectRequest(el);
        if (!/\\IPC\$$/i.test(t.path)) return { resp: error(h, STATUS.BAD_NETWORK_NAME) };
        return { resp: response(h, 0, (w) => encodeTreeConnectResponse(w, { shareType: TreeShareType.PIPE, shareFlags: 0x30, capabilities: 0, maximalAccess: 0x1f01ff }), { treeId: IPC_TREE }) };
      }
      case Command.CREATE: {
        const c = decodeCreateRequest(el);
        if (h.treeId !== IPC_TREE || c.name.toLowerCase() !== 'srvsvc') return { resp: error(h, STATUS.OBJECT_NAME_NOT_FOUND) };
        const id = { persistent: nextFile, volatile: nextFile++ };
        sess.pipes.set(id.volatile, []);
        return {
          resp: response(h, 0, (w) => encodeCreateResponse(w, { oplockLevel: 0, flags: 0, createAction: 1, ...zeroTimes, allocationSize: 4096n, endOfFile: 0n, fileAttributes: 0x80, fileId: id, contexts: [] })),
          fileId: id,
        };
      }
      case Command.WRITE: {
        const q = decodeWriteRequest(el);
        const pipe = sess.pipes.get(fid(q.fileId).volatile);
        if (!pipe) return { resp: error(h, STATUS.FILE_CLOSED) };
        pipe.push(rpc(q.data));
        return { resp: response(h, 0, (w) => encodeWriteResponse(w, { count: q.data.length, remaining: 0 })) };
      }
      case Command.READ: {
        const q = decodeReadRequest(el);
        const pipe = sess.pipes.get(fid(q.fileId).volatile);
        if (!pipe) return { resp: error(h, STATUS.FILE_CLOSED) };
        const data = pipe.shift();
        if (!data) return { resp: error(h, 0xc000_00d9 /* STATUS_PIPE_EMPTY */) };
        if (data.length > q.length) {
          pipe.unshift(data.subarray(q.length));
          return { resp: response(h, STATUS.BUFFER_OVERFLOW, (w) => encodeReadResponse(w, { data: data.subarray(0, q.length), dataRemaining: data.length - q.length })) };
        }
        return { resp: response(h, 0, (w) => encodeReadResponse(w, { data, dataRemaining: 0 })) };
      }
      case Command.IOCTL: {
        const q = decodeIoctlRequest(el);
        if (q.ctlCode === Fsctl.VALIDATE_NEGOTIATE_INFO) {
          // MS-SMB2 3.3.5.15.12: a mismatch means a downgraded negotiation; drop the connection.
          const v = tryDecode(() => decodeValidateNegotiateInfo(q.input));
          const ok = v.ok && !!conn.negotiate && validateNegotiateMatches(v.value, conn.negotiate);
          events.push({ kind: 'validate-negotiate', ok });
          if (!ok) {
            sock.destroy();
            return { resp: error(h, STATUS.ACCESS_DENIED) };
          }
          const output = encodeValidateNegotiateInfoResponse({ capabilities: conn.serverCapabilities, guid: serverGuid, securityMode: SecurityMode.SIGNING_ENABLED | SecurityMode.SIGNING_REQUIRED, dialect: conn.dialect });
          return { resp: response(h, 0, (w) => encodeIoctlResponse(w, { ctlCode: q.ctlCode, fileId: q.fileId, input: Buffer.alloc(0), output, flags: 0 })) };
        }
        if (q.ctlCode !== Fsctl.PIPE_TRANSCEIVE) return { resp: error(h, STATUS.NOT_SUPPORTED) };
        const id = fid(q.fileId);
        const pipe = sess.pipes.get(id.volatile);
        if (!pipe) return { resp: error(h, STATUS.FILE_CLOSED) };
        const out = rpc(q.input);
        const part = out.subarray(0, q.maxOutputResponse);
        if (part.length < out.length) pipe.push(out.subarray(part.length));
        return { resp: response(h, part.length < out.length ? STATUS.BUFFER_OVERFLOW : 0, (w) => encodeIoctlResponse(w, { ctlCode: q.ctlCode, fileId: id, input: Buffer.alloc(0), output: part, flags: 0 })) };
      }
      case Command.CLOSE: {
        const q = decodeCloseRequest(el);
        sess.pipes.delete(fid(q.fileId).volatile);
        return { resp: response(h, 0, (w) => encodeCloseResponse(w, { flags: 0, ...zeroTimes, allocationSize: 0n, endOfFile: 0n, fileAttributes: 0 })) };
      }
      case Command.TREE_DISCONNECT:
      case Command.LOGOFF:
      case Command.ECHO:
        return { resp: response(h, 0, encodeEmpty) };
      default:
        return { resp: error(h, STATUS.NOT_SUPPORTED) };
    }
  }

  const onMessage = async (sock: Socket, conn: Conn, msg: Buffer, encryptedFor?: { sess: Sess; sessionId: bigint }): Promise<void> => {
    const send = (out: Buffer): void => {
      if (sock.destroyed) return;
      if (!encryptedFor?.sess.keys) return void sock.write(frame(out));
      // Answer an encrypted request encrypted, under the same session (MS-SMB2 3.3.4.1.4).
      const nonce = Buffer.alloc(nonceBytes(conn.cipher));
      nonce.writeBigUInt64LE(encryptedFor.sess.nonce++);
      sock.write(frame(encryptMessage(out, encryptedFor.sess.keys.encryptionKey, conn.cipher, encryptedFor.sessionId, nonce)));
    };

    if (msg.length >= 4 && msg.readUInt32LE(0) === PROTOCOL_TRANSFORM) {
      const t = tryDecode(() => decodeTransformHeader(msg));
      const sess = t.ok ? conn.sessions.get(t.value.sessionId) : undefined;
      const plain = t.ok && sess?.keys && conn.cipher ? decryptMessage(msg, sess.keys.decryptionKey, conn.cipher) : undefined;
      events.push({ kind: 'decrypt', ok: plain !== undefined, cipher: conn.cipher });
      if (!plain || !sess || !t.ok) return void sock.destroy();
      return onMessage(sock, conn, plain, { sess, sessionId: t.value.sessionId });
    }
    if (isSmb1(msg)) {
      const d = tryDecode(() => decodeSmb1Negotiate(msg));
      const dialect = d.ok ? smb2DialectForSmb1(d.value) : undefined;
      if (!d.ok || dialect === undefined) return void sock.destroy();
      events.push({ kind: 'smb1-negotiate', dialects: d.value.dialects });
      // "SMB 2.???" gets the wildcard dialect; the client then negotiates over SMB2.
      const req = headerTemplate({ command: Command.NEGOTIATE, credits: 1 });
      if (dialect === Dialect.SMB2_0_2) conn.dialect = dialect;
      return send(response(req, 0, (w) => encodeNegotiateResponse(w, negotiateResponse(dialect, [], 0))));
    }
    const split = splitCompound(msg);
    if (!split.ok) {
      events.push({ kind: 'decode-error', message: split.error.message });
      return void sock.destroy();
    }
    const out: { resp: Buffer; key?: Buffer }[] = [];
    const chain = new RelatedChain();
    for (const el of split.value) {
      const h = el.header;
      if (h.command === Command.NEGOTIATE) {
        const d = tryDecode(() => decodeNegotiateRequest(el.bytes));
        if (!d.ok) return void sock.destroy();
        const q = d.value;
        const dialect = [Dialect.SMB3_1_1, Dialect.SMB3_0_2, Dialect.SMB3_0, Dialect.SMB2_1, Dialect.SMB2_0_2].find((x) => q.dialects.includes(x));
        if (dialect === undefined) return void sock.destroy();
        const choice = chooseContexts(q.contexts, {
          ciphers: opts.ciphers ?? [Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM],
          signing: opts.signing ?? [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC],
        });
        const contexts: NegotiateContext[] = [];
        if (dialect === Dialect.SMB3_1_1) {
          contexts.push({ type: ContextType.PREAUTH_INTEGRITY, hashAlgorithms: [HashAlgorithm.SHA512], salt: randomBytes(32) });
          if (choice.cipher) contexts.push({ type: ContextType.ENCRYPTION, ciphers: [choice.cipher] });
          if (choice.signingAlgorithm !== undefined) contexts.push({ type: ContextType.SIGNING, signingAlgorithms: [choice.signingAlgorithm] });
        }
        conn.dialect = dialect;
        conn.signingAlgorithm = signingAlgorithmFor(dialect, choice.signingAlgorithm);
        // 3.0/3.0.2 have one cipher, AES-128-CCM, when both sides announce encryption.
        conn.cipher = dialect === Dialect.SMB3_1_1 ? (choice.cipher ?? 0) : dialect >= Dialect.SMB3_0 && q.capabilities & Capabilities.ENCRYPTION ? Cipher.AES_128_CCM : 0;
        const caps = Capabilities.LARGE_MTU | (dialect >= Dialect.SMB3_0 && dialect < Dialect.SMB3_1_1 && conn.cipher ? Capabilities.ENCRYPTION : 0);
        conn.negotiate = q;
        conn.serverCapabilities = caps;
        const resp = response(h, 0, (w) => encodeNegotiateResponse(w, negotiateResponse(dialect, contexts, caps)));
        conn.preauth.update(el.bytes).update(resp);
        events.push({ kind: 'negotiate', request: q, dialect, ...(choice.signingAlgorithm !== undefined ? { signing: choice.signingAlgorithm } : {}), ...(choice.cipher ? { cipher: choice.cipher } : {}) });
        out.push({ resp });
        continue;
      }
      if (h.command === Command.SESSION_SETUP) {
        const d = tryDecode(() => decodeSessionSetupRequest(el.bytes));
        if (!d.ok) {
          events.push({ kind: 'decode-error', message: d.error.message });
          out.push({ resp: error(h, STATUS.INVALID_PARAMETER) });
          continue;
        }
        const request = d.value;
        const spnego = tryDecode(() => decodeSpnego(request.securityBuffer));
        if (spnego.ok) {
          const t = spnego.value;
          const token = t.kind === 'init' ? t.mechToken : t.kind === 'resp' ? t.responseToken : t.token;
          events.push({ kind: 'session-setup', request, spnego: t, ntlmType: NTLMSSP_TYPE(token), securityBuffer: Buffer.from(request.securityBuffer) });
        }
        let sessionId = h.sessionId;
        let sess = conn.sessions.get(sessionId);
        if (!sess) {
          sessionId = nextSession++;
          sess = {
            preauth: conn.preauth.fork(),
            login: new SpnegoLogin({ authenticator, ctx: { protocol: 'smb', clientAddress: sock.remoteAddress ?? '' }, computerName: 'PORTICO', domainName: 'WORKGROUP' }),
            nonce: 1n,
            pipes: new Map(),
          };
          conn.sessions.set(sessionId, sess);
        }
        sess.preauth.update(el.bytes);
        const step = await sess.login.step(request.securityBuffer);
        if (step.kind === 'continue') {
          const resp = response(h, STATUS.MORE_PROCESSING_REQUIRED, (w) => encodeSessionSetupResponse(w, { sessionFlags: 0, securityBuffer: step.token }), { sessionId });
          sess.preauth.update(resp);
          out.push({ resp });
          continue;
        }
        if (step.kind === 'failed') {
          events.push({ kind: 'authenticate', ok: false, reason: step.reason });
          conn.sessions.delete(sessionId);
          out.push({ resp: error({ ...h, sessionId }, step.status) });
          continue;
        }
        events.push({ kind: 'authenticate', ok: true, user: step.principal.user, uid: step.principal.uid });
        sess.keys = deriveKeys(step.sessionKey, conn.dialect, { preauthHash: sess.preauth.value, cipher: conn.cipher });
        // MS-SMB2 3.3.5.5.3: the final SESSION_SETUP response is signed (3.1.1 always).
        out.push({ resp: response(h, STATUS.SUCCESS, (w) => encodeSessionSetupResponse(w, { sessionFlags: 0, securityBuffer: step.token }), { sessionId }), key: sess.keys.signingKey });
        continue;
      }
      const ids = chain.next(h);
      const sess = conn.sessions.get(ids.sessionId);
      if (!sess?.keys) {
        out.push({ resp: error(h, STATUS.USER_SESSION_DELETED) });
        chain.done(STATUS.USER_SESSION_DELETED);
        continue;
      }
      const signatureOk = (h.flags & Flags.SIGNED) !== 0 && verifySignature(el.bytes, sess.keys.signingKey, conn.signingAlgorithm);
      const path = h.command === Command.TREE_CONNECT ? tryDecode(() => decodeTreeConnectRequest(el.bytes)) : undefined;
      events.push({ kind: 'signed-request', command: h.command, signatureOk: !!encryptedFor || signatureOk, encrypted: !!encryptedFor, ...(path?.ok ? { path: path.value.path } : {}) });
      // A request with a bad signature is refused, never executed (MS-SMB2 3.3.5.2.4).
      if (!encryptedFor && !signatureOk) {
        out.push({ resp: error(h, STATUS.ACCESS_DENIED) });
        chain.done(STATUS.ACCESS_DENIED);
        continue;
      }
      const key = encryptedFor ? undefined : sess.keys.signingKey;
      if (ids.failWith !== undefined) {
        out.push({ resp: error(h, ids.failWith), ...(key ? { key } : {}) });
        continue;
      }
      if (!opts.shares) {
        out.push({ resp: error(h, STATUS.ACCESS_DENIED), ...(key ? { key } : {}) });
        chain.done(STATUS.ACCESS_DENIED);
        continue;
      }
      const r = tryDecode(() => command(h, el.bytes, sess, chain.currentFileId(), conn, sock));
      const resp = r.ok ? r.value.resp : error(h, STATUS.INVALID_PARAMETER);
      chain.done(resp.readUInt32LE(8), r.ok ? r.value.fileId : undefined);
      out.push({ resp, ...(key ? { key } : {}) });
    }
    if (out.length === 0) return;
    const joined = joinCompound(out.map((o) => o.resp));
    // Every element of a compound response is signed over its own bytes and padding.
    out.forEach((o, i) => {
      if (o.key) signMessage(joined.message.subarray(joined.offsets[i], joined.offsets[i]! + joined.lengths[i]!), o.key, conn.signingAlgorithm);
    });
    send(joined.message);
  };

  const server: Server = createServer((sock) => {
    sockets.add(sock);
    const parser = new FrameParser();
    const conn: Conn = { preauth: new PreauthHash(), dialect: 0, signingAlgorithm: 0, cipher: 0, sessions: new Map(), serverCapabilities: 0 };
    // Messages are handled one at a time, in order (authentication awaits the user store).
    let queue = Promise.resolve();
    sock.on('data', (chunk: Buffer) => {
      const r = parser.push(chunk);
      for (const m of r.messages) queue = queue.then(() => onMessage(sock, conn, m)).catch(() => void sock.destroy());
      if (r.error) queue = queue.then(() => void sock.destroy());
    });
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    events,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
