/**
 * The real-client smoke test: smbclient (Debian's, Samba 4.17) against the test-only smoke
 * server built from the wire layer. It must negotiate SMB 3.1.1 from Portico's NEGOTIATE
 * response (contexts included), send a well-formed SESSION_SETUP with an NTLMSSP NEGOTIATE inside
 * a SPNEGO NegTokenInit, and then complete NTLMv2: with the right password smbclient accepts
 * the server's mechListMIC and the signed final SESSION_SETUP response (keys from the preauth
 * hash) and goes on to a TREE_CONNECT whose signature the server verifies; with a wrong password
 * it reports NT_STATUS_LOGON_FAILURE. Every dialect from 2.0.2 to 3.1.1 signs with its own keys
 * and algorithm; with --client-protection=encrypt the requests arrive in TRANSFORM_HEADERs; and
 * with shares configured `smbclient -L` prints the list it read over DCE/RPC srvsvc on IPC$.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from '../../protocols/smb/header.ts';
import { Cipher, Dialect, SigningAlgorithm } from '../../protocols/smb/messages/negotiate.ts';
import { OID } from '../../protocols/smb/spnego.ts';
import { ShareType } from '../../protocols/smb/dcerpc.ts';
import { decodeAuthenticateMessage } from '../../protocols/smb/ntlm.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { LocalAuthenticator, LocalUserStore } from '../../src/auth/local-users.ts';
import { Throttle } from '../../src/auth/throttle.ts';
import { startSmokeServer, type SmokeEvent, type SmokeServer } from './smoke-server.ts';

const HAVE_SMBCLIENT = spawnSync('smbclient', ['--version']).status === 0;

function smbclient(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; out: string }> {
  // A private smb.conf so the machine's own configuration does not change what the client offers.
  const dir = mkdtempSync(join(tmpdir(), 'portico-smbclient-'));
  const conf = join(dir, 'smb.conf');
  writeFileSync(conf, '[global]\n  workgroup = WORKGROUP\n');
  return new Promise((resolve, reject) => {
    const child = spawn('smbclient', ['-s', conf, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, out });
    });
  });
}

const of = <K extends SmokeEvent['kind']>(events: SmokeEvent[], kind: K): Extract<SmokeEvent, { kind: K }>[] =>
  events.filter((e): e is Extract<SmokeEvent, { kind: K }> => e.kind === kind);

describe.skipIf(!HAVE_SMBCLIENT)('smbclient against the wire layer (SMB 3.1.1, NTLMv2 in SPNEGO)', () => {
  let server: SmokeServer | undefined;
  // The real user store: alice's NT hash is the sealed one LocalUserStore keeps, read through the Authenticator.
  let dir: string;
  let store: MetadataStore;
  let users: LocalUserStore;
  // A fresh throttle per test: failures count per address too, and every test logs in from 127.0.0.1.
  let authenticator: LocalAuthenticator;
  beforeEach(() => {
    authenticator = new LocalAuthenticator(users, new Throttle({ maxFailures: 3, windowMs: 60_000, lockoutMs: 60_000, maxLockoutMs: 60_000 }));
  });
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-smb-users-'));
    store = MetadataStore.open(dir);
    users = new LocalUserStore(store, { secret: 'smb-test-secret-smb-test-secret-0', bcryptRounds: 4 });
    await users.addUser({ name: 'alice', password: 'pw', groups: ['staff'] });
    await users.addUser({ name: 'bob', password: 'bob-pw' });
  });
  afterAll(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('negotiates 3.1.1, sends NTLMSSP NEGOTIATE in SPNEGO, authenticates, and signs its TREE_CONNECT', async () => {
    server = await startSmokeServer(authenticator);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', 'SMB3_11']);
    const ev = server.events;
    expect(of(ev, 'decode-error')).toEqual([]);
    const neg = of(ev, 'negotiate')[0];
    expect(neg?.dialect).toBe(Dialect.SMB3_1_1);
    expect(neg?.request.dialects).toContain(Dialect.SMB3_1_1);
    expect(neg?.request.contexts.some((c) => 'hashAlgorithms' in c)).toBe(true);
    const setups = of(ev, 'session-setup');
    expect(setups[0]?.spnego.kind).toBe('init');
    const first = setups[0]!.spnego;
    if (first.kind === 'init') expect(first.mechTypes).toContain(OID.NTLMSSP);
    expect(setups[0]?.ntlmType).toBe(1);
    expect(setups[1]?.ntlmType).toBe(3);
    // smbclient sent an NTLM MIC and a SPNEGO mechListMIC; both were checked by the login.
    const second = setups[1]!.spnego;
    expect(second.kind === 'resp' && second.mechListMIC?.length).toBe(16);
    if (second.kind === 'resp') expect(decodeAuthenticateMessage(second.responseToken!).mic).toBeDefined();
    expect(of(ev, 'authenticate')[0]).toEqual({ kind: 'authenticate', ok: true, user: 'alice', uid: 10000 });
    // smbclient only goes on after verifying the signed final SESSION_SETUP response and our mechListMIC.
    const signed = of(ev, 'signed-request');
    expect(signed[0]).toMatchObject({ command: Command.TREE_CONNECT, signatureOk: true, encrypted: false });
    expect(neg?.signing).toBe(SigningAlgorithm.AES_GMAC);
    expect(signed[0]?.path).toMatch(/\\IPC\$$/i);
    expect(r.out).toMatch(/ACCESS_DENIED/);
    if (process.env.SMB_CAPTURE_NEGTOKENINIT) writeFileSync(process.env.SMB_CAPTURE_NEGTOKENINIT, setups[0]!.securityBuffer.toString('hex'));
  });

  it.each([
    ['SMB3_02', Dialect.SMB3_0_2, 'AES-CMAC'],
    ['SMB3_00', Dialect.SMB3_0, 'AES-CMAC'],
    ['SMB2_10', Dialect.SMB2_1, 'HMAC-SHA256'],
    ['SMB2_02', Dialect.SMB2_0_2, 'HMAC-SHA256'],
  ] as const)('-m %s: authenticates and signs with the dialect\'s keys (%s, %s)', async (m, dialect, _algorithm) => {
    server = await startSmokeServer(authenticator);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', m]);
    expect(of(server.events, 'negotiate')[0]?.dialect).toBe(dialect);
    expect(of(server.events, 'authenticate')[0]).toMatchObject({ user: 'alice', ok: true });
    expect(of(server.events, 'signed-request')[0]).toMatchObject({ command: Command.TREE_CONNECT, signatureOk: true, encrypted: false });
    expect(r.out).toMatch(/ACCESS_DENIED/);
  });

  it.each([
    ['SMB3_11', Cipher.AES_128_GCM],
    ['SMB3_00', Cipher.AES_128_CCM],
  ] as const)('--client-protection=encrypt -m %s: the TREE_CONNECT arrives in a TRANSFORM_HEADER and decrypts', async (m, cipher) => {
    server = await startSmokeServer(authenticator);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', m, '--client-protection=encrypt']);
    expect(of(server.events, 'decrypt')[0]).toEqual({ kind: 'decrypt', ok: true, cipher });
    expect(of(server.events, 'signed-request')[0]).toMatchObject({ command: Command.TREE_CONNECT, encrypted: true });
    // smbclient decrypted and authenticated our encrypted answer to get the status.
    expect(r.out).toMatch(/ACCESS_DENIED/);
  });

  it.each([
    ['AES-256-GCM', Cipher.AES_256_GCM],
    ['AES-256-CCM', Cipher.AES_256_CCM],
    ['AES-128-CCM', Cipher.AES_128_CCM],
  ] as const)('3.1.1 encryption with %s chosen by the server: 256-bit keys where due, smbclient reads the encrypted answer', async (_n, cipher) => {
    server = await startSmokeServer(authenticator, { ciphers: [cipher] });
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', 'SMB3_11', '--client-protection=encrypt']);
    expect(of(server.events, 'negotiate')[0]?.cipher).toBe(cipher);
    expect(of(server.events, 'decrypt')[0]).toEqual({ kind: 'decrypt', ok: true, cipher });
    expect(r.out).toMatch(/ACCESS_DENIED/);
  });

  it.each([
    ['AES-CMAC', SigningAlgorithm.AES_CMAC],
    ['HMAC-SHA256', SigningAlgorithm.HMAC_SHA256],
  ] as const)('3.1.1 signing with %s chosen through SIGNING_CAPABILITIES', async (_n, algorithm) => {
    server = await startSmokeServer(authenticator, { signing: [algorithm] });
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', 'SMB3_11']);
    expect(of(server.events, 'negotiate')[0]?.signing).toBe(algorithm);
    expect(of(server.events, 'signed-request')[0]).toMatchObject({ command: Command.TREE_CONNECT, signatureOk: true });
    expect(r.out).toMatch(/ACCESS_DENIED/);
  });

  it.each([[[] as string[]], [['--client-protection=encrypt']]])('-L lists the shares over DCE/RPC srvsvc on IPC$ (NetrShareEnumAll level 1) %j', async (extra) => {
    server = await startSmokeServer(authenticator, { shares: [
      { name: 'data', type: ShareType.DISKTREE, remark: 'Portico data' },
      { name: 'Ünïcode shäre', type: ShareType.DISKTREE, remark: '' },
      { name: 'IPC$', type: ShareType.IPC | ShareType.SPECIAL, remark: 'IPC Service' },
    ] });
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', 'SMB3_11', ...extra]);
    expect(r.out).toMatch(/data\s+Disk\s+Portico data/);
    expect(r.out).toMatch(/Ünïcode shäre\s+Disk/);
    expect(r.out).toMatch(/IPC\$\s+IPC\s+IPC Service/);
    expect(of(server.events, 'rpc').map((e) => [e.ptype, e.opnum, e.ok])).toEqual([[11, undefined, true], [0, 15, true]]);
    expect(of(server.events, 'signed-request').every((e) => e.signatureOk && e.encrypted === (extra.length > 0))).toBe(true);
  });

  it('with SMB1 allowed, smbclient starts with the SMB1 multi-protocol NEGOTIATE and is led to SMB2 by the wildcard', async () => {
    server = await startSmokeServer(authenticator);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '--option=client min protocol=NT1', '-m', 'SMB3_11']);
    expect(of(server.events, 'smb1-negotiate')[0]?.dialects).toEqual(expect.arrayContaining(['NT LM 0.12', 'SMB 2.002', 'SMB 2.???']));
    expect(of(server.events, 'negotiate')[0]?.dialect).toBe(Dialect.SMB3_1_1);
    expect(of(server.events, 'authenticate')[0]).toMatchObject({ ok: true, user: 'alice' });
    expect(r.out).toMatch(/ACCESS_DENIED/);
  });

  it.each([['SMB3_02', Dialect.SMB3_0_2], ['SMB3_00', Dialect.SMB3_0]] as const)('-m %s -L: FSCTL_VALIDATE_NEGOTIATE_INFO after the IPC$ TREE_CONNECT matches, and the shares list', async (m, dialect) => {
    server = await startSmokeServer(authenticator, { shares: [{ name: 'data', type: ShareType.DISKTREE, remark: 'Portico data' }] });
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%pw', '-m', m]);
    expect(of(server.events, 'negotiate')[0]?.dialect).toBe(dialect);
    expect(of(server.events, 'validate-negotiate')).toEqual([{ kind: 'validate-negotiate', ok: true }]);
    expect(r.out).toMatch(/data\s+Disk\s+Portico data/);
  });

  it('a wrong password is NT_STATUS_LOGON_FAILURE', async () => {
    server = await startSmokeServer(authenticator);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'alice%nope', '-m', 'SMB3_11']);
    expect(of(server.events, 'authenticate')[0]).toMatchObject({ ok: false, reason: 'bad-password' });
    expect(of(server.events, 'signed-request')).toEqual([]);
    expect(r.out).toMatch(/NT_STATUS_LOGON_FAILURE/);
  });

  it('an unknown user is NT_STATUS_LOGON_FAILURE too; user names are case-insensitive', async () => {
    server = await startSmokeServer(authenticator);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'mallory%pw', '-m', 'SMB3_11']);
    expect(of(server.events, 'authenticate')[0]).toMatchObject({ ok: false, reason: 'unknown-user' });
    expect(r.out).toMatch(/NT_STATUS_LOGON_FAILURE/);
    await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'ALICE%pw', '-m', 'SMB3_11']);
    expect(of(server.events, 'authenticate')[1]).toEqual({ kind: 'authenticate', ok: true, user: 'alice', uid: 10000 });
  });

  it('the shared throttle: after 3 wrong NTLM passwords even the right one is refused', async () => {
    server = await startSmokeServer(authenticator);
    for (let i = 0; i < 3; i++) await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'bob%wrong', '-m', 'SMB3_11']);
    const r = await smbclient(['-L', '//127.0.0.1', '-p', String(server.port), '-U', 'bob%bob-pw', '-m', 'SMB3_11']);
    expect(of(server.events, 'authenticate').map((e) => e.reason)).toEqual(['bad-password', 'bad-password', 'bad-password', 'throttled']);
    expect(r.out).toMatch(/NT_STATUS_LOGON_FAILURE/);
  });
});
