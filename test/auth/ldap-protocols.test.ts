/**
 * Directory users through the whole stack: the gateway built from a config with `auth.ldap`
 * (against a private slapd, test/helpers/slapd.ts), driven by curl over WebDAV, and the
 * `portico auth test` command run as a child process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, runCli } from '../cli/helpers.ts';
import { startDav, type DavStack } from '../webdav/helpers.ts';
import { freePort, haveSlapd, PEOPLE, READER_DN, READER_PW, startSlapd, SUFFIX, USERS, type Slapd } from '../helpers/slapd.ts';

const haveCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
const TTL = 1500;

let slapd: Slapd;
let dav: DavStack;
let adminPort: number;

/** GET /ready on the admin endpoint with curl: status and body. */
function ready(): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-s', '--max-time', '20', '-w', '\n%{http_code}', `http://127.0.0.1:${adminPort}/ready`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', () => {
      const i = out.lastIndexOf('\n');
      resolve({ status: Number(out.slice(i + 1)), body: out.slice(0, i) });
    });
  });
}

/** curl as the client (a child process: the server runs in this one, so never spawnSync): the HTTP status. */
function curl(user: string, password: string, method: string, path: string, body?: string): Promise<number> {
  const args = ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', '-u', `${user}:${password}`, '-X', method];
  if (body !== undefined) args.push('--data-binary', body);
  if (method === 'PROPFIND') args.push('-H', 'Depth: 1');
  return new Promise((resolve, reject) => {
    const child = spawn('curl', [...args, `${dav.origin}${path}`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(Number(out)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!haveSlapd() || !haveCurl)('directory users over WebDAV and in `portico auth test`', () => {
  beforeAll(async () => {
    slapd = await startSlapd();
    adminPort = await freePort();
    dav = await startDav({
      config: {
        // Every failure here comes from 127.0.0.1: keep the address key from locking the later tests out.
        'auth.throttle.maxFailures': 1000,
        'admin.port': adminPort,
        'admin.listen': '127.0.0.1',
        'auth.ldap': { url: slapd.url, startTls: true, tls: { ca: slapd.caFile }, userBase: SUFFIX, bindDn: READER_DN, bindPassword: READER_PW, cacheTtlMs: TTL, retryMs: 200, timeoutMs: 20_000 },
      },
      shares: [
        {
          name: 'team',
          source: 'memory:',
          access: [{ users: ['*'], rights: ['read', 'write'] }],
          rules: [
            // Only engineering (alice directly, carol through the nested `leads`) may enter /eng.
            { path: '/eng', users: ['*'], deny: ['read', 'write'] },
            { path: '/eng', groups: ['engineering'], allow: ['read', 'write'] },
          ],
        },
        // Only the finance group (groupOfUniqueNames) has this share at all.
        { name: 'fin', source: 'memory:', access: [{ groups: ['finance'], rights: ['read', 'write'] }] },
        // A directory group named with spaces and parentheses, as directories name them ("Domain Users").
        { name: 'sales', source: 'memory:', access: [{ groups: ['Sales Team (EU)'], rights: ['read', 'write'] }] },
      ],
    });
    // A directory is configured: no first-run admin was made although no local user existed.
    expect(dav.gateway.users!.count()).toBe(0);
    await dav.addUser('localuser', 'local-pw');
  }, 60_000);
  afterAll(async () => {
    await dav?.stop();
    await slapd?.close();
  });

  it('logs directory users in over WebDAV Basic, and their directory groups decide share grants and path rules', async () => {
    expect(await curl('alice', 'alice-pw', 'MKCOL', '/team/eng')).toBe(201);
    expect(await curl('alice', 'alice-pw', 'PUT', '/team/eng/plan.txt', 'plan')).toBe(201);
    // carol: nested membership (leads ⊂ engineering).
    expect(await curl('carol', 'carol-pw', 'GET', '/team/eng/plan.txt')).toBe(200);
    // bob is not in engineering: the path rule denies him.
    expect(await curl('bob', 'bob-pw', 'GET', '/team/eng/plan.txt')).toBe(403);
    expect(await curl('bob', 'bob-pw', 'PUT', '/team/bob.txt', 'b')).toBe(201);
    // The finance share: bob (finance) yes; alice is not granted anything there.
    expect(await curl('bob', 'bob-pw', 'PUT', '/fin/q4.txt', 'q4')).toBe(201);
    expect([403, 404]).toContain(await curl('alice', 'alice-pw', 'GET', '/fin/q4.txt'));
    // The group named with spaces: bob is in it, alice is not.
    expect(await curl('bob', 'bob-pw', 'PUT', '/sales/lead.txt', 'lead')).toBe(201);
    expect([403, 404]).toContain(await curl('alice', 'alice-pw', 'GET', '/sales/lead.txt'));
    // Wrong password, unknown user, injection attempt, locked account: 401.
    expect(await curl('alice', 'nope', 'GET', '/team/')).toBe(401);
    expect(await curl('nobody', 'x', 'GET', '/team/')).toBe(401);
    expect(await curl('*)(uid=*', 'alice-pw', 'GET', '/team/')).toBe(401);
    expect(await curl('dave', 'dave-pw', 'GET', '/team/')).toBe(401);
    // Local users are unaffected.
    expect(await curl('localuser', 'local-pw', 'PROPFIND', '/team/')).toBe(207);
  });

  it('forgets a directory user removed while logged in once the directory cache TTL ends (the WebDAV cache does not outlive it)', async () => {
    await slapd.admin((c) =>
      c.add(`uid=frank,${PEOPLE}`, {
        objectClass: ['inetOrgPerson', 'posixAccount'],
        uid: 'frank',
        cn: 'frank',
        sn: 'frank',
        uidNumber: '20020',
        gidNumber: '20000',
        homeDirectory: '/home/frank',
        userPassword: 'frank-pw',
      }),
    );
    expect(await curl('frank', 'frank-pw', 'PROPFIND', '/team/')).toBe(207);
    await slapd.admin((c) => c.del(`uid=frank,${PEOPLE}`));
    // Still cached (WebDAV's own cache keeps logins 60 s by default).
    expect(await curl('frank', 'frank-pw', 'PROPFIND', '/team/')).toBe(207);
    await sleep(TTL + 200);
    expect(await curl('frank', 'frank-pw', 'PROPFIND', '/team/')).toBe(401);
  });

  it('keeps local users working while slapd is stopped, answers 503 for directory logins, reports it in /ready, and recovers', async () => {
    await slapd.stop();
    try {
      expect(await curl('localuser', 'local-pw', 'PROPFIND', '/team/')).toBe(207);
      // An uncached directory login: the directory cannot say yes or no. At once, not after
      // timeoutMs (20 s) on a pooled StartTLS connection that died with the server.
      const t0 = Date.now();
      expect(await curl('bob', 'bob-pw-not-cached', 'PROPFIND', '/team/')).toBe(503);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const r = await ready();
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).notReady).toContainEqual(expect.objectContaining({ kind: 'directory', name: slapd.url }));
    } finally {
      await slapd.start();
    }
    await sleep(1700); // past the circuit breaker's retry window
    expect(await curl('bob', 'bob-pw', 'PROPFIND', '/team/')).toBe(207);
    expect(await ready()).toMatchObject({ status: 200 });
  }, 30_000);

  it('`portico auth test` prints the resolved principal, or the precise reason of a failure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-authtest-'));
    try {
      const cfg = join(dir, 'portico.yaml');
      const write = (url: string | string[]): void =>
        writeFileSync(
          cfg,
          `server:\n  stateDir: ${join(dir, 'state')}\nauth:\n  ldap:\n    url: ${JSON.stringify(url)}\n    tls: { ca: ${slapd.caFile} }\n    userBase: "${SUFFIX}"\n    bindDn: "${READER_DN}"\n    bindPasswordFile: pw.txt\n    retryMs: 60000\nshares: [{ name: d, source: "memory:" }]\n`,
        );
      writeFileSync(join(dir, 'pw.txt'), `${READER_PW}\n`);
      write(slapd.ldapsUrl);
      const run = (user: string, password: string) => runCli(['auth', 'test', user, '--password-stdin', '-c', cfg], { input: `${password}\n`, env: cleanEnv() });

      const ok = await run('alice', 'alice-pw');
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('ok: login as "alice" accepted');
      expect(ok.stdout).toMatch(/source:\s+ldap/);
      expect(ok.stdout).toMatch(new RegExp(`dn:\\s+uid=alice,${PEOPLE}`));
      expect(ok.stdout).toMatch(new RegExp(`uid:\\s+${USERS.alice}\\n`));
      expect(ok.stdout).toMatch(/gid:\s+20000\n/);
      expect(ok.stdout).toMatch(/groups:\s+developers, engineering, staff\n/);

      const bad = await run('alice', 'wrong');
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/^failed: bad-password \(ldap\): the directory refused the password of uid=alice/);
      const unknown = await run('nobody', 'x');
      expect(unknown.stdout).toMatch(/^failed: no-such-user \(ldap\): no entry under dc=example,dc=org matches \(uid=nobody\)/);
      const twin = await run('twin', 'twin-pw');
      expect(twin.stdout).toMatch(/^failed: ambiguous \(ldap\): the user filter \(uid=twin\) matches several entries/);
      // A local user answers first (order [local, ldap]), with its local groups; a wrong local password says so.
      const added = await runCli(['user', 'add', 'ops', '--groups', 'staff,oncall', '--password-stdin', '-c', cfg], { input: 'ops-pw\n', env: cleanEnv() });
      expect(added.code, added.stderr).toBe(0);
      const local = await run('ops', 'ops-pw');
      expect(local.code, local.stderr).toBe(0);
      expect(local.stdout).toMatch(/source:\s+local\n/);
      expect(local.stdout).toMatch(/groups:\s+oncall, staff\n/);
      expect(local.stdout).not.toContain('dn:');
      expect((await run('ops', 'nope')).stdout).toMatch(/^failed: local-bad-password \(local\): wrong password for local user "ops"/);

      // Unreachable: both URLs named with their errors.
      write(['ldap://127.0.0.1:1', 'ldap://127.0.0.1:9']);
      const down = await run('alice', 'alice-pw');
      expect(down.code).toBe(1);
      expect(down.stdout).toMatch(/^failed: unreachable \(ldap\): directory unreachable: ldap:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
      expect(down.stdout).toContain('ldap://127.0.0.1:9: down (');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
