/**
 * Login cost: local users against directory users (issue 14), in one run against a private slapd
 * (test/helpers/slapd.ts, Debian's `slapd`), on 127.0.0.1.
 *
 *   node bench/auth-bench.ts              (npm run bench:auth)
 *   BENCH_QUICK=1 node bench/auth-bench.ts
 *
 * Figures:
 * - local login: bcrypt at the deployed cost (auth.bcryptRounds default 12), wall ms and CPU ms of
 *   this process per login (bcrypt runs on libuv's pool: process.cpuUsage counts every thread);
 * - directory first login (cache off): search + bind + group search (after a rebind as the service), wall latency (median, p90),
 *   CPU µs per login of this process and of slapd (/proc/PID/stat);
 * - directory cached login at the authenticator (the TTL cache: a salted SHA-256 and an LRU get);
 * - a protocol's cached login, as WebDAV does it on every request (BasicAuthCache hit), for a local
 *   and a directory principal alternately in rounds: CPU ns per hit and their ratio. Aim: cached
 *   directory logins cost no more than cached local logins (ratio ~1.0; the directory principal
 *   adds one `validUntil` comparison).
 * Load averages are printed before and after: the machine is shared and wall figures move with it;
 * CPU per operation moves much less.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BasicAuthCache } from '../protocols/webdav/auth.ts';
import { DirectoryAuthenticator } from '../src/auth/ldap-authenticator.ts';
import { ldapSchema, resolveLdapSettings } from '../src/auth/ldap-config.ts';
import { LocalUserStore } from '../src/auth/local-users.ts';
import { Throttle } from '../src/auth/throttle.ts';
import type { SessionManager } from '../src/session/session-manager.ts';
import { MetadataStore } from '../src/store/metadata-store.ts';
import { haveSlapd, READER_DN, READER_PW, startSlapd, SUFFIX } from '../test/helpers/slapd.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const N_LOCAL = QUICK ? 3 : 8;
const N_FIRST = QUICK ? 50 : 300;
const N_CACHED = QUICK ? 20_000 : 200_000;
const N_HITS = QUICK ? 50_000 : 500_000;
const ROUNDS = 5;
const CTX = { protocol: 'bench', clientAddress: '127.0.0.1' };

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
function procCpuUs(pid: number): number {
  // Fields 14 and 15 (utime, stime) in clock ticks; the name in field 2 may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

if (!haveSlapd()) {
  process.stdout.write('auth bench: slapd is not installed (apt-get install slapd); nothing measured\n');
  process.exit(0);
}

process.stdout.write(`auth bench${QUICK ? ' (quick)' : ''}: load average at start ${load()}\n`);
const slapd = await startSlapd();
const dir = mkdtempSync(join(tmpdir(), 'portico-authbench-'));
const store = MetadataStore.open(dir);
try {
  const users = new LocalUserStore(store, { secret: 'bench-secret-bench-secret-bench-secret', bcryptRounds: 12 });
  await users.addUser({ name: 'localuser', password: 'local-pw' });
  const throttle = (): Throttle => new Throttle({ maxFailures: 1_000_000, windowMs: 1000, lockoutMs: 1000, maxLockoutMs: 1000 });
  const make = (cacheTtlMs: number): DirectoryAuthenticator =>
    new DirectoryAuthenticator({
      users,
      throttle: throttle(),
      settings: resolveLdapSettings(ldapSchema.parse({ url: slapd.url, userBase: SUFFIX, bindDn: READER_DN, bindPassword: READER_PW, cacheTtlMs, poolSize: 1 })),
    });

  // Local login (bcrypt 12).
  const uncached = make(0);
  await uncached.login('localuser', 'local-pw', CTX);
  let c0 = cpuUs();
  const localMs: number[] = [];
  for (let i = 0; i < N_LOCAL; i++) {
    const t = performance.now();
    await uncached.login('localuser', 'local-pw', CTX);
    localMs.push(performance.now() - t);
  }
  const localCpu = (cpuUs() - c0) / N_LOCAL;
  process.stdout.write(`local login (bcrypt 12), ${N_LOCAL}x: median ${median(localMs).toFixed(1)} ms wall, ${(localCpu / 1000).toFixed(1)} ms CPU per login\n`);

  // Directory first login: search, bind, group search (one pooled connection, kept open).
  await uncached.login('alice', 'alice-pw', CTX);
  const pid = slapd.pid()!;
  c0 = cpuUs();
  let s0 = procCpuUs(pid);
  const firstMs: number[] = [];
  for (let i = 0; i < N_FIRST; i++) {
    const t = performance.now();
    await uncached.login('alice', 'alice-pw', CTX);
    firstMs.push(performance.now() - t);
  }
  const firstCpu = (cpuUs() - c0) / N_FIRST;
  const slapdCpu = (procCpuUs(pid) - s0) / N_FIRST;
  process.stdout.write(
    `directory first login (search + bind + group search), ${N_FIRST}x: median ${median(firstMs).toFixed(2)} ms, p90 ${pct(firstMs, 0.9).toFixed(2)} ms wall; ` +
      `CPU per login: portico ${firstCpu.toFixed(0)} µs, slapd ${slapdCpu.toFixed(0)} µs\n`,
  );

  // Directory cached login at the authenticator.
  const cached = make(3_600_000);
  await cached.login('alice', 'alice-pw', CTX);
  c0 = cpuUs();
  for (let i = 0; i < N_CACHED; i++) await cached.login('alice', 'alice-pw', CTX);
  const cachedCpu = ((cpuUs() - c0) * 1000) / N_CACHED;
  process.stdout.write(`directory cached login (authenticator TTL cache), ${N_CACHED}x: ${cachedCpu.toFixed(0)} ns CPU per login (${(localCpu * 1000 / cachedCpu).toFixed(0)}x cheaper than a local bcrypt login)\n`);

  // A protocol's cached login: WebDAV's BasicAuthCache hit, local vs directory principal.
  const sessions = { authenticator: cached, authenticate: (u: string, p: string, ctx: typeof CTX) => cached.authenticate(u, p, ctx) } as unknown as SessionManager;
  const basic = new BasicAuthCache(sessions, 3_600_000);
  const header = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const hLocal = header('localuser', 'local-pw');
  const hDir = header('alice', 'alice-pw');
  await basic.authenticate(hLocal, '127.0.0.1');
  await basic.authenticate(hDir, '127.0.0.1');
  const per = { local: [] as number[], ldap: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [kind, h] of (r % 2 === 0 ? [['local', hLocal], ['ldap', hDir]] : [['ldap', hDir], ['local', hLocal]]) as ['local' | 'ldap', string][]) {
      c0 = cpuUs();
      for (let i = 0; i < N_HITS / ROUNDS; i++) await basic.authenticate(h, '127.0.0.1');
      per[kind].push(((cpuUs() - c0) * 1000) / (N_HITS / ROUNDS));
    }
  }
  const l = median(per.local);
  const d = median(per.ldap);
  process.stdout.write(
    `WebDAV cached login (BasicAuthCache hit), ${N_HITS}x each in ${ROUNDS} alternating rounds: local ${l.toFixed(0)} ns, directory ${d.toFixed(0)} ns CPU per request; ` +
      `directory/local ${(d / l).toFixed(2)}x (aim <= ~1.0x)\n`,
  );
  await uncached.close();
  await cached.close();
} finally {
  store.close();
  rmSync(dir, { recursive: true, force: true });
  await slapd.close();
}
process.stdout.write(`load average at end ${load()}\n`);
