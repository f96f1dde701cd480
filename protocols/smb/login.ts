/**
 * One SESSION_SETUP authentication: SPNEGO around NTLMSSP, verified through the shared
 * Authenticator (src/auth/authenticator.ts) — the same throttle as WebDAV's Basic logins, the
 * sealed NT hash of the user store, and the principal the session layer takes.
 *
 * The SESSION_SETUP command feeds each request's security buffer to `step` and answers with what
 * it returns: `continue` is STATUS_MORE_PROCESSING_REQUIRED with the token, `done` is
 * STATUS_SUCCESS with the token (the final NegTokenResp with our mechListMIC) and the session key
 * the SMB keys derive from, `failed` is the status (STATUS_LOGON_FAILURE for every credential
 * failure, so a client cannot tell an unknown user from a wrong password or a throttled one;
 * STATUS_INVALID_PARAMETER for a malformed token).
 *
 * SPNEGO rules (RFC 4178 §5, MS-SPNG 3.3.5): NTLMSSP is the only mechanism offered. A client whose
 * first choice is another mechanism (Windows puts Kerberos first) gets accept-incomplete with
 * supportedMech NTLMSSP and no token, and then must exchange mechListMICs; otherwise a MIC is
 * checked when the client sends one and answered with ours. A raw NTLMSSP token (no SPNEGO) is
 * answered raw.
 */
import type { AuthContext, Authenticator, Principal } from '../../src/auth/authenticator.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { NtlmServer, NtlmSigner, decodeAuthenticateMessage, isAnonymous, type NtlmServerOptions } from './ntlm.ts';
import { NegState, OID, decodeSpnego, encodeNegTokenResp } from './spnego.ts';
import { STATUS } from './status.ts';
import { tryDecode } from './wire.ts';

export interface LoginOptions extends NtlmServerOptions {
  authenticator: Authenticator;
  ctx: AuthContext;
  /** NTLM anonymous logins (no user, no response): only where a share allows guests. Default false. */
  allowAnonymous?: boolean;
}

export type LoginStep =
  | { kind: 'continue'; token: Buffer }
  | { kind: 'done'; token: Buffer; principal: Principal; anonymous: boolean; sessionKey: Buffer }
  | { kind: 'failed'; status: number; reason: string; token?: Buffer };

type State = 'start' | 'await-negotiate' | 'await-authenticate' | 'finished';

const NTLM_TYPE = (b: Buffer | undefined): number => (b && b.length >= 12 && b.subarray(0, 8).toString('latin1') === 'NTLMSSP\0' ? b.readUInt32LE(8) : 0);

export class SpnegoLogin {
  private readonly opts: LoginOptions;
  private readonly ntlm: NtlmServer;
  private state: State = 'start';
  private raw = false;
  private mechTypesDer: Buffer | undefined;
  /** NTLMSSP was not the client's first choice: the MIC exchange is mandatory (RFC 4178 §5 e). */
  private micRequired = false;

  constructor(opts: LoginOptions) {
    this.opts = opts;
    this.ntlm = new NtlmServer(opts);
  }

  get finished(): boolean {
    return this.state === 'finished';
  }

  private fail(status: number, reason: string, reject = false): LoginStep {
    this.state = 'finished';
    return reject && !this.raw ? { kind: 'failed', status, reason, token: encodeNegTokenResp({ negState: NegState.REJECT }) } : { kind: 'failed', status, reason };
  }

  private wrap(r: { negState: number; supportedMech?: string; responseToken?: Buffer; mechListMIC?: Buffer }): Buffer {
    return this.raw ? (r.responseToken ?? Buffer.alloc(0)) : encodeNegTokenResp(r);
  }

