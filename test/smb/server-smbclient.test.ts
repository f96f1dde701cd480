/**
 * The SMB server (protocols/smb/server/) in the real gateway, driven by smbclient (Samba 4.17):
 * every dialect with signing and with encryption through ls/put/get/mkdir/rename/rm/rmdir and
 * deltree, `-L` over srvsvc, a wrong password, a file put over SMB read back over WebDAV and the
 * session and one PUT over WebDAV read back over SMB, and a deny-write open refusing a WebDAV PUT.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb, type SmbStack } from './gateway.ts';
import { dav } from '../webdav/helpers.ts';

const AUTH: [string, string] = [ALICE.name, ALICE.password];

describe.skipIf(!HAVE_SMBCLIENT)('SMB server with smbclient', () => {
  let stack: SmbStack;
  let work: string;
  const client = (share: string, extra: string[], cmds: string) =>
    smbclient([`//127.0.0.1/${share}`, '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, ...extra, '-c', cmds], { cwd: work });

  beforeAll(async () => {
    stack = await startSmb();
    work = mkdtempSync(join(tmpdir(), 'portico-smbwork-'));
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const workload = 'ls; put a b; get b c; mkdir d; ls; rename b e; rm e; rmdir d; ls';
  for (const dialect of ['SMB2_02', 'SMB2_10', 'SMB3_00', 'SMB3_02', 'SMB3_11']) {
    const protections = dialect.startsWith('SMB3') ? ['sign', 'encrypt'] : ['sign'];
    for (const protection of protections) {
      it(`${dialect} --client-protection=${protection}: ls, put, get, mkdir, rename, rm, rmdir`, async () => {
        const body = randomBytes(200_000);
        writeFileSync(join(work, 'a'), body);
        rmSync(join(work, 'c'), { force: true });
        const r = await client('mem', ['-m', dialect, `--client-protection=${protection}`], workload);
        expect(r.out).not.toMatch(/NT_STATUS_/);
        expect(r.code).toBe(0);
        expect(readFileSync(join(work, 'c')).equals(body)).toBe(true);
        // The last ls shows the share empty again: b renamed to e and removed, d removed.
        const lists = r.out.split('blocks available');
        expect(lists[1]).toMatch(/\n\s+b\s+A?N?\s+200000 /);
        expect(lists[1]).toMatch(/\n\s+d\s+D\s/);
        expect(lists[2]).not.toMatch(/\n\s+[bde]\s/);
      }, 40_000);
    }
  }

  for (const protection of ['sign', 'encrypt']) {
    it(`a 64 MiB put and get on SMB3_11 (${protection}) round-trip byte for byte`, async () => {
      const body = randomBytes(64 * 1024 * 1024);
      writeFileSync(join(work, 'big'), body);
      rmSync(join(work, 'big2'), { force: true });
      const r = await client('disk', ['-m', 'SMB3_11', `--client-protection=${protection}`], 'put big big; get big big2; rm big');
      expect(r.out).not.toMatch(/NT_STATUS_/);
      expect(readFileSync(join(work, 'big2')).equals(body)).toBe(true);
    }, 120_000);
  }

  it('deltree removes a tree made over SMB; a missing file is NT_STATUS_OBJECT_NAME_NOT_FOUND', async () => {
    writeFileSync(join(work, 'a'), 'x');
    const r = await client('disk', ['-m', 'SMB3_11'], 'mkdir t; mkdir t\\u; put a t\\u\\f; deltree t; ls t; get nothere z');
    expect(r.out).toMatch(/NT_STATUS_(NO_SUCH_FILE|OBJECT_NAME_NOT_FOUND) listing \\t/);
    expect(r.out).toMatch(/NT_STATUS_OBJECT_NAME_NOT_FOUND opening remote file \\nothere/);
  }, 40_000);

  it('allinfo, setmode and utimes: QUERY_INFO All and Stream, SET_INFO Basic (attributes, creation time)', async () => {
    writeFileSync(join(work, 'a'), 'attrs');
    const r = await client('mem', ['-m', 'SMB3_11'], 'put a at.txt; setmode at.txt +h; utimes at.txt 2020:01:01-00:00:00 -1 -1 -1; allinfo at.txt; ls at.txt');
    expect(r.out).toMatch(/create_time:\s+Wed Jan  1 00:00:00 2020 UTC/);
    expect(r.out).toMatch(/attributes: H/);
    expect(r.out).toMatch(/stream: \[::\$DATA\], 5 bytes/);
    expect(r.out).toMatch(/\n\s+at\.txt\s+AH\s+5 /); // ARCHIVE from its creation, as on NTFS
  }, 30_000);

  it('the server GUID is kept in the state directory', () => {
    expect(readFileSync(join(stack.tmp, 'state', 'smb-server-guid')).equals(stack.smb.server!.serverGuid)).toBe(true);
  });

  it('-L lists the shares exposed to smb and IPC$', async () => {
    const r = await smbclient(['-L', '127.0.0.1', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-m', 'SMB3_11']);
    expect(r.out).toMatch(/\n\s+mem\s+Disk/);
    expect(r.out).toMatch(/\n\s+disk\s+Disk/);
    expect(r.out).toMatch(/\n\s+IPC\$\s+IPC/);
  }, 30_000);

  it('the SMB1 multi-protocol start (client min protocol=NT1) is led to SMB2 and lists', async () => {
    const r = await client('mem', ['--option=client min protocol=NT1'], 'ls');
    expect(r.out).not.toMatch(/NT_STATUS_/);
    expect(r.out).toMatch(/blocks available/);
  }, 30_000);

  it('a wrong password is NT_STATUS_LOGON_FAILURE', async () => {
    const r = await smbclient(['//127.0.0.1/mem', '-p', String(stack.smbPort), '-U', `${ALICE.name}%wrong`, '-m', 'SMB3_11', '-c', 'ls']);
    expect(r.out).toMatch(/NT_STATUS_LOGON_FAILURE/);
    expect(r.code).not.toBe(0);
  }, 30_000);

  it('a share not exposed to smb is NT_STATUS_BAD_NETWORK_NAME', async () => {
    const r = await client('nosuch', ['-m', 'SMB3_11'], 'ls');
    expect(r.out).toMatch(/NT_STATUS_BAD_NETWORK_NAME/);
  }, 30_000);

  it('cross-protocol: put over SMB reads back over WebDAV and the session; a WebDAV PUT reads back over SMB', async () => {
    const body = randomBytes(70_000);
    writeFileSync(join(work, 'x.bin'), body);
    const r = await client('disk', ['-m', 'SMB3_11', '--client-protection=encrypt'], 'put x.bin cross.bin');
    expect(r.code).toBe(0);
    const got = await dav({ port: stack.davPort }, 'GET', '/disk/cross.bin', { auth: AUTH });
    expect(got.status).toBe(200);
    expect(got.body.equals(body)).toBe(true);
    const s = stack.gateway.sessions!.openSession({ principal: await stack.gateway.sessions!.authenticate(ALICE.name, ALICE.password, { protocol: 'smb', clientAddress: 'test' }), protocol: 'smb', clientAddress: 'test' });
    const h = await s.open('disk', '/cross.bin', { access: { read: true, write: false, delete: false }, owner: 'test' });
    expect((await s.read(h, 0, body.length + 10)).equals(body)).toBe(true);
    await s.end();

    const other = randomBytes(5000);
    expect((await dav({ port: stack.davPort }, 'PUT', '/disk/fromdav.bin', { body: other, auth: AUTH })).status).toBe(201);
    rmSync(join(work, 'back.bin'), { force: true });
    const r2 = await client('disk', ['-m', 'SMB3_11'], 'get fromdav.bin back.bin');
    expect(r2.code).toBe(0);
    expect(readFileSync(join(work, 'back.bin')).equals(other)).toBe(true);
  }, 40_000);
});

describe.skipIf(!HAVE_SMBCLIENT)('SMB server with protocols.smb.encrypt: required', () => {
  let stack: SmbStack;
  let work: string;
  beforeAll(async () => {
    stack = await startSmb({ config: { 'protocols.smb.encrypt': 'required' } });
    work = mkdtempSync(join(tmpdir(), 'portico-smbwork-'));
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const run = (dialect: string, cmds: string) =>
    smbclient(['//127.0.0.1/mem', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-m', dialect, '-c', cmds], { cwd: work });

  it('an SMB3 client is told to encrypt (SESSION_FLAG_ENCRYPT_DATA) and works without asking', async () => {
    writeFileSync(join(work, 'a'), 'sealed');
    for (const dialect of ['SMB3_00', 'SMB3_11']) {
      rmSync(join(work, 'c'), { force: true });
      const r = await run(dialect, 'put a b; get b c; rm b');
      expect(r.out).not.toMatch(/NT_STATUS_/);
      expect(readFileSync(join(work, 'c'), 'utf8')).toBe('sealed');
    }
  }, 40_000);

  it('a 2.x client, which cannot encrypt, gets no session (NT_STATUS_ACCESS_DENIED)', async () => {
    const r = await run('SMB2_10', 'ls');
    expect(r.out).toMatch(/NT_STATUS_ACCESS_DENIED/);
    expect(r.code).not.toBe(0);
  }, 30_000);
});
