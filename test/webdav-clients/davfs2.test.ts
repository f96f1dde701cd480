/**
 * davfs2: the server mounted through FUSE (`mount -t davfs`, use_locks 1, delay_upload 0), then the
 * ordinary tools: cp -r a tree in, ls, mv (file and directory), rm, rm -r, a 100 MB file written and
 * read back with cmp, a file held open for writing (davfs2 LOCKs it on the server, so another client's
 * PUT gets 423 Locked), umount. The server's directory must then hold exactly the expected tree, and a
 * second mount with a fresh cache must read the same bytes back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Davfs2Mount } from './davfs2-mount.ts';
import { hashTree, makeTree, mustRun, run, sha256File, startDavServer, tempDir, urlFor, writeRandomFile, type DavServer } from './helpers.ts';

let server: DavServer;
let tmp: string;
const mounts: Davfs2Mount[] = [];

beforeAll(async () => {
  server = await startDavServer();
  tmp = tempDir('davfs2');
});

afterAll(async () => {
  // Always unmount (killing mount.davfs by PID if it hangs) before the server goes away.
  for (const m of mounts) await m.unmount().catch(() => undefined);
  await server?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function mount(): Promise<Davfs2Mount> {
  const m = await Davfs2Mount.mount({ url: server.url, user: server.user, pass: server.pass, dir: tmp });
  mounts.push(m);
  return m;
}

const noDav = (n: string): boolean => n === '.DAV' || n === 'lost+found';

/** HTTP status of a PUT by another client (curl, no lock token). */
async function foreignPut(rel: string, body: string): Promise<number> {
  const r = await mustRun('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-u', `${server.user}:${server.pass}`, '-X', 'PUT', '--data-binary', body, urlFor(server.url, rel)], {
    timeoutMs: 30_000,
  });
  return Number(r.stdout);
}

/** Holds `path` open for appending in a child shell until killed (davfs2 LOCKs it meanwhile). */
function holdOpenForWrite(path: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', 'exec 3>>"$1" || exit 1; echo opened; exec sleep 120', 'sh', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('opened')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`could not open ${path} for writing (${code}): ${err}`)));
  });
}

describe(`davfs2 mount against ${process.env.WEBDAV_CLIENTS_TARGET ?? 'portico'}`, () => {
  it('cp, ls, mv, rm, a 100 MB file, a write lock, umount, and the same bytes after a remount', async () => {
    const src = join(tmp, 'src');
    const files = await makeTree(src, { files: 40, bigFileBytes: 0 });
    const docsFile = files.find((f) => /^docs\/[^/]+$/.test(f))!;
    const rootFile = files.find((f) => !f.includes('/'))!;
    // The mirror receives the same mv/rm as the mount: it is what the server must end up holding.
    const mirror = join(tmp, 'mirror');
    await mustRun('cp', ['-r', src, mirror]);
    const big = join(tmp, 'big.bin');
    await writeRandomFile(big, 100 * 1024 * 1024);
    const bigSha = await sha256File(big);

    const m = await mount();
    expect(m.pid, 'mount.davfs pid file').toBeDefined();

    await mustRun('cp', ['-r', src, m.path('tree')], { timeoutMs: 300_000 });
    expect(await m.ls('tree')).toEqual((await mustRun('ls', ['-1A', src], { env: { ...process.env, LC_ALL: 'C.UTF-8' } })).stdout.split('\n').filter(Boolean).sort());

    // mv: a file to a new unicode name, a directory (with its subtree) to a new place.
    const renames: [string, string][] = [
      [`tree/${docsFile}`, 'tree/docs/renamed – ünïcode.txt'],
      ['tree/docs/sub dir', 'tree/media/moved dir'],
    ];
    for (const [from, to] of renames) {
      await mustRun('mv', [m.path(from), m.path(to)], { timeoutMs: 120_000 });
      await mustRun('mv', [join(tmp, from.replace(/^tree/, 'mirror')), join(tmp, to.replace(/^tree/, 'mirror'))]);
    }
    expect(await m.ls('tree/media')).toContain('moved dir');
    expect(await m.ls('tree/docs')).not.toContain('sub dir');

    // rm a file, rm -r a directory.
    await mustRun('rm', [m.path(`tree/${rootFile}`)]);
    await mustRun('rm', [join(mirror, rootFile)]);
    await mustRun('rm', ['-r', m.path('tree/empty-ish')], { timeoutMs: 120_000 });
    await mustRun('rm', ['-r', join(mirror, 'empty-ish')]);
    expect(await m.ls('tree')).not.toContain('empty-ish');

    // 100 MB through the mount and back.
    await mustRun('cp', [big, m.path('big.bin')], { timeoutMs: 600_000 });
    await mustRun('cmp', [big, m.path('big.bin')], { timeoutMs: 600_000 });

    // use_locks 1: a file open for writing is LOCKed on the server; another client cannot PUT it.
    await mustRun('sh', ['-c', 'printf "locked by davfs2\\n" > "$1"', 'sh', m.path('lockme.txt')]);
    const holder = await holdOpenForWrite(m.path('lockme.txt'));
    try {
      expect(await foreignPut('lockme.txt', 'intruder')).toBe(423);
    } finally {
      holder.kill('SIGKILL');
    }

    // What the mount shows is the mirror.
    expect(await m.hashes('tree')).toEqual(await hashTree(mirror));

    expect(await m.unmount(), 'umount (mount.davfs uploads and exits)').toBe(true);
    expect(m.isMounted()).toBe(false);

    // The server stored exactly that.
    expect(await hashTree(join(server.dataDir, 'tree'), noDav)).toEqual(await hashTree(mirror));
    expect(await sha256File(join(server.dataDir, 'big.bin'))).toBe(bigSha);
    // The lock went away with the mount.
    expect(await foreignPut('lockme.txt', 'after unmount')).toBeLessThan(300);

    // A fresh mount (empty cache) reads the bytes from the server.
    const again = await mount();
    await mustRun('cmp', [big, again.path('big.bin')], { timeoutMs: 600_000 });
    expect(await again.hashes('tree')).toEqual(await hashTree(mirror));
    expect(await again.unmount()).toBe(true);
    const r = await run('ls', [again.path('')]);
    expect(r.stdout.trim()).toBe('');
  }, 900_000);
});
