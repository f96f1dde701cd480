/**
 * WebDAV answers that the fast paths must leave unchanged: a GET opens first and takes its
 * attributes from the descriptor, a PUT without locks takes its checks from the writer's own
 * lookup. ETags must agree between PUT, GET and PROPFIND; refused requests must leave nothing.
 */
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEMP_PREFIX } from '../../backends/local/local-backend.ts';
import { dav, useDav, type DavStack } from './helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
let stack: DavStack;

useDav((s) => (stack = s), { alice: 'alice-pw' });

const temps = (): string[] => readdirSync(stack.diskDir).filter((n) => n.startsWith(TEMP_PREFIX));

function propfindEtag(xml: string): string | undefined {
  return /<D:getetag>([^<]*)<\/D:getetag>/.exec(xml)?.[1]?.replace(/&quot;/g, '"');
}

describe('fast paths keep their answers', () => {
  it('the ETag of a PUT is the one GET and PROPFIND report, for a new and a replaced file', async () => {
    for (const body of ['first', 'second, longer']) {
      const put = await dav(stack, 'PUT', '/disk/etag.txt', { auth: ALICE, body });
      expect([201, 204]).toContain(put.status);
      const get = await dav(stack, 'GET', '/disk/etag.txt', { auth: ALICE });
      expect(get.text).toBe(body);
      expect(get.headers.etag).toBe(put.headers.etag);
      const pf = await dav(stack, 'PROPFIND', '/disk/etag.txt', { auth: ALICE, headers: { Depth: '0' } });
      expect(propfindEtag(pf.text)).toBe(put.headers.etag);
      expect((await dav(stack, 'GET', '/disk/etag.txt', { auth: ALICE, headers: { 'If-None-Match': String(put.headers.etag) } })).status).toBe(304);
    }
  });

  it('a PUT refused by a precondition leaves the content and no temp file', async () => {
    expect((await dav(stack, 'PUT', '/disk/cond.txt', { auth: ALICE, body: 'keep' })).status).toBe(201);
    const r = await dav(stack, 'PUT', '/disk/cond.txt', { auth: ALICE, body: 'replace', headers: { 'If-Match': '"not-it"' } });
    expect(r.status).toBe(412);
    expect(readFileSync(join(stack.diskDir, 'cond.txt'), 'utf8')).toBe('keep');
    expect(temps()).toEqual([]);
    expect((await dav(stack, 'PUT', '/disk/nodir/x.txt', { auth: ALICE, body: 'x' })).status).toBe(409);
    mkdirSync(join(stack.diskDir, 'adir'), { recursive: true });
    const onDir = await dav(stack, 'PUT', '/disk/adir', { auth: ALICE, body: 'x' });
    expect(onDir.status).toBe(405);
    expect(onDir.headers.allow).toBeDefined();
    expect(temps()).toEqual([]);
  });

  it('GET of a directory lists it, of a symlink is refused, of a missing file is 404, HEAD has no body', async () => {
    mkdirSync(join(stack.diskDir, 'd'), { recursive: true });
    writeFileSync(join(stack.diskDir, 'd', 'in.txt'), 'inside');
    symlinkSync('in.txt', join(stack.diskDir, 'd', 'ln'));
    const list = await dav(stack, 'GET', '/disk/d/', { auth: ALICE });
    expect(list.status).toBe(200);
    expect(list.text.split('\n')).toContain('in.txt');
    expect((await dav(stack, 'GET', '/disk/d/ln', { auth: ALICE })).status).toBe(403);
    expect((await dav(stack, 'GET', '/disk/d/missing', { auth: ALICE })).status).toBe(404);
    const head = await dav(stack, 'HEAD', '/disk/d/in.txt', { auth: ALICE });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('6');
    expect(head.body.length).toBe(0);
    const range = await dav(stack, 'GET', '/disk/d/in.txt', { auth: ALICE, headers: { Range: 'bytes=2-3' } });
    expect(range.status).toBe(206);
    expect(range.text).toBe('si');
  });
});
