/**
 * SpnegoLogin, the SESSION_SETUP authentication over the Authenticator: impacket's NTLM client
 * drives it through SPNEGO (NTLMSSP first, and Kerberos first as Windows sends it, where the
 * mechListMIC becomes mandatory) and raw NTLMSSP; anonymous logins only when allowed; malformed
 * and out-of-order tokens are INVALID_PARAMETER; credential failures are all LOGON_FAILURE and
 * reach the throttle.
 */
import { describe, expect, it } from 'vitest';
import { SpnegoLogin, type LoginStep } from '../../protocols/smb/login.ts';
import { NtlmSigner, NtlmFlags } from '../../protocols/smb/ntlm.ts';
import { NegState, OID, decodeSpnego, encodeMechTypes, encodeNegTokenInit, encodeNegTokenResp } from '../../protocols/smb/spnego.ts';
import { STATUS } from '../../protocols/smb/status.ts';
import { ntHash } from '../../src/auth/md4.ts';
import { guestPrincipal, type Authenticator } from '../../src/auth/authenticator.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import { hasImpacket, runPython } from './python.ts';
import { hex } from './helpers.ts';

function fakeAuthenticator(users: Record<string, string>, throttled = new Set<string>()) {
  const results: [string, boolean][] = [];
  const a: Authenticator = {
    authenticate: async () => { throw new VfsError('EAUTH'); },
    ntHash: async (u) => { const pw = users[u.toLowerCase()]; return pw === undefined ? undefined : ntHash(pw); },
    recordResult: (u, _c, ok) => void results.push([u, ok]),
    checkThrottle: (u) => { if (throttled.has(u.toLowerCase())) throw new VfsError('ETHROTTLED'); },
    principalFor: async (u) => (users[u.toLowerCase()] === undefined ? undefined : { user: u.toLowerCase(), uid: 10000, gid: 10000, groups: [], guest: false }),
    principalForUid: async () => undefined,
    guest: guestPrincipal,
  };
  return { a, results };
}

const CTX = { protocol: 'smb', clientAddress: '127.0.0.1' };
const newLogin = (a: Authenticator, allowAnonymous = false) => new SpnegoLogin({ authenticator: a, ctx: CTX, computerName: 'PORTICO', domainName: 'WORKGROUP', allowAnonymous });
const tokenOf = (s: LoginStep): Buffer => (s.kind === 'failed' ? s.token ?? Buffer.alloc(0) : s.token);

async function type1(): Promise<Buffer> {
  const py = await runPython(`from impacket import ntlm
out = {'t1': ntlm.getNTLMSSPType1('', '', signingRequired=True, use_ntlmv2=True).getData().hex()}`, {});
  return hex(py.t1);
}
async function type3(t1: Buffer, challenge: Buffer, user: string, password: string): Promise<{ t3: Buffer; key: Buffer }> {
  const py = await runPython(`from impacket import ntlm
t1 = ntlm.NTLMAuthNegotiate(); t1.fromString(h(inp['t1']))
t3, key = ntlm.getNTLMSSPType3(t1, h(inp['t2']), inp['user'], inp['pw'], 'WORKGROUP', use_ntlmv2=True)
out = {'t3': t3.getData().hex(), 'key': key.hex()}`, { t1: t1.toString('hex'), t2: challenge.toString('hex'), user, pw: password });
  return { t3: hex(py.t3), key: hex(py.key) };
}
function responseToken(step: LoginStep): Buffer {
  const t = decodeSpnego(tokenOf(step));
  if (t.kind !== 'resp' || !t.responseToken) throw new Error('no response token');
  return t.responseToken;
}

