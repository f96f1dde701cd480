/**
 * Runs every scenario (scenarios.ts) through every driver, on every backend, on case-sensitive and
 * case-insensitive shares: one real gateway (WebDAV, NFS and SMB on 127.0.0.1, s3rver for S3), each driver a
 * real client of it. The peer of a client is the other driver on the same share, so cross-client
 * checks cross front-ends: a change made over WebDAV is read through the Session API and back.
 * FUSE: the same gateway's shares mounted in this process (fuse-driver.ts; the calls on the mount
 * come from a child process); skipped, with the reason printed, where the addon is unavailable.
 *
 * A new front-end adds its driver to DRIVERS (and becomes the peer choice for the others when
 * that is useful); the list runs through it unchanged.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNfs, type NfsStack } from '../nfs/gateway.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import type { FileClient, ShareInfo } from './driver.ts';
import { scenarios, type Scenario, type ScenarioContext } from './scenarios.ts';
import { sessionClient } from './session-driver.ts';
import { webdavClient } from './webdav-driver.ts';
import { nfsClient } from './nfs-driver.ts';
import { smbClient } from './smb-driver.ts';
import { FuseMounts, fuseClient } from './fuse-driver.ts';
import { fuseAvailability } from '../../protocols/fuse/native.ts';

/**
 * The client under test logs in as alice, its peer as bob (both may read and write every share);
 * carol may only read them (the scenarios' read-only client).
 */
const USERS: Record<string, string> = { alice: 'scenario-secret', bob: 'other-secret', carol: 'read-only-secret' };
/** Their uids: what an NFS client sends (AUTH_SYS) and the gateway maps back to the user. */
const UIDS: Record<string, number> = { alice: 2001, bob: 2002, carol: 2003 };
const ACCESS = [
  { users: ['alice', 'bob'], rights: ['read', 'write'] },
  { users: ['carol'], rights: ['read'] },
];
/**
 * The session driver opens its sessions under this protocol name: a share serves only configured
 * protocols, and these shares are configured for WebDAV.
 */
const SESSION_PROTOCOL = 'webdav';

interface ShareSpec {
  name: string;
  backend: 'memory' | 'local' | 's3';
  caseInsensitive: boolean;
  /** Object stores: closes return after a local journal write, uploads follow (src/vfs/write-back.ts). */
  asyncWriteBack?: boolean;
}

// Shares of their own (startDav's "mem" and "disk" stay unused): each with the access list above.
const SHARES: ShareSpec[] = [
  { name: 'sc-mem', backend: 'memory', caseInsensitive: false },
  { name: 'sc-mem-ci', backend: 'memory', caseInsensitive: true },
  { name: 'sc-disk', backend: 'local', caseInsensitive: false },
  { name: 'sc-disk-ci', backend: 'local', caseInsensitive: true },
  { name: 'sc-s3', backend: 's3', caseInsensitive: false },
  { name: 'sc-s3-ci', backend: 's3', caseInsensitive: true },
  { name: 'sc-s3-async', backend: 's3', caseInsensitive: false, asyncWriteBack: true },
];

type Driver = (share: ShareInfo, user: string) => Promise<FileClient>;

// The test command builds the addon (pretest: scripts/build-fuse-addon.sh), so in CI this runs.
const FUSE = fuseAvailability();
if (!FUSE.available) console.warn(`scenarios: fuse driver skipped: ${FUSE.reason} (enable: ${FUSE.enable})`);
let fuseMounts: FuseMounts | undefined;

const DRIVERS: Record<string, Driver> = {
  session: (share, user) => sessionClient({ sessions: stack.gateway.sessions!, share, user, password: USERS[user]!, protocol: SESSION_PROTOCOL }),
  webdav: async (share, user) => webdavClient({ origin: `http://127.0.0.1:${stack.davPort}`, share, user, password: USERS[user]! }),
  nfs: (share, user) => nfsClient({ port: stack.nfsPort, share, uid: UIDS[user]! }),
  smb: (share, user) => smbClient({ port: stack.smbPort, share, user, password: USERS[user]! }),
  ...(FUSE.available ? { fuse: (share: ShareInfo, user: string) => fuseClient({ mounts: fuseMounts!, share, user }) } : {}),
};