  async step(securityBuffer: Buffer): Promise<LoginStep> {
    if (this.state === 'finished') return this.fail(STATUS.INVALID_PARAMETER, 'authentication already finished');
    const d = tryDecode(() => decodeSpnego(securityBuffer));
    if (!d.ok) return this.fail(STATUS.INVALID_PARAMETER, `malformed token: ${d.error.message}`);
    const t = d.value;
    let token: Buffer | undefined;
    let mechListMIC: Buffer | undefined;
    if (this.state === 'start') {
      if (t.kind === 'raw-ntlmssp') {
        this.raw = true;
        token = t.token;
      } else if (t.kind === 'init') {
        if (!t.mechTypes.includes(OID.NTLMSSP)) return this.fail(STATUS.LOGON_FAILURE, 'no mechanism in common', true);
        this.mechTypesDer = t.mechTypesDer;
        this.micRequired = t.mechTypes[0] !== OID.NTLMSSP;
        // An optimistic token for another mechanism is dropped; the client restarts with NTLMSSP.
        if (t.mechTypes[0] === OID.NTLMSSP) token = t.mechToken;
      } else {
        return this.fail(STATUS.INVALID_PARAMETER, 'first token is not a NegTokenInit');
      }
      if (token && NTLM_TYPE(token) !== 1) return this.fail(STATUS.INVALID_PARAMETER, 'first NTLMSSP token is not a NEGOTIATE');
      if (!token) {
        this.state = 'await-negotiate';
        return { kind: 'continue', token: this.wrap({ negState: NegState.ACCEPT_INCOMPLETE, supportedMech: OID.NTLMSSP }) };
      }
    } else {
      if (this.raw ? t.kind !== 'raw-ntlmssp' : t.kind !== 'resp') return this.fail(STATUS.INVALID_PARAMETER, 'unexpected token');
      token = t.kind === 'raw-ntlmssp' ? t.token : t.kind === 'resp' ? t.responseToken : undefined;
      mechListMIC = t.kind === 'resp' ? t.mechListMIC : undefined;
    }

    const type = NTLM_TYPE(token);
    if (type === 1 && (this.state === 'start' || this.state === 'await-negotiate') && token) {
      const c = tryDecode(() => this.ntlm.challenge(token));
      if (!c.ok) return this.fail(STATUS.INVALID_PARAMETER, `malformed NTLMSSP NEGOTIATE: ${c.error.message}`);
      const first = this.state === 'start';
      this.state = 'await-authenticate';
      return { kind: 'continue', token: this.wrap({ negState: NegState.ACCEPT_INCOMPLETE, ...(first ? { supportedMech: OID.NTLMSSP } : {}), responseToken: c.value }) };
    }
    if (type !== 3 || this.state !== 'await-authenticate' || !token) return this.fail(STATUS.INVALID_PARAMETER, `unexpected NTLMSSP message type ${type}`);
    return this.authenticate(token, mechListMIC);
  }

  private async authenticate(token: Buffer, mechListMIC: Buffer | undefined): Promise<LoginStep> {
    this.state = 'finished';
    const a = tryDecode(() => decodeAuthenticateMessage(token));
    if (!a.ok) return this.fail(STATUS.INVALID_PARAMETER, `malformed NTLMSSP AUTHENTICATE: ${a.error.message}`);
    const auth = a.value;
    const { authenticator, ctx } = this.opts;

    if (isAnonymous(auth)) {
      if (!this.opts.allowAnonymous) return this.fail(STATUS.LOGON_FAILURE, 'anonymous logins are not allowed', true);
      // No session key: an anonymous session cannot sign (MS-SMB2 3.3.5.5.3, SMB2_SESSION_FLAG_IS_NULL).
      return { kind: 'done', token: this.wrap({ negState: NegState.ACCEPT_COMPLETED }), principal: authenticator.guest(), anonymous: true, sessionKey: Buffer.alloc(0) };
    }
    const user = auth.user;
    try {
      authenticator.checkThrottle(user, ctx);
    } catch (e) {
      if (isVfsError(e, 'ETHROTTLED')) return this.fail(STATUS.LOGON_FAILURE, 'throttled', true);
      throw e;
    }
    const hash = await authenticator.ntHash(user);
    // As with Basic logins: attempts in flight when a lockout fell must not learn their outcome.
    try {
      authenticator.checkThrottle(user, ctx);
    } catch (e) {
      if (isVfsError(e, 'ETHROTTLED')) return this.fail(STATUS.LOGON_FAILURE, 'throttled', true);
      throw e;
    }
    const r = this.ntlm.verify(token, auth, hash);
    if (!r.ok || r.anonymous) {
      authenticator.recordResult(user, ctx, false);
      return this.fail(STATUS.LOGON_FAILURE, r.ok ? 'anonymous' : r.reason, true);
    }
    let ourMic: Buffer | undefined;
    if (this.mechTypesDer) {
      if (mechListMIC) {
        const ok = new NtlmSigner(r.exportedSessionKey, 'client-to-server', r.flags).verify(this.mechTypesDer, mechListMIC);
        if (!ok) {
          authenticator.recordResult(user, ctx, false);
          return this.fail(STATUS.LOGON_FAILURE, 'bad mechListMIC', true);
        }
      } else if (this.micRequired) {
        authenticator.recordResult(user, ctx, false);
        return this.fail(STATUS.LOGON_FAILURE, 'mechListMIC missing', true);
      }
      if (mechListMIC || this.micRequired) ourMic = new NtlmSigner(r.exportedSessionKey, 'server-to-client', r.flags).sign(this.mechTypesDer);
    }
    const principal = await authenticator.principalFor(user);
    if (!principal) {
      // Deleted or disabled between the hash lookup and now.
      authenticator.recordResult(user, ctx, false);
      return this.fail(STATUS.LOGON_FAILURE, 'unknown user', true);
    }
    authenticator.recordResult(user, ctx, true);
    return {
      kind: 'done',
      token: this.wrap({ negState: NegState.ACCEPT_COMPLETED, ...(ourMic ? { mechListMIC: ourMic } : {}) }),
      principal,
      anonymous: false,
      sessionKey: r.exportedSessionKey,
    };
  }
}
