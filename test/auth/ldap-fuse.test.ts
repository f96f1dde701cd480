/**
 * FUSE acting as a directory user: a real `portico serve` process (a FUSE server must not be the
 * process that uses its mount: test/fuse/helpers.ts says why) with `auth.ldap` pointing at a private
 * slapd and `protocols.fuse.user: carol`, a directory user. carol's directory groups (engineering,
 * through the nested `leads`) decide the path rules seen through the mount.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fuseAvailability } from '../../protocols/fuse/native.ts';
import { mountPoints } from '../../protocols/fuse/mount.ts';
import { BIN, NODE, ROOT, cleanEnv, freePort } from '../cli/helpers.ts';
import { haveSlapd, READER_DN, READER_PW, startSlapd, SUFFIX, type Slapd } from '../helpers/slapd.ts';

const sh = promisify(execFile);
const usable = fuseAvailability().available && haveSlapd();

async function errCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

describe.skipIf(!usable)('FUSE mount acting as a directory user', () => {
  let slapd: Slapd;
  let tmp: string;
  let mnt: string;
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> | undefined;
  let stderr = '';

  beforeAll(async () => {
    slapd = await startSlapd();
    tmp = mkdtempSync(join(tmpdir(), 'portico-ldap-fuse-'));
    mnt = join(tmp, 'mnt');
    const disk = join(tmp, 'disk');
    mkdirSync(mnt);
    mkdirSync(join(disk, 'eng'), { recursive: true });
    mkdirSync(join(disk, 'fin'), { recursive: true });
    writeFileSync(join(disk, 'eng', 'plan.txt'), 'the plan\n');
    writeFileSync(join(disk, 'fin', 'q4.txt'), 'numbers\n');
    const config = {
      server: { stateDir: join(tmp, 'state') },
      admin: { port: 0 },
      log: { level: 'warn', format: 'json', audit: { enabled: false } },
      auth: { ldap: { url: slapd.url, userBase: SUFFIX, bindDn: READER_DN, bindPassword: READER_PW } },
      protocols: { webdav: { port: await freePort(), listen: '127.0.0.1' }, nfs: { port: 0 }, smb: { port: 0 }, fuse: { mountpoint: mnt, user: 'carol' } },
      shares: [
        {
          name: 'team',
          source: disk,
          rules: [
            { path: '/eng', users: ['*'], deny: ['read', 'write'] },
            { path: '/eng', groups: ['engineering'], allow: ['read', 'write'] },
            { path: '/fin', users: ['*'], deny: ['read', 'write'] },
            { path: '/fin', groups: ['finance'], allow: ['read', 'write'] },
          ],
        },
      ],
    };
    const file = join(tmp, 'portico.yaml');
    writeFileSync(file, JSON.stringify(config, null, 2));
    const c = spawn(NODE, [BIN, 'serve', '--config', file], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    exited = new Promise((r) => c.on('exit', r));
    const end = Date.now() + 90_000;
    while (mountPoints().get(mnt) !== 'fuse.portico') {
      if (c.exitCode !== null) throw new Error(`portico serve exited (${c.exitCode}): ${stderr}`);
      if (Date.now() > end) throw new Error(`no FUSE mount: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await exited;
    if (mnt && mountPoints().has(mnt)) await sh('fusermount3', ['-u', '-z', mnt]);
    await slapd?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it("reads and writes where carol's nested directory group is allowed, and gets EACCES where it is not", async () => {
    expect(await readFile(join(mnt, 'team', 'eng', 'plan.txt'), 'utf8')).toBe('the plan\n');
    await writeFile(join(mnt, 'team', 'eng', 'carol.txt'), 'from carol\n');
    expect(await readFile(join(mnt, 'team', 'eng', 'carol.txt'), 'utf8')).toBe('from carol\n');
    expect(await errCode(readFile(join(mnt, 'team', 'fin', 'q4.txt')))).toBe('EACCES');
    expect(await errCode(writeFile(join(mnt, 'team', 'fin', 'carol.txt'), 'x'))).toBe('EACCES');
  });
});