/** The client whose view a driver's changes are checked against. */
const PEER: Record<string, string> = { session: 'webdav', webdav: 'session', nfs: 'webdav', smb: 'nfs', fuse: 'webdav' };

/**
 * Scenarios that fail because of a known bug in Portico: run with it.fails (so a fix shows up as
 * "unexpectedly passed"), each naming the bug. Matching fields left out match everything.
 */
interface KnownFailure {
  scenario: string;
  driver?: string;
  backend?: ShareSpec['backend'];
  caseInsensitive?: boolean;
  bug: string;
}

const KNOWN_FAILURES: KnownFailure[] = [
  {
    scenario: 'case-sensitive share: names POSIX allows but URLs and Windows treat specially ( ? " < > | * : ) round-trip exactly',
    backend: 's3',
    bug: 'not Portico: s3rver decodes x-amz-copy-source with decodeURI, which keeps %3F %23 %3A %26 %3D %2B %24 %2C %3B %40 encoded, so CopyObject (a rename on S3) of a key holding ? # : & = + $ , ; @ is NoSuchKey; S3 decodes the whole header. The fix belongs in test/helpers/s3rver.ts',
  },
  {
    scenario: 'case-insensitive share: case-only renames of files and directories change the spelling only',
    driver: 'fuse',
    caseInsensitive: true,
    bug: 'not Portico, the Linux VFS: rename(2) from readme.md to README.md looks both names up, the share resolves both to one file, and vfs_rename returns 0 without asking the file system when source and target are one inode (POSIX: a rename between two links of one file does nothing); no RENAME reaches Portico (checked), the spelling stays. FUSE has no case-folding dentry operations (ext4 casefold has its own d_compare/d_hash); answering ENOENT for other spellings would break every case-insensitive lookup',
  },
];

let s3: S3rverHandle;
let stack: NfsStack;
let disks: string;

beforeAll(async () => {
  s3 = await startS3rver();
  disks = mkdtempSync(join(tmpdir(), 'portico-scenarios-'));
  // Multipart from 5 MiB and 1 MiB read blocks: the multi-MiB scenarios cross both boundaries.
  const s3Options = { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS, partSize: 5 * 1024 * 1024, blockSize: 1024 * 1024 };
  const source = (spec: ShareSpec): Record<string, unknown> => {
    if (spec.backend === 'memory') return { source: 'memory:' };
    if (spec.backend === 's3') return { source: `s3://${s3.bucket}/${spec.name}`, options: s3Options };
    const dir = join(disks, spec.name);
    mkdirSync(dir);
    return { source: dir };
  };
  stack = await startNfs({
    users: [],
    smb: true,
    shares: SHARES.map((spec) => ({
      name: spec.name,
      ...source(spec),
      caseSensitive: !spec.caseInsensitive,
      access: ACCESS,
      ...(spec.asyncWriteBack === true ? { writeBack: 'async' } : {}),
    })),
  });
  for (const [user, password] of Object.entries(USERS)) {
    await stack.gateway.users!.addUser({ name: user, password, uid: UIDS[user]!, gid: UIDS[user]!, groups: [] });
  }
  if (FUSE.available) fuseMounts = new FuseMounts(stack.gateway.sessions!);
}, 60_000);

afterAll(async () => {
  // The mounts first: their sessions live in the gateway (the drivers' workers are gone by now).
  await fuseMounts?.close();
  await stack?.stop();
  await s3?.stop();
  if (disks) rmSync(disks, { recursive: true, force: true });
});

