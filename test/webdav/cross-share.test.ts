/**
 * COPY and MOVE whose Destination is another share of the same server: data streamed between
 * backends (local disk, memory, memory in object-store mode), dead properties carried, rights
 * checked on both shares before anything is copied, locks honoured, Overwrite and 207 rules.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dav, startDav, type DavStack } from './helpers.ts';

let stack: DavStack;
/** A local share that alice may only read (seeded on disk before the gateway starts). */
const readDir = mkdtempSync(join(tmpdir(), 'portico-xshare-'));
const ALICE: [string, string] = ['alice', 'alice-pw'];
const BOB: [string, string] = ['bob', 'bob-pw'];
const big = Buffer.alloc(9 * 1024 * 1024 + 123);
for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;

beforeAll(async () => {
  mkdirSync(join(readDir, 'docs'));
  writeFileSync(join(readDir, 'docs', 'keep.txt'), 'stay here');
  stack = await startDav({
    shares: [
      { name: 'rdisk', source: readDir, access: [{ users: ['alice'], rights: ['read'] }] },
      { name: 'obj', source: 'memory:objectstore' },
      { name: 'ro', source: 'memory:', readOnly: true },
      { name: 'priv', source: 'memory:', access: [{ users: ['alice'], rights: ['read', 'write'] }] },
    ],
  });
  await stack.addUser('alice', 'alice-pw');
  await stack.addUser('bob', 'bob-pw');
});

afterAll(async () => {
  await stack?.stop();
  rmSync(readDir, { recursive: true, force: true });
});

async function put(path: string, body: string | Buffer, auth = ALICE): Promise<void> {
  expect((await dav(stack, 'PUT', path, { auth, body })).status).toBe(201);
}

async function get(path: string, auth = ALICE): Promise<{ status: number; body: Buffer }> {
  const r = await dav(stack, 'GET', path, { auth });
  return { status: r.status, body: r.body };
}

async function tree(root: string): Promise<void> {
  expect((await dav(stack, 'MKCOL', root, { auth: ALICE })).status).toBe(201);
  expect((await dav(stack, 'MKCOL', `${root}/sub`, { auth: ALICE })).status).toBe(201);
  expect((await dav(stack, 'MKCOL', `${root}/sub/empty`, { auth: ALICE })).status).toBe(201);
  await put(`${root}/a.txt`, 'alpha');
  await put(`${root}/sub/b.bin`, big);
  await put(`${root}/sub/%C3%A9t%C3%A9.txt`, 'été');
}

const PROPPATCH = `<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example:portico"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>`;

describe('COPY into another share', () => {
  it('copies a file from the local share into the memory share, keeping the source', async () => {
    await put('/disk/one.txt', 'hello across');
    const r = await dav(stack, 'COPY', '/disk/one.txt', { auth: ALICE, headers: { Destination: `${stack.origin}/mem/one-copy.txt` } });
    expect(r.status).toBe(201);
    expect(r.headers['location']).toBe('/mem/one-copy.txt');
    expect((await get('/mem/one-copy.txt')).body.toString()).toBe('hello across');
    expect((await get('/disk/one.txt')).body.toString()).toBe('hello across');
  });

  it('copies a tree with a 9 MiB file, an empty folder, a non-ASCII name and dead properties into an object store', async () => {
    await tree('/disk/t1');
    expect((await dav(stack, 'PROPPATCH', '/disk/t1/a.txt', { auth: ALICE, body: PROPPATCH })).status).toBe(207);
    const r = await dav(stack, 'COPY', '/disk/t1', { auth: ALICE, headers: { Destination: '/obj/t1copy' } });
    expect(r.status).toBe(201);
    expect((await get('/obj/t1copy/a.txt')).body.toString()).toBe('alpha');
    expect((await get('/obj/t1copy/sub/b.bin')).body.equals(big)).toBe(true);
    expect((await get('/obj/t1copy/sub/%C3%A9t%C3%A9.txt')).body.toString()).toBe('été');
    const pf = await dav(stack, 'PROPFIND', '/obj/t1copy/sub/empty', { auth: ALICE, headers: { Depth: '0' } });
    expect(pf.status).toBe(207);
    expect(pf.text).toContain('<D:collection/>');
    const props = await dav(stack, 'PROPFIND', '/obj/t1copy/a.txt', {
      auth: ALICE,
      headers: { Depth: '0' },
      body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:example:portico"><D:prop><Z:colour/></D:prop></D:propfind>',
    });
    expect(props.text).toMatch(/colour[^>]*>blue</);
  });

  it('copies with Depth 0 the collection alone', async () => {
    await tree('/mem/d0');
    expect((await dav(stack, 'COPY', '/mem/d0', { auth: ALICE, headers: { Destination: '/disk/d0', Depth: '0' } })).status).toBe(201);
    expect(existsSync(join(stack.diskDir, 'd0'))).toBe(true);
    expect(existsSync(join(stack.diskDir, 'd0', 'a.txt'))).toBe(false);
  });

  it('honours Overwrite: F (412) and T (204, the old destination replaced)', async () => {
    await put('/mem/ow.txt', 'new content');
    await put('/disk/ow.txt', 'old content that is longer');
    expect((await dav(stack, 'COPY', '/mem/ow.txt', { auth: ALICE, headers: { Destination: '/disk/ow.txt', Overwrite: 'F' } })).status).toBe(412);
    expect(readFileSync(join(stack.diskDir, 'ow.txt'), 'utf8')).toBe('old content that is longer');
    expect((await dav(stack, 'COPY', '/mem/ow.txt', { auth: ALICE, headers: { Destination: '/disk/ow.txt' } })).status).toBe(204);
    expect(readFileSync(join(stack.diskDir, 'ow.txt'), 'utf8')).toBe('new content');
  });

  it('answers 409 when the destination parent is missing and 403 into a read-only or forbidden share', async () => {
    await put('/mem/r.txt', 'r');
    expect((await dav(stack, 'COPY', '/mem/r.txt', { auth: ALICE, headers: { Destination: '/disk/no/such/r.txt' } })).status).toBe(409);
    expect((await dav(stack, 'COPY', '/mem/r.txt', { auth: ALICE, headers: { Destination: '/ro/r.txt' } })).status).toBe(403);
    expect((await dav(stack, 'COPY', '/mem/r.txt', { auth: BOB, headers: { Destination: '/priv/r.txt' } })).status).toBe(403);
    expect((await dav(stack, 'COPY', '/mem/r.txt', { auth: ALICE, headers: { Destination: '/nosuchshare/r.txt' } })).status).toBe(409);
    expect((await get('/priv/r.txt')).status).toBe(404);
  });

  it('does not let a user copy out of a share they cannot read', async () => {
    await put('/priv/secret.txt', 'secret');
    expect((await dav(stack, 'COPY', '/priv/secret.txt', { auth: BOB, headers: { Destination: '/mem/stolen.txt' } })).status).toBe(403);
    expect((await get('/mem/stolen.txt')).status).toBe(404);
  });
});

