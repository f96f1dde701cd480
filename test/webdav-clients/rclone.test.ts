/**
 * rclone's WebDAV backend (vendor "other") against the server: copy a ~200-file tree up (a 50 MB file,
 * awkward names, nested directories), `rclone check --download` (byte comparison through GETs),
 * `rclone sync` a delete + change + add, check again, then copy everything back down and compare
 * sha256 with the source in the test itself.
 */
import { appendFileSync, existsSync, mkdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashTree, makeTree, mustRun, run, startDavServer, tempDir, type DavServer, type RunResult } from './helpers.ts';

let server: DavServer;
let tmp: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  server = await startDavServer();
  tmp = tempDir('rclone');
  const obscured = (await mustRun('rclone', ['obscure', server.pass])).stdout.trim();
  const conf = join(tmp, 'rclone.conf');
  writeFileSync(
    conf,
    ['[dav]', 'type = webdav', `url = ${server.url}`, 'vendor = other', `user = ${server.user}`, `pass = ${obscured}`, ''].join('\n'),
    { mode: 0o600 },
  );
  env = { ...process.env, RCLONE_CONFIG: conf, XDG_CACHE_HOME: join(tmp, 'cache'), HOME: tmp };
});

afterAll(async () => {
  await server?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** No retries: a request the server fails must fail the test, not be hidden by a second attempt. */
const STRICT = ['--retries', '1', '--low-level-retries', '1', '--stats', '0', '--transfers', '4', '--checkers', '8'];

function rclone(args: string[]): Promise<RunResult> {
  return run('rclone', [...args, ...STRICT], { env, timeoutMs: 300_000 });
}

function explain(r: RunResult): string {
  return `rclone exited ${r.code ?? r.signal}\n${r.stderr.slice(-6000)}\n--- server log\n${server.logTail()}`;
}

async function expectNoDifferences(src: string): Promise<void> {
  // --download compares the bytes of every file (the "other" vendor has no hashes to compare).
  const r = await rclone(['check', src, 'dav:tree', '--download']);
  expect(r.code, explain(r)).toBe(0);
  expect(r.stderr).toMatch(/\b0 differences found/);
}

describe(`rclone webdav backend against ${process.env.WEBDAV_CLIENTS_TARGET ?? 'portico'}`, () => {
  it('copies a tree up, checks it, syncs a change, checks again and copies it back byte for byte', async () => {
    const src = join(tmp, 'src');
    const files = await makeTree(src, { files: 200, bigFileBytes: 50 * 1024 * 1024 });
    expect(files.length).toBe(200);

    const up = await rclone(['copy', src, 'dav:tree']);
    expect(up.code, explain(up)).toBe(0);
    // The bytes really landed in the share's directory.
    expect(statSync(join(server.dataDir, 'tree', 'big', 'large file.bin')).size).toBe(50 * 1024 * 1024);
    await expectNoDifferences(src);

    // One deleted, one changed (new size, so a size-only comparison sees it too), one added in a new directory.
    const deleted = files.find((f) => f.startsWith('docs/sub dir/') && f.endsWith('plain.txt'))!;
    const changed = files.find((f) => f.startsWith('media/') && f.includes('café'))!;
    expect(deleted).toBeDefined();
    expect(changed).toBeDefined();
    unlinkSync(join(src, deleted));
    appendFileSync(join(src, changed), 'appended by the test\n');
    const added = 'new dir/ajouté — 新しい.txt';
    mkdirSync(join(src, 'new dir'));
    writeFileSync(join(src, added), 'a file that did not exist before the sync\n');

    const sync = await rclone(['sync', src, 'dav:tree']);
    expect(sync.code, explain(sync)).toBe(0);
    expect(existsSync(join(server.dataDir, 'tree', deleted))).toBe(false);
    expect(statSync(join(server.dataDir, 'tree', changed)).size).toBe(statSync(join(src, changed)).size);
    await expectNoDifferences(src);
    // The share's directory holds exactly the source tree: same names, same bytes, no leftovers.
    expect(await hashTree(join(server.dataDir, 'tree'), (n) => n === '.DAV')).toEqual(await hashTree(src));

    const down = join(tmp, 'down');
    const back = await rclone(['copy', 'dav:tree', down]);
    expect(back.code, explain(back)).toBe(0);
    const want = await hashTree(src);
    const got = await hashTree(down);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [rel, sha] of want) expect(got.get(rel), rel).toBe(sha);
    expect(got.has(added)).toBe(true);
    expect(got.has(deleted)).toBe(false);
  }, 600_000);
});