/**
 * Case-insensitive shares run what names can change; data scenarios run on the sensitive twin; the
 * async write-back share runs what storage can change (names travel as on the sync S3 share).
 * Heavy scenarios (thousands of requests) run through the protocol drivers, not the reference one
 * (whose sessions are the peer there and list the same directory), and are left out on S3: s3rver
 * stores 30-50 objects a second on a loaded 2-core machine (1,100 files took 22-38 s), and the S3
 * backend's own paging is in test/s3/s3-contract.test.ts and test/backends/backend-contract.test.ts.
 */
function applies(sc: Scenario, share: ShareSpec, driver: string): boolean {
  if (sc.heavy === true && (share.backend === 's3' || driver === 'session')) return false;
  if (sc.namesOnly === true && share.asyncWriteBack === true) return false;
  if (sc.share === 'caseInsensitive') return share.caseInsensitive;
  if (sc.share === 'caseSensitive') return !share.caseInsensitive;
  return !(sc.dataOnly === true && share.caseInsensitive);
}

describe('the scenario list', () => {
  it('has unique names, and every known failure names one of them', () => {
    const names = scenarios.map((sc) => sc.name);
    expect(new Set(names).size).toBe(names.length);
    for (const k of KNOWN_FAILURES) expect(names, k.bug).toContain(k.scenario);
  });
});

for (const spec of SHARES) {
  for (const driverName of Object.keys(DRIVERS)) {
    const traits = [spec.backend, ...(spec.caseInsensitive ? ['case-insensitive'] : []), ...(spec.asyncWriteBack === true ? ['async write-back'] : [])];
    describe(`${driverName} on ${spec.name} (${traits.join(', ')})`, () => {
      let client: FileClient;
      let peer: FileClient;
      let ref: FileClient;
      let readOnly: FileClient;
      let info: ShareInfo;

      beforeAll(async () => {
        const caps = stack.gateway.backends.get(spec.name)!.capabilities;
        info = {
          name: spec.name,
          backend: spec.backend,
          caseInsensitive: spec.caseInsensitive,
          symlinks: caps.symlinks,
          hardLinks: caps.hardLinks,
          // s3rver keeps each key segment as a file name on the local disk, with suffixes up to 37
          // bytes ('._S3rver_object.incoming-' and 12 hex digits, in test/helpers/s3rver.ts): a
          // longer segment is a 500 there (not on S3, whose keys take 1024 bytes).
          storeNameBytes: spec.backend === 's3' ? 218 : 255,
        };
        client = await DRIVERS[driverName]!(info, 'alice');
        peer = await DRIVERS[PEER[driverName]!]!(info, 'bob');
        ref = await DRIVERS.session!(info, 'alice');
        readOnly = await DRIVERS[driverName]!(info, 'carol');
      });
      afterAll(async () => {
        for (const c of [client, peer, ref, readOnly]) await c?.close();
      });

      scenarios.forEach((sc, i) => {
        if (!applies(sc, spec, driverName)) return;
        const known = KNOWN_FAILURES.find(
          (k) => k.scenario === sc.name && (k.driver ?? driverName) === driverName && (k.backend ?? spec.backend) === spec.backend && (k.caseInsensitive ?? spec.caseInsensitive) === spec.caseInsensitive,
        );
        // SCENARIOS_KNOWN_FAILURES=expose runs them as plain tests, to see where they fail.
        const test = known && process.env.SCENARIOS_KNOWN_FAILURES !== 'expose' ? it.fails : it;
        test(known ? `${sc.name} [known bug: ${known.bug}]` : sc.name, async ({ skip }) => {
          const missing = sc.needs?.find((k) => !client.caps[k]);
          if (missing !== undefined) skip(`${driverName} on ${spec.name} lacks capability '${missing}'`);
          // Each scenario works in a directory of its own, made by the reference client.
          const dir = `/${driverName}-${i}`;
          await ref.mkdir(dir);
          const ctx: ScenarioContext = {
            dir,
            p: (...names) => [dir, ...names].join('/'),
            peer,
            readOnly,
            share: info,
          };
          await sc.run(client, ctx);
        });
      });
    });
  }
}
