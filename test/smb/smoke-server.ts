/**
 * Test-only: a minimal SMB2 server over the wire layer, enough for a real client to negotiate
 * SMB 3.1.1 and authenticate with NTLMv2 inside SPNEGO. It is not the SMB front-end (that comes
 * with the command semantics); it exists to put the encoders, the preauth hash, the key
 * derivation, signing, NTLMSSP and SPNEGO in front of smbclient, which checks every one of them:
 * smbclient refuses a session whose final SESSION_SETUP response is not signed with the key
 * derived from the preauth hash, and whose mechListMIC does not verify.
 *
 * After authentication, every request is checked against its signature and recorded, and any
 * command is answered STATUS_ACCESS_DENIED (signed), so the client stops.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { FrameParser, frame } from '../../protocols/smb/framing.ts';
import { Command, Flags, HEADER_BYTES, headerTemplate, splitCompound, writeHeader, type Smb2Header } from '../../protocols/smb/header.ts';
import { STATUS } from '../../protocols/smb/status.ts';
import { WireWriter, tryDecode } from '../../protocols/smb/wire.ts';
import {
  Capabilities, Cipher, ContextType, Dialect, HashAlgorithm, SecurityMode, SigningAlgorithm,
  chooseContexts, decodeNegotiateRequest, encodeNegotiateResponse, type NegotiateContext, type NegotiateRequest,
} from '../../protocols/smb/messages/negotiate.ts';
import { decodeSessionSetupRequest, encodeSessionSetupResponse, type SessionSetupRequest } from '../../protocols/smb/messages/session-setup.ts';
import { encodeErrorResponse } from '../../protocols/smb/messages/error.ts';
import { decodeSmb1Negotiate, isSmb1 } from '../../protocols/smb/messages/smb1-negotiate.ts';
import { decodeTreeConnectRequest } from '../../protocols/smb/messages/tree-connect.ts';
import { PreauthHash, decodeTransformHeader, decryptMessage, deriveKeys, encryptMessage, nonceBytes, signMessage, signingAlgorithmFor, verifySignature, type SessionKeys } from '../../protocols/smb/crypto.ts';
import { PROTOCOL_TRANSFORM } from '../../protocols/smb/header.ts';
import { NegState, OID, decodeSpnego, encodeNegTokenInit2, encodeNegTokenResp, type SpnegoToken } from '../../protocols/smb/spnego.ts';
import { NtlmServer, NtlmSigner, decodeAuthenticateMessage, fileTimeNow, type AuthenticateMessage } from '../../protocols/smb/ntlm.ts';
import { ntHash } from '../../src/auth/md4.ts';

export type SmokeEvent =
  | { kind: 'smb1-negotiate'; dialects: string[] }
  | { kind: 'negotiate'; request: NegotiateRequest; dialect: number; signing?: number; cipher?: number }
  | { kind: 'session-setup'; request: SessionSetupRequest; spnego: SpnegoToken; ntlmType: number; securityBuffer: Buffer }
  | { kind: 'authenticate'; user: string; domain: string; ok: boolean; reason?: string; micPresent: boolean; mechListMicOk?: boolean }
  | { kind: 'signed-request'; command: number; signatureOk: boolean; path?: string; encrypted: boolean }
  | { kind: 'decrypt'; ok: boolean; cipher: number }
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
}
interface Sess {
  preauth: PreauthHash;
  ntlm: NtlmServer;
  mechTypesDer?: Buffer;
  signingKey?: Buffer;
  keys?: SessionKeys;
  nonce: bigint;
}

const NTLMSSP_TYPE = (b: Buffer | undefined): number => (b && b.length >= 12 ? b.readUInt32LE(8) : 0);

export async function startSmokeServer(users: Record<string, string>): Promise<SmokeServer> {
  const events: SmokeEvent[] = [];
  const serverGuid = randomBytes(16);
  const sockets = new Set<Socket>();
  let nextSession = 0x1000n;

  const reply = (sock: Socket, req: Smb2Header, status: number, body: (w: WireWriter) => void, over: Partial<Smb2Header> = {}): Buffer => {
    const w = new WireWriter(512);
    writeHeader(w, headerTemplate({
      status, command: req.command, credits: Math.max(1, Math.min(req.credits, 64)), creditCharge: req.creditCharge,
      flags: Flags.SERVER_TO_REDIR, messageId: req.messageId, treeId: req.treeId, sessionId: req.sessionId, ...over,
    }));
    body(w);
    return w.finish();
  };
  const send = (sock: Socket, msg: Buffer): void => {
    if (!sock.destroyed) sock.write(frame(msg));
  };

  const onMessage = (sock: Socket, conn: Conn, msg: Buffer, encrypted = false): void => {
    if (msg.length >= 4 && msg.readUInt32LE(0) === PROTOCOL_TRANSFORM) {
      // Decrypt with the session's ServerIn key; the answer goes back encrypted (MS-SMB2 3.3.4.1.4).
      const t = tryDecode(() => decodeTransformHeader(msg));
      const sess = t.ok ? conn.sessions.get(t.value.sessionId) : undefined;
      const plain = sess?.keys && conn.cipher ? decryptMessage(msg, sess.keys.decryptionKey, conn.cipher) : undefined;
      events.push({ kind: 'decrypt', ok: plain !== undefined, cipher: conn.cipher });
      if (!plain || !sess?.keys || !t.ok) return void sock.destroy();
      const keys = sess.keys;
      const sessionId = t.value.sessionId;
      onMessage({
        write: (framed: Buffer) => {
          const inner = framed.subarray(4);
          const nonce = Buffer.alloc(nonceBytes(conn.cipher));
          nonce.writeBigUInt64LE(sess.nonce++);
          return sock.write(frame(encryptMessage(inner, keys.encryptionKey, conn.cipher, sessionId, nonce)));
        },
        get destroyed() { return sock.destroyed; },
        destroy: () => sock.destroy(),
      } as unknown as Socket, conn, plain, true);
      return;
    }
    if (isSmb1(msg)) {
      const d = tryDecode(() => decodeSmb1Negotiate(msg));
      if (!d.ok) return void sock.destroy();
      events.push({ kind: 'smb1-negotiate', dialects: d.value.dialects });
      // Answer "SMB 2.???" with the wildcard dialect; the client then negotiates over SMB2.
      const req = headerTemplate({ command: Command.NEGOTIATE, credits: 1 });
      send(sock, reply(sock, req, 0, (w) => encodeNegotiateResponse(w, negotiateResponse(Dialect.WILDCARD, []))));
      return;
    }
    const split = splitCompound(msg);
    if (!split.ok) {
      events.push({ kind: 'decode-error', message: split.error.message });
      return void sock.destroy();
    }
    for (const el of split.value) {
      const h = el.header;
      if (h.command === Command.NEGOTIATE) {
        const d = tryDecode(() => decodeNegotiateRequest(el.bytes));
        if (!d.ok) return void sock.destroy();
        const q = d.value;
        const dialect = [Dialect.SMB3_1_1, Dialect.SMB3_0_2, Dialect.SMB3_0, Dialect.SMB2_1, Dialect.SMB2_0_2].find((x) => q.dialects.includes(x));
        if (dialect === undefined) return void sock.destroy();
        const choice = chooseContexts(q.contexts, {
          ciphers: [Cipher.AES_128_GCM, Cipher.AES_128_CCM, Cipher.AES_256_GCM, Cipher.AES_256_CCM],
          signing: [SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC],
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
        const caps = dialect >= Dialect.SMB3_0 && dialect < Dialect.SMB3_1_1 && conn.cipher ? Capabilities.ENCRYPTION : 0;
        const resp = reply(sock, h, 0, (w) => encodeNegotiateResponse(w, { ...negotiateResponse(dialect, contexts), capabilities: Capabilities.LARGE_MTU | caps }));
        conn.preauth.update(el.bytes).update(resp);
        events.push({ kind: 'negotiate', request: q, dialect, ...(choice.signingAlgorithm !== undefined ? { signing: choice.signingAlgorithm } : {}), ...(choice.cipher ? { cipher: choice.cipher } : {}) });
        send(sock, resp);
        continue;
      }
      if (h.command === Command.SESSION_SETUP) {
        const d = tryDecode(() => {
          const request = decodeSessionSetupRequest(el.bytes);
          return { request, spnego: decodeSpnego(request.securityBuffer) };
        });
        if (!d.ok) {
          events.push({ kind: 'decode-error', message: d.error.message });
          send(sock, reply(sock, h, STATUS.INVALID_PARAMETER, (w) => encodeErrorResponse(w)));
          continue;
        }
        const { request, spnego } = d.value;
        const token = spnego.kind === 'init' ? spnego.mechToken : spnego.kind === 'resp' ? spnego.responseToken : spnego.token;
        events.push({ kind: 'session-setup', request, spnego, ntlmType: NTLMSSP_TYPE(token), securityBuffer: Buffer.from(request.securityBuffer) });
        if (NTLMSSP_TYPE(token) === 1 && token) {
          const sessionId = nextSession++;
          const sess: Sess = { preauth: conn.preauth.fork().update(el.bytes), ntlm: new NtlmServer({ computerName: 'PORTICO', domainName: 'WORKGROUP' }), nonce: 1n };
          if (spnego.kind === 'init') sess.mechTypesDer = spnego.mechTypesDer;
          conn.sessions.set(sessionId, sess);
          const challenge = sess.ntlm.challenge(token);
          const blob = encodeNegTokenResp({ negState: NegState.ACCEPT_INCOMPLETE, supportedMech: OID.NTLMSSP, responseToken: challenge });
          const resp = reply(sock, h, STATUS.MORE_PROCESSING_REQUIRED, (w) => encodeSessionSetupResponse(w, { sessionFlags: 0, securityBuffer: blob }), { sessionId });
          sess.preauth.update(resp);
          send(sock, resp);
          continue;
        }
        const sess = conn.sessions.get(h.sessionId);
        if (NTLMSSP_TYPE(token) === 3 && token && sess) {
          sess.preauth.update(el.bytes);
          let auth: AuthenticateMessage;
          const a = tryDecode(() => decodeAuthenticateMessage(token));
          if (!a.ok) {
            send(sock, reply(sock, h, STATUS.LOGON_FAILURE, (w) => encodeErrorResponse(w)));
            continue;
          }
          auth = a.value;
          const pw = Object.entries(users).find(([u]) => u.toLowerCase() === auth.user.toLowerCase())?.[1];
          const result = sess.ntlm.verify(token, auth, pw === undefined ? undefined : ntHash(pw));
          if (!result.ok || result.anonymous) {
            events.push({ kind: 'authenticate', user: auth.user, domain: auth.domain, ok: false, reason: result.ok ? 'anonymous' : result.reason, micPresent: !!auth.mic });
            conn.sessions.delete(h.sessionId);
            send(sock, reply(sock, h, STATUS.LOGON_FAILURE, (w) => encodeErrorResponse(w)));
            continue;
          }
          // mechListMIC: the client's over its mechTypes, then ours (MS-SPNG 3.1.5.1; RFC 4178 §5).
          let mechListMicOk: boolean | undefined;
          let ourMic: Buffer | undefined;
          if (sess.mechTypesDer) {
            if (spnego.kind === 'resp' && spnego.mechListMIC) {
              mechListMicOk = new NtlmSigner(result.exportedSessionKey, 'client-to-server', result.flags).verify(sess.mechTypesDer, spnego.mechListMIC);
            }
            ourMic = new NtlmSigner(result.exportedSessionKey, 'server-to-client', result.flags).sign(sess.mechTypesDer);
          }
          events.push({ kind: 'authenticate', user: auth.user, domain: auth.domain, ok: mechListMicOk !== false, micPresent: !!auth.mic, ...(mechListMicOk !== undefined ? { mechListMicOk } : {}) });
          if (mechListMicOk === false) {
            send(sock, reply(sock, h, STATUS.LOGON_FAILURE, (w) => encodeErrorResponse(w)));
            continue;
          }
          const keys = deriveKeys(result.exportedSessionKey, conn.dialect, { preauthHash: sess.preauth.value });
          sess.signingKey = keys.signingKey;
          sess.keys = keys;
          const blob = encodeNegTokenResp({ negState: NegState.ACCEPT_COMPLETED, ...(ourMic ? { mechListMIC: ourMic } : {}) });
          const resp = reply(sock, h, STATUS.SUCCESS, (w) => encodeSessionSetupResponse(w, { sessionFlags: 0, securityBuffer: blob }));
          // MS-SMB2 3.3.5.5.3: the final SESSION_SETUP response is signed (3.1.1 always).
          signMessage(resp, keys.signingKey, conn.signingAlgorithm);
          send(sock, resp);
          continue;
        }
        send(sock, reply(sock, h, STATUS.LOGON_FAILURE, (w) => encodeErrorResponse(w)));
        continue;
      }
      // Anything after authentication: check its signature, record it, refuse it, signed.
      const sess = conn.sessions.get(h.sessionId);
      if (sess?.signingKey) {
        const signatureOk = (h.flags & Flags.SIGNED) !== 0 && verifySignature(el.bytes, sess.signingKey, conn.signingAlgorithm);
        const path = h.command === Command.TREE_CONNECT ? tryDecode(() => decodeTreeConnectRequest(el.bytes)) : undefined;
        events.push({ kind: 'signed-request', command: h.command, signatureOk: encrypted || signatureOk, encrypted, ...(path?.ok ? { path: path.value.path } : {}) });
        const resp = reply(sock, h, STATUS.ACCESS_DENIED, (w) => encodeErrorResponse(w));
        // An encrypted response is not signed as well (3.3.4.1.1); its encryption authenticates it.
        if (!encrypted) signMessage(resp, sess.signingKey, conn.signingAlgorithm);
        send(sock, resp);
        continue;
      }
      send(sock, reply(sock, h, STATUS.USER_SESSION_DELETED, (w) => encodeErrorResponse(w)));
    }
  };

  function negotiateResponse(dialect: number, contexts: NegotiateContext[]) {
    const now = fileTimeNow();
    return {
      securityMode: SecurityMode.SIGNING_ENABLED | SecurityMode.SIGNING_REQUIRED,
      dialect,
      serverGuid,
      capabilities: Capabilities.LARGE_MTU,
      maxTransactSize: 8 << 20,
      maxReadSize: 8 << 20,
      maxWriteSize: 8 << 20,
      systemTime: now,
      serverStartTime: 0n,
      securityBuffer: encodeNegTokenInit2([OID.NTLMSSP]),
      contexts,
    };
  }

  const server: Server = createServer((sock) => {
    sockets.add(sock);
    const parser = new FrameParser();
    const conn: Conn = { preauth: new PreauthHash(), dialect: 0, signingAlgorithm: 0, cipher: 0, sessions: new Map() };
    sock.on('data', (chunk: Buffer) => {
      const r = parser.push(chunk);
      for (const m of r.messages) onMessage(sock, conn, m);
      if (r.error) sock.destroy();
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

export { HEADER_BYTES };
