/**
 * impacket's SMBConnection (python3-impacket 0.10, an independent client) against the smoke
 * server: its default start is the SMB1 multi-protocol NEGOTIATE ("NT LM 0.12", "SMB 2.002",
 * "SMB 2.???"), which the wire layer answers with the SMB2 wildcard dialect 0x02FF so impacket
 * negotiates again over SMB2 (MS-SMB2 3.3.5.3.1); it then logs in with NTLMv2, encrypts with
 * AES-128-CCM on 3.0 (impacket encrypts when the server announces SMB2_GLOBAL_CAP_ENCRYPTION)
 * and lists shares over srvsvc with pipe WRITE and READ. With a preferred 2.x dialect it signs
 * with HMAC-SHA256 instead.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from '../../protocols/smb/header.ts';
import { Cipher, Dialect } from '../../protocols/smb/messages/negotiate.ts';
import { ShareType } from '../../protocols/smb/dcerpc.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { LocalAuthenticator, LocalUserStore } from '../../src/auth/local-users.ts';
import { Throttle } from '../../src/auth/throttle.ts';
import { hasImpacket, runPython } from './python.ts';
import { startSmokeServer, type SmokeEvent, type SmokeServer } from './smoke-server.ts';

const of = <K extends SmokeEvent['kind']>(events: SmokeEvent[], kind: K): Extract<SmokeEvent, { kind: K }>[] =>
  events.filter((e): e is Extract<SmokeEvent, { kind: K }> => e.kind === kind);

const HAVE = await hasImpacket();

describe.skipIf(!HAVE)('impacket SMBConnection against the wire layer', () => {
  let dir: string;
  let store: MetadataStore;
  let authenticator: LocalAuthenticator;
  let server: SmokeServer | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-smb-impacket-'));
    store = MetadataStore.open(dir);
    const users = new LocalUserStore(store, { secret: 'smb-test-secret-smb-test-secret-1', bcryptRounds: 4 });
    await users.addUser({ name: 'alice', password: 'pw' });
    authenticator = new LocalAuthenticator(users, new Throttle({ maxFailures: 10, windowMs: 60_000, lockoutMs: 60_000, maxLockoutMs: 60_000 }));
  });
  afterAll(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const connect = (port: number, dialect?: string, password = 'pw') =>
    runPython(`from impacket.smbconnection import SMBConnection, SessionError
from impacket import smb3structs
kw = {'preferredDialect': getattr(smb3structs, inp['dialect'])} if inp['dialect'] else {}
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['port'], timeout=10, **kw)
out = {'dialect': c.getDialect()}
try:
    c.login('alice', inp['pw'])
    out['shares'] = [[x['shi1_netname'][:-1], x['shi1_type'], x['shi1_remark'][:-1]] for x in c.listShares()]
    c.logoff()
except SessionError as e:
    out['error'] = e.getErrorString()[0]`, { port, dialect: dialect ?? null, pw: password });

  const SHARES = [{ name: 'data', type: ShareType.DISKTREE, remark: 'Portico data' }, { name: 'IPC$', type: (ShareType.IPC | ShareType.SPECIAL) >>> 0, remark: 'IPC Service' }];

  it('SMB1 "SMB 2.???" -> wildcard -> SMB2 3.0, NTLMv2, AES-128-CCM encryption, shares over pipe WRITE/READ', async () => {
    server = await startSmokeServer(authenticator, { shares: SHARES });
    const py = await connect(server.port);
    expect(of(server.events, 'smb1-negotiate')[0]?.dialects).toEqual(['NT LM 0.12', 'SMB 2.002', 'SMB 2.???']);
    expect(of(server.events, 'negotiate')[0]?.dialect).toBe(Dialect.SMB3_0);
    expect(py.dialect).toBe(Dialect.SMB3_0);
    expect(py.shares).toEqual(SHARES.map((s) => [s.name, s.type, s.remark]));
    expect(of(server.events, 'decrypt').every((e) => e.ok && e.cipher === Cipher.AES_128_CCM)).toBe(true);
    const commands = of(server.events, 'signed-request').map((e) => e.command);
    expect(commands).toEqual(expect.arrayContaining([Command.TREE_CONNECT, Command.CREATE, Command.WRITE, Command.READ]));
    expect(of(server.events, 'rpc').map((e) => [e.ptype, e.opnum ?? null, e.ok])).toEqual([[11, null, true], [0, 15, true]]);
  });

  it.each([['SMB2_DIALECT_21', Dialect.SMB2_1], ['SMB2_DIALECT_002', Dialect.SMB2_0_2]] as const)('%s: HMAC-SHA256 signing, every request\'s signature checked', async (name, dialect) => {
    server = await startSmokeServer(authenticator, { shares: SHARES });
    const py = await connect(server.port, name);
    expect(py.dialect).toBe(dialect);
    expect(py.shares.map((s: unknown[]) => s[0])).toEqual(['data', 'IPC$']);
    const signed = of(server.events, 'signed-request');
    expect(signed.length).toBeGreaterThan(3);
    expect(signed.every((e) => e.signatureOk && !e.encrypted)).toBe(true);
  });

  it('a wrong password is STATUS_LOGON_FAILURE', async () => {
    server = await startSmokeServer(authenticator, { shares: SHARES });
    const py = await connect(server.port, undefined, 'nope');
    expect(py.error).toBe('STATUS_LOGON_FAILURE');
  });
});