describe('MOVE into another share', () => {
  it('moves a tree from memory to the local disk: destination complete, source gone', async () => {
    await tree('/mem/mv');
    const r = await dav(stack, 'MOVE', '/mem/mv', { auth: ALICE, headers: { Destination: `${stack.origin}/disk/moved` } });
    expect(r.status).toBe(201);
    expect(readFileSync(join(stack.diskDir, 'moved', 'sub', 'b.bin')).equals(big)).toBe(true);
    expect(readFileSync(join(stack.diskDir, 'moved', 'a.txt'), 'utf8')).toBe('alpha');
    expect(existsSync(join(stack.diskDir, 'moved', 'sub', 'empty'))).toBe(true);
    expect((await dav(stack, 'PROPFIND', '/mem/mv', { auth: ALICE, headers: { Depth: '0' } })).status).toBe(404);
  });

  it('moves a file onto an existing file of another share (204)', async () => {
    await put('/obj/m1.txt', 'from the object store');
    await put('/mem/m1.txt', 'to be replaced');
    expect((await dav(stack, 'MOVE', '/obj/m1.txt', { auth: ALICE, headers: { Destination: '/mem/m1.txt' } })).status).toBe(204);
    expect((await get('/mem/m1.txt')).body.toString()).toBe('from the object store');
    expect((await get('/obj/m1.txt')).status).toBe(404);
  });

  it('refuses to move out of a share the user may only read, before copying anything', async () => {
    expect((await get('/rdisk/docs/keep.txt')).body.toString()).toBe('stay here');
    expect((await dav(stack, 'MOVE', '/rdisk/docs', { auth: ALICE, headers: { Destination: '/mem/docs-moved' } })).status).toBe(403);
    expect((await dav(stack, 'PROPFIND', '/mem/docs-moved', { auth: ALICE, headers: { Depth: '0' } })).status).toBe(404);
    expect(readFileSync(join(readDir, 'docs', 'keep.txt'), 'utf8')).toBe('stay here');
    // COPY out of it is allowed (read right).
    expect((await dav(stack, 'COPY', '/rdisk/docs', { auth: ALICE, headers: { Destination: '/mem/docs-copy' } })).status).toBe(201);
    expect((await get('/mem/docs-copy/keep.txt')).body.toString()).toBe('stay here');
  });

  it('answers 423 for a locked source without its token and copies nothing; with the token it moves', async () => {
    await put('/disk/locked.txt', 'locked data');
    const lockBody = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>';
    const l = await dav(stack, 'LOCK', '/disk/locked.txt', { auth: ALICE, body: lockBody });
    expect(l.status).toBe(200);
    const token = String(l.headers['lock-token']);
    expect((await dav(stack, 'MOVE', '/disk/locked.txt', { auth: ALICE, headers: { Destination: '/mem/locked.txt' } })).status).toBe(423);
    expect((await get('/mem/locked.txt')).status).toBe(404);
    expect((await dav(stack, 'MOVE', '/disk/locked.txt', { auth: ALICE, headers: { Destination: '/mem/locked.txt', If: `(${token})` } })).status).toBe(201);
    expect((await get('/mem/locked.txt')).body.toString()).toBe('locked data');
    expect(existsSync(join(stack.diskDir, 'locked.txt'))).toBe(false);
  });

  it('still answers 502 for a destination on another server', async () => {
    await put('/mem/x.txt', 'x');
    expect((await dav(stack, 'MOVE', '/mem/x.txt', { auth: ALICE, headers: { Destination: 'http://elsewhere.example/mem/y.txt' } })).status).toBe(502);
  });
});
