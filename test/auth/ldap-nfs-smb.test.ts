/**
 * Directory users over NFS and SMB, with real clients against the real gateway and a private slapd:
 * - NFS AUTH_SYS: libnfs sends the uid it is given (`?uid=`); the gateway maps it to the directory
 *   user whose uidNumber it is, so that user's directory groups decide the path rules.
 * - SMB: smbclient logs in with NTLMv2, verified against the directory's sambaNTPassword; a
 *   directory user without one is refused, and the log says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { dav } from '../webdav/helpers.ts';
import { startNfs, type NfsStack } from '../nfs/gateway.ts';
import { HAVE_SMBCLIENT, smbclient } from '../smb/gateway.ts';
import { haveSlapd, PEOPLE, READER_DN, READER_PW, startSlapd, SUFFIX, USERS, type Slapd } from '../helpers/slapd.ts';

const HAVE_LIBNFS = spawnSync('nfs-cat', ['--help'], { stdio: 'ignore' }).error === undefined;

class Lines extends Writable {
  text = '';
  override _write(c: Buffer, _e: string, cb: () => void): void {
    this.text += c.toString();
    cb();
  }
}

let slapd: Slapd;
let stack: NfsStack;
const log = new Lines();

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, out: `${stdout}${stderr}` });
    });
  });
}
const nfsUrl = (path: string, uid: number): string => `nfs://127.0.0.1${path}?version=4&nfsport=${stack.nfsPort}&uid=${uid}&gid=20000`;
const smb = (user: string, password: string, cmds: string, cwd?: string) =>
  smbclient(['//127.0.0.1/team', '-p', String(stack.smbPort), '-U', `${user}%${password}`, '-m', 'SMB3_11', '-c', cmds], cwd !== undefined ? { cwd } : {});

describe.skipIf(!haveSlapd())('directory users over NFS (AUTH_SYS uid) and SMB (NTLMv2 with sambaNTPassword)', () => {
  beforeAll(async () => {
    slapd = await startSlapd();
    stack = await startNfs({
      smb: true,
      log,
      config: {
        'log.level': 'info',
        'auth.throttle.maxFailures': 1000,
        'auth.ldap': { url: slapd.url, userBase: SUFFIX, bindDn: READER_DN, bindPassword: READER_PW },
      },
      shares: [
        {
          name: 'team',
          source: 'memory:',
          access: [{ users: ['*'], rights: ['read', 'write'] }],
          rules: [
            { path: '/eng', users: ['*'], deny: ['read', 'write'] },
            { path: '/eng', groups: ['engineering'], allow: ['read', 'write'] },
          ],
        },
      ],
    });
    const alice: [string, string] = ['alice', 'alice-pw'];
    expect((await dav({ port: stack.davPort }, 'MKCOL', '/team/eng', { auth: alice })).status).toBe(201);
    expect((await dav({ port: stack.davPort }, 'PUT', '/team/eng/plan.txt', { body: 'the plan\n', auth: alice })).status).toBe(201);
    expect((await dav({ port: stack.davPort }, 'PUT', '/team/open.txt', { body: 'open\n', auth: alice })).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    await slapd?.close();
  });

  it.skipIf(!HAVE_LIBNFS)('maps an AUTH_SYS uid to the directory user with that uidNumber, whose groups decide path rules', async () => {
    // alice (engineering) and carol (nested through leads) may read /eng; bob may not.
    expect((await run('nfs-cat', [nfsUrl('/team/eng/plan.txt', USERS.alice!)])).out).toBe('the plan\n');
    expect((await run('nfs-cat', [nfsUrl('/team/eng/plan.txt', USERS.carol!)])).out).toBe('the plan\n');
    const bob = await run('nfs-cat', [nfsUrl('/team/eng/plan.txt', USERS.bob!)]);
    expect(bob.out).not.toContain('the plan');
    expect(bob.out).toMatch(/ACCESS|denied|permission/i);
    expect((await run('nfs-cat', [nfsUrl('/team/open.txt', USERS.bob!)])).out).toBe('open\n');
    // A uid no one carries is the anonymous principal: no grant on this share.
    const nobody = await run('nfs-cat', [nfsUrl('/team/open.txt', 424242)]);
    expect(nobody.code).not.toBe(0);
    expect(nobody.out).not.toContain('open\n');
  });

  it.skipIf(!HAVE_SMBCLIENT)('verifies NTLMv2 against the directory NT hash, and directory groups decide path rules over SMB too', async () => {
    const work = mkdtempSync(join(tmpdir(), 'portico-ldap-smb-'));
    try {
      const carol = await smb('carol', 'carol-pw', 'get eng/plan.txt plan.txt', work);
      expect(carol.code, carol.out).toBe(0);
      expect(readFileSync(join(work, 'plan.txt'), 'utf8')).toBe('the plan\n');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    const bob = await smb('bob', 'bob-pw', 'ls; get eng/plan.txt /dev/null');
    expect(bob.out).toContain('open.txt');
    expect(bob.out).toContain('NT_STATUS_ACCESS_DENIED');
    const wrong = await smb('bob', 'wrong', 'ls');
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toContain('NT_STATUS_LOGON_FAILURE');
    // Counted with the password logins, by the source that gave the NT hash.
    const metrics = await stack.gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/portico_auth_logins_total\{source="ldap",result="ok"\} [1-9]/);
    expect(metrics).toMatch(/portico_auth_logins_total\{source="ldap",result="ntlm-failed"\} [1-9]/);
  });

  it.skipIf(!HAVE_SMBCLIENT)('refuses SMB for a directory user without an NT hash and logs what NTLM needs', async () => {
    await slapd.admin((c) =>
      c.add(`uid=gina,${PEOPLE}`, {
        objectClass: ['inetOrgPerson', 'posixAccount'],
        uid: 'gina',
        cn: 'gina',
        sn: 'gina',
        uidNumber: '20030',
        gidNumber: '20000',
        homeDirectory: '/home/gina',
        userPassword: 'gina-pw',
      }),
    );
    const r = await smb('gina', 'gina-pw', 'ls');
    expect(r.out).toContain('NT_STATUS_LOGON_FAILURE');
    expect(log.text).toContain('SMB (NTLM) login of directory user \\"gina\\" refused');
    expect(log.text).toContain('has no readable sambaNTPassword');
    // The same user logs in over WebDAV (a password login: search then bind).
    expect((await dav({ port: stack.davPort }, 'PROPFIND', '/team/', { auth: ['gina', 'gina-pw'], headers: { Depth: '0' } })).status).toBe(207);
  });
});
