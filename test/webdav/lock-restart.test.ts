/**
 * WebDAV locks survive a gateway restart: the token still guards the resource (423 without it),
 * still works in If headers, still shows in lockdiscovery, and UNLOCK still releases it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { dav, startDav, type DavStack } from './helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
let stack: DavStack | undefined;
let tmp: string | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const LOCKINFO = `<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>alice-laptop</D:owner></D:lockinfo>`;

describe('WebDAV locks across a restart', () => {
  it('keeps tokens valid after the gateway restarts', async () => {
    stack = await startDav();
    tmp = stack.tmp;
    await stack.addUser('alice', 'alice-pw');
    await stack.addUser('bob', 'bob-pw');
    expect((await dav(stack, 'PUT', '/disk/doc.txt', { auth: ALICE, body: 'v1' })).status).toBe(201);
    const lock = await dav(stack, 'LOCK', '/disk/doc.txt', { auth: ALICE, body: LOCKINFO, headers: { Timeout: 'Second-600', 'Content-Type': 'application/xml' } });
    expect(lock.status).toBe(200);
    const token = /<([^>]+)>/.exec(String(lock.headers['lock-token']))![1]!;
    await stack.stop({ keep: true });
    stack = undefined;

    stack = await startDav({ tmp });
    expect((await dav(stack, 'PUT', '/disk/doc.txt', { auth: ['bob', 'bob-pw'], body: 'intruder' })).status).toBe(423);
    expect((await dav(stack, 'PUT', '/disk/doc.txt', { auth: ALICE, body: 'no token' })).status).toBe(423);
    const pf = await dav(stack, 'PROPFIND', '/disk/doc.txt', {
      auth: ALICE,
      headers: { Depth: '0', 'Content-Type': 'application/xml' },
      body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>',
    });
    expect(pf.text).toContain(token);
    expect(pf.text).toContain('alice-laptop');
    const ok = await dav(stack, 'PUT', '/disk/doc.txt', { auth: ALICE, body: 'v2', headers: { If: `(<${token}>)` } });
    expect(ok.status).toBe(204);
    expect((await dav(stack, 'UNLOCK', '/disk/doc.txt', { auth: ALICE, headers: { 'Lock-Token': `<${token}>` } })).status).toBe(204);
    expect((await dav(stack, 'PUT', '/disk/doc.txt', { auth: ['bob', 'bob-pw'], body: 'bob now' })).status).toBe(204);
  });
});
