/**
 * curl smoke: authentication challenge, PROPFIND Depth 1 (a well-formed multistatus, parsed with the
 * project's XML parser, naming every child once), Range GETs (206 with Content-Range, suffix range,
 * 416), and conditional GETs (If-None-Match / If-Modified-Since -> 304, a changed file -> 200).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseXml, type XmlElement } from '../../protocols/webdav/xml.ts';
import { mustRun, startDavServer, tempDir, urlFor, type DavServer } from './helpers.ts';

let server: DavServer;
let tmp: string;

beforeAll(async () => {
  server = await startDavServer();
  tmp = tempDir('curl');
});

afterAll(async () => {
  await server?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface CurlResult {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

let n = 0;
/** curl with -D/-o files so headers and body are exact; never fails on an HTTP status. */
async function curl(args: string[], opts: { auth?: boolean } = {}): Promise<CurlResult> {
  const id = ++n;
  const hfile = join(tmp, `h${id}`);
  const bfile = join(tmp, `b${id}`);
  const auth = opts.auth === false ? [] : ['-u', `${server.user}:${server.pass}`];
  const r = await mustRun('curl', ['-s', '-S', '-D', hfile, '-o', bfile, '-w', '%{http_code}', ...auth, ...args], { timeoutMs: 60_000 });
  const headers = new Map<string, string>();
  // With several responses (100 Continue), the last block is the final one.
  const blocks = readFileSync(hfile, 'latin1').split(/\r\n\r\n/).filter((b) => b.trim() !== '');
  for (const line of (blocks.at(-1) ?? '').split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  let body: Buffer;
  try {
    body = readFileSync(bfile);
  } catch {
    body = Buffer.alloc(0);
  }
  return { status: Number(r.stdout), headers, body };
}

function children(e: XmlElement, local: string): XmlElement[] {
  return e.children.filter((c): c is XmlElement => typeof c !== 'string' && c.ns === 'DAV:' && c.local === local);
}

function text(e: XmlElement): string {
  return e.children.map((c) => (typeof c === 'string' ? c : text(c))).join('');
}

describe(`curl against ${process.env.WEBDAV_CLIENTS_TARGET ?? 'portico'}`, () => {
  const data = randomBytes(10_000);
  const names = ['data.bin', 'with space.txt', 'ünïcode ☃.txt'];

  it('asks for Basic credentials and refuses wrong ones', async () => {
    const anon = await curl([server.url], { auth: false });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Basic /i);
    const wrong = await curl(['-u', `${server.user}:not-the-password`, server.url], { auth: false });
    expect(wrong.status).toBe(401);
  });

  it('PROPFIND Depth 1 returns a well-formed multistatus naming every child once', async () => {
    const f = join(tmp, 'data.bin');
    writeFileSync(f, data);
    for (const name of names) expect((await curl(['-T', f, urlFor(server.url, name)])).status).toBe(201);
    expect((await curl(['-X', 'MKCOL', urlFor(server.url, 'a dir')])).status).toBe(201);

    const r = await curl(['-X', 'PROPFIND', '-H', 'Depth: 1', '-H', 'Content-Type: application/xml', '--data-binary', '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>', server.url]);
    expect(r.status).toBe(207);
    expect(r.headers.get('content-type')).toMatch(/xml/);
    const root = parseXml(r.body)!;
    expect(root).toBeDefined();
    expect([root.ns, root.local]).toEqual(['DAV:', 'multistatus']);
    const responses = children(root, 'response');
    const byHref = new Map<string, XmlElement>();
    for (const resp of responses) {
      const href = text(children(resp, 'href')[0]!);
      // Hrefs may be absolute URLs or absolute paths; compare decoded paths.
      const path = decodeURIComponent(href.replace(/^https?:\/\/[^/]+/, ''));
      expect(byHref.has(path), `duplicate href ${path}`).toBe(false);
      byHref.set(path, resp);
    }
    expect([...byHref.keys()].sort()).toEqual(['/share/', '/share/a dir/', ...names.map((n) => `/share/${n}`)].sort());
    for (const name of names) {
      const props = children(children(byHref.get(`/share/${name}`)!, 'propstat')[0]!, 'prop')[0]!;
      expect(text(children(props, 'getcontentlength')[0]!)).toBe(String(data.length));
      expect(children(children(props, 'resourcetype')[0]!, 'collection')).toHaveLength(0);
    }
    const dirProps = children(children(byHref.get('/share/a dir/')!, 'propstat')[0]!, 'prop')[0]!;
    expect(children(children(dirProps, 'resourcetype')[0]!, 'collection')).toHaveLength(1);
  });

  it('Range GET: a middle range, a suffix range, and an unsatisfiable one', async () => {
    const url = urlFor(server.url, 'data.bin');
    const mid = await curl(['-r', '100-199', url]);
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 100-199/${data.length}`);
    expect(mid.body.equals(data.subarray(100, 200))).toBe(true);

    const suffix = await curl(['-r', '-50', url]);
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals(data.subarray(data.length - 50))).toBe(true);

    const whole = await curl([url]);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect(whole.body.equals(data)).toBe(true);

    const bad = await curl(['-r', '20000-20010', url]);
    expect(bad.status).toBe(416);
    // RFC 9110 §15.5.17: SHOULD send `bytes */length` (Apache omits it, so only its form is checked).
    const cr = bad.headers.get('content-range');
    if (cr !== undefined) expect(cr).toBe(`bytes */${data.length}`);
  });

  it('conditional GET: 304 for the current ETag or date, 200 once the file changed', async () => {
    const url = urlFor(server.url, 'with space.txt');
    const first = await curl([url]);
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect(etag).toMatch(/^(W\/)?"[^"]+"$/);
    expect(Number.isNaN(Date.parse(lastModified))).toBe(false);

    const byEtag = await curl(['-H', `If-None-Match: ${etag}`, url]);
    expect(byEtag.status).toBe(304);
    expect(byEtag.body.length).toBe(0);
    const byDate = await curl(['-H', `If-Modified-Since: ${lastModified}`, url]);
    expect(byDate.status).toBe(304);

    const f = join(tmp, 'changed.txt');
    writeFileSync(f, 'changed content, another size\n');
    expect((await curl(['-T', f, url])).status).toBeLessThan(300);
    const after = await curl(['-H', `If-None-Match: ${etag}`, url]);
    expect(after.status).toBe(200);
    expect(after.body.toString()).toBe('changed content, another size\n');
    expect(after.headers.get('etag')).not.toBe(etag);
  });
});
