/**
 * The FUSE front-end with real mounts (issue 13): a local share, a read-only share, an S3 share
 * a memory share and a shard set
 * (s3rver) mounted under a temp directory by a real `portico serve` process, driven by the kernel
 * through plain Node fs calls and shell tools (cp, ls -l, mv, rm, dd, cat, stat, setfattr/getfattr). Kernel
 * attribute and entry timeouts are 60 s here, so a change made over WebDAV shows through the mount
 * at once only because the kernel's cache was invalidated.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rename, rm, stat, writeFile, mkdir, chmod, truncate, symlink, readlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { runCli } from '../cli/helpers.ts';
import { http, fuseUnusable, mountPoints, removeTmp, runNode, sh, startFuseStack, PW, USER, type FuseStack } from './helpers.ts';

const dav = http;

/** Reads Portico served (portico_requests_total{protocol="fuse",op="read"}, all statuses). */
async function portReads(adminPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('portico_requests_total{') && line.includes('protocol="fuse"') && line.includes('op="read"')) n += Number(line.split(' ').at(-1));
  }
  return n;
}

const unusable = fuseUnusable();
if (unusable) console.warn(`FUSE mount tests skipped: ${unusable}`);

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function errCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

describe.skipIf(unusable !== undefined)('FUSE mount of local, read-only and S3 shares', () => {
  let s3: S3rverHandle;
  let stack: FuseStack;
  let tmp: string;
  let disk: string;
  let ro: string;
  let m: (share: string, ...p: string[]) => string;

  beforeAll(async () => {
    s3 = await startS3rver();
    tmp = mkdtempSync(join(tmpdir(), 'portico-fuse-'));
    disk = join(tmp, 'disk');
    ro = join(tmp, 'ro');
    mkdirSync(join(disk, 'secret'), { recursive: true });
    writeFileSync(join(disk, 'secret', 'plan.txt'), 'hidden');
    mkdirSync(ro);
    writeFileSync(join(ro, 'readme.txt'), 'read me');
    // A shard set (read-only, packed by the CLI) as a fifth share.
    mkdirSync(join(tmp, 'shard-src', 'docs'), { recursive: true });
    writeFileSync(join(tmp, 'shard-src', 'docs', 'a.txt'), 'packed a');
    writeFileSync(join(tmp, 'shard-src', 'b.bin'), Buffer.alloc(200_000, 7));
    const packed = await runCli(['shard', 'pack', join(tmp, 'shard-src'), join(tmp, 'shards')], { timeoutMs: 90_000 });
    if (packed.code !== 0) throw new Error(`shard pack failed: ${packed.stderr}`);
    stack = await startFuseStack({
      tmp,
      fuse: { attrTimeout: 60, entryTimeout: 60 },
      shares: [
        { name: 'disk', source: disk, rules: [{ path: '/secret', users: [USER], deny: ['read', 'write'] }] },
        { name: 'ro', source: ro, readOnly: true },
        { name: 's3', source: `s3://${s3.bucket}/fuse`, options: { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS } },
        { name: 'mem', source: 'memory:' },
        { name: 'shard', source: `shard+file://${join(tmp, 'shards')}` },
      ],
    });
    m = (share, ...p) => join(stack.mnt, share, ...p);
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    if (stack && mountPoints().has(stack.mnt)) await sh('fusermount3', ['-u', '-z', stack.mnt]);
    await s3?.stop();
    if (tmp) removeTmp(tmp);
  }, 60_000);

  it('shows one directory per share at the mount root', async () => {
    expect((await readdir(stack.mnt)).sort()).toEqual(['disk', 'mem', 'ro', 's3', 'shard']);
    expect(mountPoints().get(stack.mnt)).toBe('fuse.portico');
    expect(await errCode(mkdir(join(stack.mnt, 'new')))).toBe('EACCES');
  });

  for (const share of ['disk', 's3', 'mem']) {
    describe(`${share} share`, () => {
      it('writes and reads files with fs calls; stat reports size, mode and times', async () => {
        const data = randomBytes(300_000);
        await writeFile(m(share, 'f.bin'), data);
        expect(sha(await readFile(m(share, 'f.bin')))).toBe(sha(data));
        const st = await stat(m(share, 'f.bin'));
        expect(st.size).toBe(data.length);
        expect(st.isFile()).toBe(true);
        await chmod(m(share, 'f.bin'), 0o600);
        await utimes(m(share, 'f.bin'), 1_700_000_000, 1_700_000_000);
        const st2 = await stat(m(share, 'f.bin'));
        expect(st2.mtimeMs).toBe(1_700_000_000_000);
        if (share === 'disk') {
          expect(st2.mode & 0o777).toBe(0o600);
          expect(sha(readFileSync(join(disk, 'f.bin')))).toBe(sha(data));
        }
        // Seen by another protocol: WebDAV GET of the same file.
        const got = await dav(stack.port, 'GET', `/${share}/f.bin`);
        expect(got.status).toBe(200);
        expect(sha(got.body)).toBe(sha(data));
      });

      it('cp -r, ls -l, mv, rm, dd, cat, stat with shell tools', async () => {
        const src = join(tmp, `tree-${share}`);
        mkdirSync(join(src, 'sub'), { recursive: true });
        writeFileSync(join(src, 'a.txt'), 'alpha\n');
        writeFileSync(join(src, 'sub', 'b.txt'), 'beta\n');
        await sh('cp', ['-r', src, m(share, 'tree')]);
        const ls = (await sh('ls', ['-l', m(share, 'tree')])).stdout;
        expect(ls).toMatch(/-rw-r--r-- +1 +\S+ +\S+ +6 .* a\.txt/);
        expect(ls).toMatch(/^d.* sub$/m);
        expect((await sh('cat', [m(share, 'tree', 'sub', 'b.txt')])).stdout).toBe('beta\n');
        await sh('mv', [m(share, 'tree', 'a.txt'), m(share, 'tree', 'sub', 'moved.txt')]);
        expect((await readdir(m(share, 'tree', 'sub'))).sort()).toEqual(['b.txt', 'moved.txt']);
        expect(await errCode(stat(m(share, 'tree', 'a.txt')))).toBe('ENOENT');
        await sh('dd', ['if=/dev/urandom', `of=${m(share, 'tree', 'big')}`, 'bs=1M', 'count=8', 'status=none']);
        expect((await sh('stat', ['-c', '%s %F', m(share, 'tree', 'big')])).stdout.trim()).toBe(`${8 * 1024 * 1024} regular file`);
        const back = await dav(stack.port, 'GET', `/${share}/tree/big`);
        expect(sha(back.body)).toBe(sha(await readFile(m(share, 'tree', 'big'))));
        await sh('rm', ['-r', m(share, 'tree')]);
        expect(await errCode(stat(m(share, 'tree')))).toBe('ENOENT');
        expect((await dav(stack.port, 'GET', `/${share}/tree/big`)).status).toBe(404);
      });

      it('rename over an existing file, truncate, directories and their errors', async () => {
        await writeFile(m(share, 'r1'), 'one');
        await writeFile(m(share, 'r2'), 'two two');
        // mv -n: renameat2(RENAME_NOREPLACE) keeps the existing target.
        await sh('mv', ['-n', m(share, 'r1'), m(share, 'r2')]);
        expect(await readFile(m(share, 'r2'), 'utf8')).toBe('two two');
        await rename(m(share, 'r1'), m(share, 'r2'));
        expect(await readFile(m(share, 'r2'), 'utf8')).toBe('one');
        await truncate(m(share, 'r2'), 1);
        expect(await readFile(m(share, 'r2'), 'utf8')).toBe('o');
        await mkdir(m(share, 'd'));
        await writeFile(m(share, 'd', 'x'), 'x');
        expect(await errCode(rm(m(share, 'd'), { recursive: false }))).toMatch(/EISDIR|ERR_FS_EISDIR/);
        expect(await errCode(sh('rmdir', [m(share, 'd')]))).toBeDefined();
        expect(await errCode(mkdir(m(share, 'd')))).toBe('EEXIST');
        expect(await errCode(readFile(m(share, 'nope')))).toBe('ENOENT');
        await rm(m(share, 'd'), { recursive: true });
        await rm(m(share, 'r2'));
        expect(await readdir(m(share))).not.toContain('r2');
      });

      it('user xattrs with setfattr/getfattr', async () => {
        await writeFile(m(share, 'xa'), 'x');
        await sh('setfattr', ['-n', 'user.color', '-v', 'blue', m(share, 'xa')]);
        expect((await sh('getfattr', ['--only-values', '-n', 'user.color', m(share, 'xa')])).stdout).toBe('blue');
        expect((await sh('getfattr', ['-d', m(share, 'xa')])).stdout).toContain('user.color="blue"');
        await sh('setfattr', ['-x', 'user.color', m(share, 'xa')]);
        expect(await errCode(sh('getfattr', ['-n', 'user.color', m(share, 'xa')]))).toBeDefined();
        await rm(m(share, 'xa'));
      });
    });
  }

  it('symbolic links on the local share', async () => {
    await writeFile(m('disk', 'target.txt'), 'pointed');
    await symlink('target.txt', m('disk', 'link'));
    expect(await readlink(m('disk', 'link'))).toBe('target.txt');
    expect(await readFile(m('disk', 'link'), 'utf8')).toBe('pointed');
    expect(await readlink(join(disk, 'link'))).toBe('target.txt');
    // A link leading outside the share is refused by the share's policy (symlinks: refuse).
    expect(await errCode(symlink('/etc/passwd', m('disk', 'out')))).toBe('EACCES');
  });

  it('a path rule denies with EACCES; a read-only share refuses changes with EROFS', async () => {
    expect(await errCode(readFile(m('disk', 'secret', 'plan.txt')))).toBe('EACCES');
    expect(await errCode(writeFile(m('disk', 'secret', 'new.txt'), 'x'))).toBe('EACCES');
    expect(await readdir(m('disk'))).not.toContain('secret');
    expect(await readFile(m('ro', 'readme.txt'), 'utf8')).toBe('read me');
    expect(await errCode(writeFile(m('ro', 'new.txt'), 'x'))).toBe('EROFS');
    expect(await errCode(writeFile(m('ro', 'readme.txt'), 'x'))).toBe('EROFS');
    expect(await errCode(rm(m('ro', 'readme.txt')))).toBe('EROFS');
    expect(await errCode(mkdir(m('ro', 'd')))).toBe('EROFS');
    expect(existsSync(join(ro, 'new.txt'))).toBe(false);
  });

  for (const share of ['disk', 's3']) {
    it(`a change over WebDAV shows through the mount at once (${share}: kernel cache invalidated)`, async () => {
      await writeFile(m(share, 'shared.txt'), 'first');
      // Sizes through coreutils' stat: it asks statx for the basic fields, which the kernel answers
      // from its attribute cache (60 s here). (Node's stat also asks for the birth time, which the
      // kernel never caches for FUSE, so it would always reach Portico and prove nothing.)
      const size = async (): Promise<string> => (await sh('stat', ['-c', '%s', m(share, 'shared.txt')])).stdout.trim();
      expect(await size()).toBe('5');
      expect((await sh('cat', [m(share, 'shared.txt')])).stdout).toBe('first');
      expect((await dav(stack.port, 'PUT', `/${share}/shared.txt`, 'second version')).status).toBeLessThan(300);
      let now = '';
      for (let i = 0; i < 50 && now !== '14'; i++) {
        now = await size();
        if (now !== '14') await new Promise((r) => setTimeout(r, 20));
      }
      expect(now).toBe('14');
      expect((await sh('cat', [m(share, 'shared.txt')])).stdout).toBe('second version');
      // A name removed over WebDAV is gone from the kernel's entry cache too.
      expect((await dav(stack.port, 'DELETE', `/${share}/shared.txt`)).status).toBeLessThan(300);
      let listed = true;
      for (let i = 0; i < 50 && listed; i++) {
        listed = (await sh('ls', [m(share)])).stdout.split('\n').includes('shared.txt') || (await sh('stat', [m(share, 'shared.txt')]).then(() => true, () => false));
        if (listed) await new Promise((r) => setTimeout(r, 20));
      }
      expect(listed).toBe(false);
    });
  }

  for (const share of ['disk', 's3']) {
    it(`what the mount wrote is read back from the kernel's page cache; a same-size change over WebDAV shows at once (${share})`, async () => {
      const a = Buffer.alloc(64 * 1024, 'a');
      await writeFile(m(share, 'kept.bin'), a);
      // The file's mtime moved with the write: with the kernel's auto_inval_data its next attribute
      // refresh dropped these pages and every byte was read from Portico again.
      expect((await sh('stat', ['-c', '%s', m(share, 'kept.bin')])).stdout.trim()).toBe(String(a.length));
      const before = await portReads(stack.adminPort);
      expect((await sh('sha256sum', [m(share, 'kept.bin')])).stdout.split(' ')[0]).toBe(createHash('sha256').update(a).digest('hex'));
      expect(await portReads(stack.adminPort)).toBe(before);
      // The same size over WebDAV: the size does not give it away, the change event does.
      expect((await dav(stack.port, 'PUT', `/${share}/kept.bin`, Buffer.alloc(a.length, 'b'))).status).toBeLessThan(300);
      const want = createHash('sha256').update(Buffer.alloc(a.length, 'b')).digest('hex');
      let got = '';
      for (let i = 0; i < 50 && got !== want; i++) {
        got = (await sh('sha256sum', [m(share, 'kept.bin')])).stdout.split(' ')[0]!;
        if (got !== want) await new Promise((r) => setTimeout(r, 20));
      }
      expect(got).toBe(want);
    });
  }

  it('keeps several requests in flight (16 concurrent writers and readers in another process)', async () => {
    const out = await runNode(
      `import { randomBytes, createHash } from 'node:crypto';
       import { writeFile, readFile, open } from 'node:fs/promises';
       const dir = process.argv[1];
       const sha = (b) => createHash('sha256').update(b).digest('hex');
       const files = Array.from({ length: 16 }, (_, i) => ({ name: dir + '/c' + i, data: randomBytes(64 * 1024 + i) }));
       await Promise.all(files.map((f) => writeFile(f.name, f.data)));
       const got = await Promise.all(files.map((f) => readFile(f.name)));
       const fh = await open(dir + '/fsync.bin', 'w');
       await fh.write(Buffer.from('durable'));
       await fh.sync();
       await fh.close();
       console.log(JSON.stringify(got.map((g, i) => sha(g) === sha(files[i].data))));`,
      [m('s3')],
    );
    expect(JSON.parse(out)).toEqual(Array(16).fill(true));
    expect((await dav(stack.port, 'GET', '/s3/fsync.bin')).body.toString()).toBe('durable');
  });

  it('POSIX locks and flock go to the shared lock manager: they conflict with WebDAV locks', { timeout: 120_000 }, async () => {
    const file = m('disk', 'lk.txt');
    await writeFile(file, 'locked');
    const lockBody = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    const locked = await new Promise<{ status: number; token: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: stack.port, method: 'LOCK', path: '/disk/lk.txt', agent: false, headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PW}`).toString('base64')}`, 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(lockBody), Timeout: 'Second-60' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, token: String(res.headers['lock-token'] ?? '') }));
        },
      );
      req.on('error', reject);
      req.end(lockBody);
    });
    expect(locked.status).toBe(200);
    // flock(1) through the mount: refused at once (-n) while WebDAV holds the file, granted after.
    expect(await errCode(sh('flock', ['-n', '-x', file, 'true']))).toBeDefined();
    expect(await errCode(sh('flock', ['-n', '-s', file, 'true']))).toBeDefined();
    const un = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: stack.port, method: 'UNLOCK', path: '/disk/lk.txt', agent: false, headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PW}`).toString('base64')}`, 'Lock-Token': locked.token } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    expect(un).toBe(204);
    await sh('flock', ['-n', '-x', file, 'true']);
    // And the other way: a process holding flock through the mount makes a WebDAV LOCK fail (423).
    // (-o: flock(1) keeps the descriptor to itself, so killing its process group ends the lock.)
    const holder = spawn('flock', ['-o', '-x', file, 'sleep', '20'], { stdio: 'ignore', detached: true });
    try {
      // Bounded wait for the holder to take its lock (a process start under a loaded machine),
      // seen through the mount; then one WebDAV LOCK, which must be refused.
      let held = false;
      for (let i = 0; i < 400 && !held; i++) {
        held = (await errCode(sh('flock', ['-n', '-x', file, 'true']))) !== undefined;
        if (!held) await new Promise((r) => setTimeout(r, 50));
      }
      expect(held).toBe(true);
      expect((await dav(stack.port, 'LOCK', '/disk/lk.txt', lockBody)).status).toBe(423);
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
    }
    // The killed holder's lock goes with its file (flush/release): the file can be locked again.
    let again: string | undefined = 'x';
    for (let i = 0; i < 400 && again !== undefined; i++) {
      again = await errCode(sh('flock', ['-n', '-x', file, 'true']));
      if (again !== undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(again).toBeUndefined();
  });

  it('git clone, tar x, rsync -a and an sqlite3 database through the mount', { timeout: 120_000 }, async () => {
    const src = join(tmp, 'repo-src');
    mkdirSync(join(src, 'lib'), { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(join(src, 'lib', `m${i}.txt`), `module ${i}\n`.repeat(i + 1));
    const git = (...a: string[]): Promise<{ stdout: string }> => sh('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', '-c', 'safe.directory=*', ...a]);
    await git('-C', src, 'init', '-q');
    await git('-C', src, 'add', '.');
    await git('-C', src, 'commit', '-q', '-m', 'first');
    // (safe.directory: the clone's files belong to the mount's Portico user, not to root.)
    await git('clone', '-q', src, m('disk', 'repo'));
    expect((await git('-C', m('disk', 'repo'), 'status', '--porcelain')).stdout).toBe('');
    await git('-C', m('disk', 'repo'), 'fsck', '--full');
    expect((await git('-C', m('disk', 'repo'), 'log', '--oneline')).stdout.trim().split('\n')).toHaveLength(1);
    // tar x onto the S3 share, rsync -a onto the memory share: the trees compare equal. (As root
    // both would give the files root's owner; the mount's user may not chown — no admin right —
    // so they keep their owner, as a non-root user's tar and rsync do.)
    await sh('tar', ['cf', join(tmp, 'lib.tar'), '-C', src, 'lib']);
    await mkdir(m('s3', 'untar'));
    await sh('tar', ['xf', join(tmp, 'lib.tar'), '--no-same-owner', '-C', m('s3', 'untar')]);
    await sh('diff', ['-r', join(src, 'lib'), m('s3', 'untar', 'lib')]);
    await sh('rsync', ['-a', '--no-owner', '--no-group', `${src}/lib/`, `${m('mem', 'synced')}/`]);
    await sh('diff', ['-r', join(src, 'lib'), m('mem', 'synced')]);
    const again = await sh('rsync', ['-a', '--no-owner', '--no-group', '--itemize-changes', `${src}/lib/`, `${m('mem', 'synced')}/`]);
    expect(again.stdout).toBe('');
    // sqlite3: its POSIX locks and fsyncs go through the mount.
    const db = m('disk', 'db.sqlite');
    await sh('sqlite3', [db, 'create table t(a); insert into t values (1), (2), (3);']);
    expect((await sh('sqlite3', [db, 'pragma integrity_check; select sum(a) from t;'])).stdout).toBe('ok\n6\n');
  });

  for (const share of ['disk', 's3']) {
    it(`fsx-style random writes, truncates and reads against a reference file (${share})`, { timeout: 120_000 }, async () => {
      // In a child process (see helpers.ts); a seeded generator, so a failure names its step.
      const out = await runNode(
        `import { openSync, writeSync, readSync, ftruncateSync, closeSync, fstatSync } from 'node:fs';
         import { createHash } from 'node:crypto';
         const [file, ref] = process.argv.slice(1);
         let seed = 12345;
         const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
         const a = openSync(file, 'w+'), b = openSync(ref, 'w+');
         const MAX = 1 << 20;
         for (let step = 0; step < 400; step++) {
           const op = rnd(10), off = rnd(MAX), len = 1 + rnd(65536);
           if (op < 5) {
             const buf = Buffer.alloc(len, step % 251);
             writeSync(a, buf, 0, len, off); writeSync(b, buf, 0, len, off);
           } else if (op < 7) {
             ftruncateSync(a, off); ftruncateSync(b, off);
           } else {
             const x = Buffer.alloc(len), y = Buffer.alloc(len);
             const n = readSync(a, x, 0, len, off), m = readSync(b, y, 0, len, off);
             if (n !== m || !x.subarray(0, n).equals(y.subarray(0, m))) { console.log('read differs at step ' + step); process.exit(1); }
           }
           if (fstatSync(a).size !== fstatSync(b).size) { console.log('size differs at step ' + step); process.exit(1); }
         }
         closeSync(a); closeSync(b);
         const h = (f) => { const fd = openSync(f, 'r'); const st = fstatSync(fd); const buf = Buffer.alloc(st.size); readSync(fd, buf, 0, st.size, 0); closeSync(fd); return createHash('sha256').update(buf).digest('hex'); };
         console.log(h(file) === h(ref) ? 'same' : 'differs');`,
        [m(share, 'fsx.bin'), join(tmp, `fsx-ref-${share}.bin`)],
      );
      expect(out.trim()).toBe('same');
      // What another protocol reads is what the reference holds.
      const got = await dav(stack.port, 'GET', `/${share}/fsx.bin`);
      expect(sha(got.body)).toBe(sha(readFileSync(join(tmp, `fsx-ref-${share}.bin`))));
    });
  }

  it('a shard set reads through the mount and refuses changes', async () => {
    expect((await readdir(m('shard'))).sort()).toEqual(['b.bin', 'docs']);
    expect((await sh('cat', [m('shard', 'docs', 'a.txt')])).stdout).toBe('packed a');
    expect(sha(await readFile(m('shard', 'b.bin')))).toBe(sha(Buffer.alloc(200_000, 7)));
    expect((await sh('stat', ['-c', '%s', m('shard', 'b.bin')])).stdout.trim()).toBe('200000');
    expect(await errCode(writeFile(m('shard', 'new.txt'), 'x'))).toBe('EROFS');
  });

  it('statfs reports the share (df)', async () => {
    const out = (await sh('df', ['-P', m('disk')])).stdout.trim().split('\n').at(-1)!;
    expect(out).toMatch(/^portico +\d+ +\d+ +\d+/);
    expect(Number(out.split(/ +/)[1])).toBeGreaterThan(0);
  });

  it('the mount is gone after SIGTERM', async () => {
    expect(await stack.stop('SIGTERM')).toBe(0);
    expect(mountPoints().has(stack.mnt)).toBe(false);
    expect(await readdir(stack.mnt)).toEqual([]);
  }, 30_000);
});
