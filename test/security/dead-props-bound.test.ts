/**
 * Issue 15 §4, the gap left after the per-request PROPPATCH limits: a file's dead properties are
 * bounded across requests too (1,024 properties, 1 MiB), since every allprop PROPFIND renders them
 * in one piece. Past the bound a PROPPATCH fails whole with 507 and nothing of it is stored;
 * removing properties makes room again; xattrs keep their own bounds and do not count.
 */
import { describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';

const AUTH: [string, string] = ['alice', 'alice-pw'];
let s: DavStack;
useDav((x) => (s = x), { alice: 'alice-pw' });

function patch(from: number, n: number, value: string, remove = false): string {
  const props: string[] = [];
  for (let i = from; i < from + n; i++) props.push(remove ? `<x:p${i}/>` : `<x:p${i}>${value}</x:p${i}>`);
  const op = remove ? 'remove' : 'set';
  return `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:example:bound"><D:${op}><D:prop>${props.join('')}</D:prop></D:${op}></D:propertyupdate>`;
}

async function count(path: string): Promise<number> {
  const r = await dav(s, 'PROPFIND', path, { auth: AUTH, headers: { Depth: '0' }, body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>' });
  return (r.text.match(/urn:example:bound/g) ?? []).length;
}

describe('dead properties per file are bounded across requests', () => {
  it('1,024 properties fit; one more PROPPATCH fails whole with 507; a removal makes room', async () => {
    expect((await dav(s, 'PUT', '/mem/f', { auth: AUTH, body: 'x' })).status).toBe(201);
    for (let i = 0; i < 1024; i += 256) expect((await dav(s, 'PROPPATCH', '/mem/f', { auth: AUTH, body: patch(i, 256, 'v') })).status).toBe(207);
    const over = await dav(s, 'PROPPATCH', '/mem/f', { auth: AUTH, body: patch(1024, 2, 'v') });
    expect(over.status).toBe(507);
    // Nothing of the refused request was kept (the namespace declaration counts once per response).
    expect(await count('/mem/f')).toBeLessThanOrEqual(1025);
    const names = await dav(s, 'PROPFIND', '/mem/f', { auth: AUTH, headers: { Depth: '0' }, body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>' });
    expect(names.text).not.toContain('p1024');
    expect((await dav(s, 'PROPPATCH', '/mem/f', { auth: AUTH, body: patch(0, 2, '', true) })).status).toBe(207);
    expect((await dav(s, 'PROPPATCH', '/mem/f', { auth: AUTH, body: patch(1024, 2, 'v') })).status).toBe(207);
  });

  it('1 MiB of property bytes per file: large values hit the byte bound first', async () => {
    expect((await dav(s, 'PUT', '/mem/g', { auth: AUTH, body: 'x' })).status).toBe(201);
    const big = 'y'.repeat(60_000);
    let status = 207;
    let i = 0;
    for (; i < 40 && status === 207; i++) status = (await dav(s, 'PROPPATCH', '/mem/g', { auth: AUTH, body: patch(i, 1, big) })).status;
    expect(status).toBe(507);
    // 17 values of ~60 KB make ~1 MiB: the 18th is refused.
    expect(i).toBe(18);
  });
});
