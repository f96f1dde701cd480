/**
 * TREE_CONNECT's share policy in the real gateway, with smbclient and impacket: per-share
 * encryption (`shares[].smb.encrypt`: SHAREFLAG_ENCRYPT_DATA, unencrypted requests on a required
 * share refused, 2.x refused there) and guests (null sessions only where a share has
 * `guest: read`, IS_NULL, read-only, ACCESS_DENIED at a non-guest share).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';

const HAVE = await hasImpacket();

describe.skipIf(!HAVE_SMBCLIENT)('SMB share policy: per-share encryption and guests', () => {
  let stack: SmbStack;
  let work: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'portico-smb-policy-'));
    writeFileSync(join(work, 'a.bin'), Buffer.alloc(70_000, 7));
    stack = await startSmb({
      shares: [
        { name: 'enc', source: 'memory:', smb: { encrypt: 'required' } },
        { name: 'des', source: 'memory:', smb: { encrypt: 'desired' } },
        { name: 'pub', source: 'memory:', guest: 'read' },
        { name: 'pubenc', source: 'memory:', guest: 'read', smb: { encrypt: 'required' } },
      ],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const user = (): string[] => ['-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`];

  it('a required share: smbclient on 3.1.1 and 3.0 encrypts without being asked (put/get round-trip); on 2.1 it gets ACCESS_DENIED', async () => {
    for (const m of ['SMB3_11', 'SMB3_00']) {
      const r = await smbclient(['//127.0.0.1/enc', ...user(), '-m', m, '-c', `put a.bin b${m}.bin; get b${m}.bin c${m}.bin; ls`], { cwd: work });
      expect(r.code, r.out).toBe(0);
      expect(readFileSync(join(work, `c${m}.bin`)).equals(readFileSync(join(work, 'a.bin')))).toBe(true);
    }
    const old = await smbclient(['//127.0.0.1/enc', ...user(), '-m', 'SMB2_10', '-c', 'ls'], { cwd: work });
    expect(old.out).toMatch(/NT_STATUS_ACCESS_DENIED/);
    // The same client on a share without the key still works (the global default is off).
    const mem = await smbclient(['//127.0.0.1/mem', ...user(), '-m', 'SMB2_10', '-c', 'ls'], { cwd: work });
    expect(mem.code, mem.out).toBe(0);
  }, 60_000);

  it.skipIf(!HAVE)('SHAREFLAG_ENCRYPT_DATA on desired and required shares; an unencrypted request on a required tree is ACCESS_DENIED, on a desired one served', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'], preferredDialect=0x300)
c.login(inp['user'], inp['password'])
s = c.getSMBServer()
# impacket encrypts a whole 3.0 session by itself; off, so only a tree's flag decides.
s._Session['SessionFlags'] &= ~0x4
out = {}
for share in ['enc', 'des', 'mem']:
    tid = c.connectTree(share)
    out[share] = s._Session['TreeConnectTable'][tid]['EncryptData']
    s._Session['TreeConnectTable'][tid]['EncryptData'] = False
    try:
        c.listPath(share, '*')
        out[share + 'Clear'] = 'ok'
    except Exception as e:
        out[share + 'Clear'] = str(e).split('(')[0].strip()
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
    );
    expect(out.enc).toBe(true);
    expect(out.des).toBe(true);
    expect(out.mem).toBe(false);
    expect(out.encClear).toMatch(/STATUS_ACCESS_DENIED/);
    expect(out.desClear).toBe('ok');
    expect(out.memClear).toBe('ok');
  }, 40_000);

  it('guest (smbclient -N): lists and reads a guest share, cannot write there, ACCESS_DENIED at a non-guest or encryption-required share; -L shows only guest shares', async () => {
    const seed = await smbclient(['//127.0.0.1/pub', ...user(), '-c', 'put a.bin seeded.bin'], { cwd: work });
    expect(seed.code, seed.out).toBe(0);
    for (const m of ['SMB3_11', 'SMB2_10']) {
      const ls = await smbclient(['//127.0.0.1/pub', '-p', String(stack.smbPort), '-N', '-m', m, '-c', `ls; get seeded.bin g${m}.bin`], { cwd: work });
      expect(ls.code, ls.out).toBe(0);
      expect(ls.out).toContain('seeded.bin');
      expect(readFileSync(join(work, `g${m}.bin`)).equals(readFileSync(join(work, 'a.bin')))).toBe(true);
    }
    const put = await smbclient(['//127.0.0.1/pub', '-p', String(stack.smbPort), '-N', '-c', 'put a.bin guest.bin'], { cwd: work });
    expect(put.out).toMatch(/NT_STATUS_ACCESS_DENIED/);
    const mem = await smbclient(['//127.0.0.1/mem', '-p', String(stack.smbPort), '-N', '-c', 'ls'], { cwd: work });
    expect(mem.out).toMatch(/NT_STATUS_ACCESS_DENIED/);
    const enc = await smbclient(['//127.0.0.1/pubenc', '-p', String(stack.smbPort), '-N', '-c', 'ls'], { cwd: work });
    expect(enc.out).toMatch(/NT_STATUS_ACCESS_DENIED/);
    const nothere = await smbclient(['//127.0.0.1/nothere', '-p', String(stack.smbPort), '-N', '-c', 'ls'], { cwd: work });
    expect(nothere.out).toMatch(/NT_STATUS_BAD_NETWORK_NAME/);
    const list = await smbclient(['-L', '127.0.0.1', '-p', String(stack.smbPort), '-N'], { cwd: work });
    expect(list.out).toMatch(/\bpub\b/);
    expect(list.out).not.toMatch(/\bmem\b/);
  }, 60_000);

  it.skipIf(!HAVE)('a null session is answered SESSION_FLAG_IS_NULL and gets only read access', async () => {
    const out = await runPython(
      `
from impacket.smbconnection import SMBConnection
from impacket.smb3structs import FILE_OVERWRITE_IF, FILE_READ_DATA
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login('', '')
s = c.getSMBServer()
out = {'flags': s._Session['SessionFlags']}
tid = c.connectTree('pub')
out['ls'] = sorted(f.get_longname() for f in c.listPath('pub', '*'))
try:
    c.createFile(tid, 'x.txt', creationDisposition=FILE_OVERWRITE_IF)
    out['create'] = 'ok'
except Exception as e:
    out['create'] = str(e).split('(')[0].strip()
try:
    c.connectTree('mem')
    out['mem'] = 'ok'
except Exception as e:
    out['mem'] = str(e).split('(')[0].strip()
`,
      { smb: stack.smbPort },
    );
    expect(out.flags).toBe(0x2);
    expect(out.ls).toContain('seeded.bin');
    expect(out.create).toMatch(/STATUS_ACCESS_DENIED/);
    expect(out.mem).toMatch(/STATUS_ACCESS_DENIED/);
  }, 40_000);
});

describe.skipIf(!HAVE_SMBCLIENT)('SMB guests without a guest share', () => {
  it('an anonymous login is LOGON_FAILURE when no SMB share allows guests', async () => {
    const stack = await startSmb();
    try {
      const r = await smbclient(['//127.0.0.1/mem', '-p', String(stack.smbPort), '-N', '-c', 'ls']);
      expect(r.out).toMatch(/NT_STATUS_LOGON_FAILURE|NT_STATUS_ACCESS_DENIED/);
      expect(r.code).not.toBe(0);
    } finally {
      await stack.stop();
    }
  }, 40_000);
});
