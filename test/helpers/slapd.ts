/**
 * A private OpenLDAP slapd (Debian's `slapd` package) for the directory tests: its own slapd.conf,
 * mdb database and TLS material in a temp directory, listening on 127.0.0.1 on free ports (ldap://
 * with StartTLS, and ldaps://), loaded with a small DIT by slapadd before it starts, stopped by PID.
 *
 * The DIT (suffix dc=example,dc=org, password of every user = `<name>-pw`):
 * - ou=people: alice (uid 20001, groupOfNames engineering, posixGroup developers), bob (20002,
 *   groupOfUniqueNames finance, and groupOfNames "Sales Team (EU)": a name with spaces and
 *   parentheses, as directory groups are named), carol (20003, in `leads`, which is itself a member of engineering:
 *   nested), dave (20004, locked by ppolicy: pwdAccountLockedTime), all with primary gid 20000
 *   (posixGroup staff, which lists no memberUid), and two entries whose `uid` is
 *   both `twin` (the ambiguous filter). Each has posixAccount and sambaNTPassword (the Samba
 *   schema's attribute, declared here with Samba's OID since Debian's slapd does not ship it).
 * - ou=ad: an Active Directory-shaped user (hank / hank@example.org, objectSid RID 1105,
 *   primaryGroupID 513, no uidNumber) in group ad-engineers, for the `activeDirectory` preset.
 * - `*)(uid=*` style names are not in it: injection attempts must find nothing.
 * - cn=reader,dc=example,dc=org: the service account (password reader-pw), which may read
 *   everything but the userPassword attribute, like a real deployment's search account.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { ntHash } from '../../src/auth/md4.ts';

export const SLAPD = '/usr/sbin/slapd';
export const SLAPADD = '/usr/sbin/slapadd';
export const SUFFIX = 'dc=example,dc=org';
export const ROOT_DN = `cn=admin,${SUFFIX}`;
export const ROOT_PW = 'admin-pw';
export const READER_DN = `cn=reader,${SUFFIX}`;
export const READER_PW = 'reader-pw';
export const PEOPLE = `ou=people,${SUFFIX}`;
export const GROUPS = `ou=groups,${SUFFIX}`;

export function haveSlapd(): boolean {
  return spawnSync(SLAPD, ['-VV'], { stdio: 'ignore' }).status !== null && spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function run(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

/** Users of the test DIT: name → uidNumber. */
export const USERS: Record<string, number> = { alice: 20001, bob: 20002, carol: 20003, dave: 20004 };

function person(name: string, uid: number, extra = ''): string {
  return `dn: uid=${name},${PEOPLE}
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: sambaSamAccount
uid: ${name}
cn: ${name}
sn: ${name}
displayName: ${name[0]!.toUpperCase()}${name.slice(1)} Example
uidNumber: ${uid}
gidNumber: 20000
homeDirectory: /home/${name}
userPassword: ${name}-pw
sambaNTPassword: ${ntHash(`${name}-pw`).toString('hex').toUpperCase()}
${extra}`;
}