describe('SPNEGO + NTLMSSP through the Authenticator (impacket as the client)', () => {
  it('NTLMSSP first with an optimistic NEGOTIATE: continue, then done with the principal and the exported session key', async () => {
    if (!(await hasImpacket())) return;
    const { a, results } = fakeAuthenticator({ alice: 'pw' });
    const login = newLogin(a);
    const t1 = await type1();
    const s1 = await login.step(encodeNegTokenInit([OID.NTLMSSP], t1));
    expect(s1.kind).toBe('continue');
    expect(decodeSpnego(tokenOf(s1))).toMatchObject({ kind: 'resp', negState: NegState.ACCEPT_INCOMPLETE, supportedMech: OID.NTLMSSP });
    const { t3, key } = await type3(t1, responseToken(s1), 'Alice', 'pw');
    const s2 = await login.step(encodeNegTokenResp({ responseToken: t3 }));
    expect(s2).toMatchObject({ kind: 'done', anonymous: false, principal: { user: 'alice' } });
    if (s2.kind === 'done') expect(s2.sessionKey).toEqual(key);
    // No mechListMIC from the client and NTLMSSP was its first choice: none from us either.
    expect(decodeSpnego(tokenOf(s2))).toEqual({ kind: 'resp', negState: NegState.ACCEPT_COMPLETED });
    expect(results).toEqual([['Alice', true]]);
    expect(login.finished).toBe(true);
    expect(await login.step(encodeNegTokenResp({ responseToken: t3 }))).toMatchObject({ kind: 'failed', status: STATUS.INVALID_PARAMETER });
  });

  it('Kerberos first (as Windows offers): accept-incomplete without a token, then the mechListMIC is mandatory both ways', async () => {
    if (!(await hasImpacket())) return;
    const { a } = fakeAuthenticator({ alice: 'pw' });
    const mechs = [OID.MS_KERBEROS, OID.KERBEROS, OID.NTLMSSP];
    const run = async (withMic: boolean) => {
      const login = newLogin(a);
      const s0 = await login.step(encodeNegTokenInit(mechs, hex('6082aabb')));
      expect(decodeSpnego(tokenOf(s0))).toEqual({ kind: 'resp', negState: NegState.ACCEPT_INCOMPLETE, supportedMech: OID.NTLMSSP });
      const t1 = await type1();
      const s1 = await login.step(encodeNegTokenResp({ responseToken: t1 }));
      expect(s1.kind).toBe('continue');
      const { t3, key } = await type3(t1, responseToken(s1), 'alice', 'pw');
      const flags = (NtlmFlags.EXTENDED_SESSIONSECURITY | NtlmFlags.N128 | NtlmFlags.KEY_EXCH) >>> 0;
      const mic = new NtlmSigner(key, 'client-to-server', flags).sign(encodeMechTypes(mechs));
      return { s2: await login.step(encodeNegTokenResp({ responseToken: t3, ...(withMic ? { mechListMIC: mic } : {}) })), key, flags };
    };
    const { s2, key, flags } = await run(true);
    expect(s2.kind).toBe('done');
    const final = decodeSpnego(tokenOf(s2));
    expect(final.kind === 'resp' && final.mechListMIC).toEqual(new NtlmSigner(key, 'server-to-client', flags).sign(encodeMechTypes(mechs)));
    expect((await run(false)).s2).toMatchObject({ kind: 'failed', status: STATUS.LOGON_FAILURE, reason: 'mechListMIC missing' });
  });

  it('raw NTLMSSP (no SPNEGO) is answered raw', async () => {
    if (!(await hasImpacket())) return;
    const { a } = fakeAuthenticator({ alice: 'pw' });
    const login = newLogin(a);
    const t1 = await type1();
    const s1 = await login.step(t1);
    expect(s1.kind === 'continue' && s1.token.subarray(0, 8).toString('latin1')).toBe('NTLMSSP\0');
    const { t3 } = await type3(t1, tokenOf(s1), 'alice', 'pw');
    expect(await login.step(t3)).toMatchObject({ kind: 'done', token: Buffer.alloc(0) });
  });

  it('wrong password, unknown user and throttled user are all LOGON_FAILURE with a reject token; failures are recorded', async () => {
    if (!(await hasImpacket())) return;
    const { a, results } = fakeAuthenticator({ alice: 'pw', carol: 'pw' }, new Set(['carol']));
    for (const [user, pw, reason] of [['alice', 'nope', 'bad-password'], ['mallory', 'pw', 'unknown-user'], ['carol', 'pw', 'throttled']] as const) {
      const login = newLogin(a);
      const t1 = await type1();
      const s1 = await login.step(encodeNegTokenInit([OID.NTLMSSP], t1));
      const { t3 } = await type3(t1, responseToken(s1), user, pw);
      const s2 = await login.step(encodeNegTokenResp({ responseToken: t3 }));
      expect(s2).toMatchObject({ kind: 'failed', status: STATUS.LOGON_FAILURE, reason });
      expect(decodeSpnego(tokenOf(s2))).toEqual({ kind: 'resp', negState: NegState.REJECT });
    }
    expect(results).toEqual([['alice', false], ['mallory', false]]);
  });
});

describe('anonymous and malformed', () => {
  // An anonymous AUTHENTICATE: empty user, empty NT response, one-zero-byte LM response.
  const anon = (() => {
    const b = Buffer.alloc(65);
    Buffer.from('NTLMSSP\0', 'latin1').copy(b);
    b.writeUInt32LE(3, 8);
    b.writeUInt16LE(1, 12); b.writeUInt16LE(1, 14); b.writeUInt32LE(64, 16);
    for (const at of [20, 28, 36, 44, 52]) b.writeUInt32LE(64, at + 4);
    b.writeUInt32LE(NtlmFlags.UNICODE | NtlmFlags.ANONYMOUS, 60);
    return b;
  })();
  const negotiate = hex('4e544c4d535350000100000015820862000000002800000000000000280000000601000000000 00f'.replace(/\s/g, ''));

  it('is refused unless allowed, then gives the guest principal and no session key', async () => {
    const { a } = fakeAuthenticator({});
    for (const allow of [false, true]) {
      const login = newLogin(a, allow);
      expect((await login.step(encodeNegTokenInit([OID.NTLMSSP], negotiate))).kind).toBe('continue');
      const s = await login.step(encodeNegTokenResp({ responseToken: anon }));
      if (allow) expect(s).toMatchObject({ kind: 'done', anonymous: true, principal: { guest: true }, sessionKey: Buffer.alloc(0) });
      else expect(s).toMatchObject({ kind: 'failed', status: STATUS.LOGON_FAILURE });
    }
  });

  it('garbage, a NegTokenResp first, an AUTHENTICATE before NEGOTIATE, no NTLMSSP in the list', async () => {
    const { a } = fakeAuthenticator({});
    expect(await newLogin(a).step(hex('0102'))).toMatchObject({ kind: 'failed', status: STATUS.INVALID_PARAMETER });
    expect(await newLogin(a).step(encodeNegTokenResp({ negState: 1 }))).toMatchObject({ kind: 'failed', status: STATUS.INVALID_PARAMETER });
    expect(await newLogin(a).step(encodeNegTokenInit([OID.NTLMSSP], anon))).toMatchObject({ kind: 'failed', status: STATUS.INVALID_PARAMETER });
    expect(await newLogin(a).step(encodeNegTokenInit([OID.KERBEROS]))).toMatchObject({ kind: 'failed', status: STATUS.LOGON_FAILURE });
  });
});