export function testDit(): string {
  const entries = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n`,
    `dn: ${READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: ${READER_PW}\n`,
    `dn: cn=default-policy,${SUFFIX}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: default-policy\npwdAttribute: userPassword\npwdLockout: TRUE\n`,
    `dn: ${PEOPLE}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ${GROUPS}\nobjectClass: organizationalUnit\nou: groups\n`,
    person('alice', USERS.alice!),
    person('bob', USERS.bob!),
    person('carol', USERS.carol!),
    // Locked for good by the password policy overlay: binds fail though the password is right.
    person('dave', USERS.dave!, 'pwdAccountLockedTime: 000001010000Z\n'),
    // Two entries with uid=twin: (uid={user}) matches both.
    person('twin', 20005).replace(`dn: uid=twin,${PEOPLE}`, `dn: cn=twin-a,${PEOPLE}`).replace('cn: twin', 'cn: twin-a'),
    person('twin', 20006).replace(`dn: uid=twin,${PEOPLE}`, `dn: cn=twin-b,${PEOPLE}`).replace('cn: twin', 'cn: twin-b'),
    `dn: cn=engineering,${GROUPS}\nobjectClass: groupOfNames\ncn: engineering\nmember: uid=alice,${PEOPLE}\nmember: cn=leads,${GROUPS}\n`,
    `dn: cn=leads,${GROUPS}\nobjectClass: groupOfNames\ncn: leads\nmember: uid=carol,${PEOPLE}\n`,
    `dn: cn=finance,${GROUPS}\nobjectClass: groupOfUniqueNames\ncn: finance\nuniqueMember: uid=bob,${PEOPLE}\n`,
    `dn: cn=Sales Team (EU),${GROUPS}\nobjectClass: groupOfNames\ncn: Sales Team (EU)\nmember: uid=bob,${PEOPLE}\n`,
    `dn: cn=developers,${GROUPS}\nobjectClass: posixGroup\ncn: developers\ngidNumber: 20100\nmemberUid: alice\n`,
    // Every test user's primary group (gidNumber 20000), naming no one: members by gidNumber.
    `dn: cn=staff,${GROUPS}\nobjectClass: posixGroup\ncn: staff\ngidNumber: 20000\n`,
    ...adEntries(),
  ];
  return entries.join('\n');
}

/** An objectSid as AD stores it: revision, count, 48-bit authority (big-endian), sub-authorities (little-endian). */
export function sidBytes(sid: string): Buffer {
  const [, rev, auth, ...subs] = sid.split('-');
  const b = Buffer.alloc(8 + 4 * subs.length);
  b[0] = Number(rev);
  b[1] = subs.length;
  b.writeUIntBE(Number(auth), 2, 6);
  subs.forEach((x, i) => b.writeUInt32LE(Number(x), 8 + 4 * i));
  return b;
}

/** Active Directory-shaped entries (ou=ad): sAMAccountName, userPrincipalName, objectSid, primaryGroupID, no uidNumber. */
export const AD_BASE = `ou=ad,${SUFFIX}`;
export const AD_SID = 'S-1-5-21-1004336348-1177238915-682003330';

function adEntries(): string[] {
  return [
    `dn: ${AD_BASE}\nobjectClass: organizationalUnit\nou: ad\n`,
    `dn: cn=Hank Hill,${AD_BASE}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: Hank Hill\nsn: Hill\nsAMAccountName: hank\nuserPrincipalName: hank@example.org\n` +
      `objectSid:: ${sidBytes(`${AD_SID}-1105`).toString('base64')}\nprimaryGroupID: 513\nuserPassword: hank-pw\n`,
    `dn: cn=AD Engineers,${AD_BASE}\nobjectClass: groupOfNames\nobjectClass: group\ncn: ad-engineers\ncn: AD Engineers\nsAMAccountName: ad-engineers\nmember: cn=Hank Hill,${AD_BASE}\n`,
  ];
}

// The few Active Directory attributes the AD preset reads, with Microsoft's OIDs (Debian's msuser.schema
// needs the whole AD object model). `user`/`group` are auxiliary here so they sit on standard classes.
const AD_SCHEMA = `
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.146 NAME 'objectSid' EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.98 NAME 'primaryGroupID' EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP top AUXILIARY MAY ( sAMAccountName $ userPrincipalName $ objectSid $ primaryGroupID ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top AUXILIARY MAY ( sAMAccountName $ objectSid ) )
`;

const SAMBA_SCHEMA = `
attributetype ( 1.3.6.1.4.1.7165.2.1.25 NAME 'sambaNTPassword'
  DESC 'MD4 hash of the unicode password'
  EQUALITY caseIgnoreIA5Match
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{32} SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.7165.2.2.6 NAME 'sambaSamAccount' SUP top AUXILIARY
  MUST ( uid ) MAY ( sambaNTPassword ) )
`;

export interface Slapd {
  dir: string;
  /** ldap:// (plain, StartTLS offered). */
  url: string;
  /** ldaps:// */
  ldapsUrl: string;
  port: number;
  ldapsPort: number;
  /** PEM file of the private CA that signed the server's certificate. */
  caFile: string;
  pid(): number | undefined;
  stop(): Promise<void>;
  /** Starts again on the same ports with the same database (after stop()). */
  start(): Promise<void>;
  /** Runs fn with a client bound as the rootDN (to change the DIT during a test). */
  admin<T>(fn: (c: Client) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function startSlapd(): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-slapd-'));
  const db = join(dir, 'db');
  run('mkdir', ['-p', db]);
  // A private CA and a server certificate for 127.0.0.1 / localhost.
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server.key');
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=Portico test CA']);
  run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', join(dir, 'server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('openssl', ['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', join(dir, 'ext.cnf')]);
  writeFileSync(join(dir, 'samba-min.schema'), SAMBA_SCHEMA);
  writeFileSync(join(dir, 'ad-min.schema'), AD_SCHEMA);
  const conf = join(dir, 'slapd.conf');
  writeFileSync(
    conf,
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include ${join(dir, 'samba-min.schema')}
include ${join(dir, 'ad-min.schema')}
pidfile ${join(dir, 'slapd.pid')}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
TLSCACertificateFile ${ca}
TLSCertificateFile ${cert}
TLSCertificateKeyFile ${key}
sizelimit 500
database mdb
suffix "${SUFFIX}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PW}
directory ${db}
maxsize 104857600
index objectClass eq
index uid,memberUid eq
index uidNumber eq
index member,uniqueMember eq
overlay ppolicy
ppolicy_default "cn=default-policy,${SUFFIX}"
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="${READER_DN}" read by self read by * none
`,
  );
  writeFileSync(join(dir, 'dit.ldif'), testDit());
  run(SLAPADD, ['-f', conf, '-l', join(dir, 'dit.ldif')]);
  let [port, ldapsPort] = [await freePort(), await freePort()];
  let url = `ldap://127.0.0.1:${port}`;
  let ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
  let child: ChildProcess | undefined;
  let log = '';

  const start = async (): Promise<void> => {
    // -d 0: stay in the foreground (the PID we hold is slapd's own) without debug output.
    child = spawn(SLAPD, ['-d', '0', '-f', conf, '-h', `${url}/ ${ldapsUrl}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (b: Buffer) => {
      log = (log + b.toString()).slice(-4000);
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`slapd exited (${child.exitCode}): ${log}`);
      const c = new Client({ url, connectTimeout: 500, timeout: 1000 });
      try {
        await c.bind(ROOT_DN, ROOT_PW);
        await c.unbind();
        return;
      } catch {
        await c.unbind().catch(() => undefined);
      }
      if (Date.now() > deadline) throw new Error(`slapd did not answer on ${url}: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    process.kill(c.pid, 'SIGTERM');
    const t = setTimeout(() => c.pid !== undefined && c.exitCode === null && process.kill(c.pid, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };

  // A free port can be taken by another process before slapd binds it: new ports, up to 3 tries.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (e) {
      await stop();
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      [port, ldapsPort] = [await freePort(), await freePort()];
      url = `ldap://127.0.0.1:${port}`;
      ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
    }
  }
  return {
    dir,
    url,
    ldapsUrl,
    port,
    ldapsPort,
    caFile: ca,
    pid: () => child?.pid,
    stop,
    start,
    admin: async (fn) => {
      const c = new Client({ url, timeout: 5000 });
      try {
        await c.bind(ROOT_DN, ROOT_PW);
        return await fn(c);
      } finally {
        await c.unbind().catch(() => undefined);
      }
    },
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
