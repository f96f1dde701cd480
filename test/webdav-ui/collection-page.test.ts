/** renderCollectionPage and serveUiAsset without a browser: escaping, encoding, CSP-safety. */
import { describe, expect, it } from 'vitest';
import { UI_ASSET_PREFIX, renderCollectionPage, serveUiAsset, type UiEntry } from '../../protocols/webdav/ui/index.ts';
import { compactSource } from '../../protocols/webdav/ui/assets.ts';
import { formatSize, sortEntries } from '../../protocols/webdav/ui/collection-page.ts';

const T = Date.UTC(2024, 0, 2, 13, 45, 10);
const file = (name: string, size = 1): UiEntry => ({ name, type: 'file', size, mtimeMs: T });
const dir = (name: string): UiEntry => ({ name, type: 'dir', size: 4096, mtimeMs: T });

function page(entries: UiEntry[], extra: Partial<Parameters<typeof renderCollectionPage>[0]> = {}): string {
  return renderCollectionPage({ share: 'data', path: '', baseUrl: '/data/', entries, user: 'alice', readOnly: false, ...extra });
}

/** The attribute values of every `<a href>` in the page, in order. */
function hrefs(html: string): string[] {
  return [...html.matchAll(/<a [^>]*?href="([^"]*)"/g)].map((m) => m[1]!);
}

/**
 * Every tag with its attribute names. The page double-quotes every attribute value and escapes
 * quotes inside them, so this strict tokenizer must consume every '<': a leftover '<' would be
 * markup that came from a name.
 */
function tags(html: string): { name: string; attrs: string[] }[] {
  const out: { name: string; attrs: string[] }[] = [];
  const rest = html.replace(/<!doctype html>|<\/[a-z0-9]+>|<([a-z0-9]+)((?:\s+[a-z-]+(?:="[^"<>]*")?)*)\s*>/g, (_m, name: string | undefined, attrs: string | undefined) => {
    if (name) out.push({ name, attrs: [...(attrs ?? '').matchAll(/\s+([a-z-]+)(?:="[^"]*")?/g)].map((a) => a[1]!) });
    return '';
  });
  expect(rest).not.toContain('<');
  expect(rest).not.toContain('>');
  return out;
}

describe('renderCollectionPage escaping and encoding', () => {
  const hostile = ['<script>alert(1)</script>', `a"b'c`, 'Tom & Jerry', '100%', '#hash', 'what?', '日本 é', '&amp;'];
  const html = page([...hostile.map((n) => file(n)), dir('<b>dir</b>')]);

  it('never emits a name as markup', () => {
    expect(tags(html).map((t) => t.name).filter((n) => n === 'script' || n === 'b' || n === 'style')).toEqual(['script', 'b', 'b']); // app.js, the user name, the drop hint
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<b>dir');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('data-name="a&quot;b&#39;c"');
    expect(html).toContain('>Tom &amp; Jerry</a>');
    expect(html).toContain('>&amp;amp;</a>');
    expect(html).toContain('>日本 é</a>');
    // Every quote inside an attribute value is escaped, so no attribute can be broken out of.
    for (const m of html.matchAll(/ (?:data-name|download|aria-label|title)="([^"]*)"/g)) expect(m[1]).not.toMatch(/[<>']/);
  });

  it('percent-encodes each segment of every link, including % # ? and non-ASCII', () => {
    const links = hrefs(html);
    for (const n of hostile) expect(links).toContain(`/data/${encodeURIComponent(n).replace(/'/g, '&#39;')}`);
    expect(links).toContain('/data/100%25');
    expect(links).toContain('/data/%23hash');
    expect(links).toContain('/data/what%3F');
    expect(links).toContain('/data/%E6%97%A5%E6%9C%AC%20%C3%A9');
    expect(links).toContain('/data/%3Cb%3Edir%3C%2Fb%3E/'); // folders end with '/'
    for (const l of links) expect(l).toMatch(/^\/[A-Za-z0-9\-._~%!*()/&#;]*$/);
  });

  it('escapes the share, path, user and baseUrl too', () => {
    const h = renderCollectionPage({ share: 'S&<x>', path: '/a"b/', baseUrl: '/S%26%3Cx%3E/a%22b/', entries: [], user: '<u>&"', readOnly: true });
    expect(h).toContain('<title>a&quot;b · Portico</title>');
    expect(h).toContain('<b>&lt;u&gt;&amp;&quot;</b>');
    expect(h).toContain('data-base="/S%26%3Cx%3E/a%22b/"');
    expect(h).toContain('<a href="/S%26%3Cx%3E/">S&amp;&lt;x&gt;</a>');
    expect(h).not.toMatch(/<u>|<x>/);
  });

  it('has no inline script, style or event handler (CSP default-src self)', () => {
    const h = page([file('x" onmouseover="alert(1)'), file('<style>')]);
    expect(h.match(/<script[^>]*>/g)).toEqual([expect.stringMatching(/^<script src="\/\.portico-ui\/app\.js\?v=[0-9a-f]{12}">$/)]);
    expect(h).not.toMatch(/<style/i);
    const attrs = new Set<string>();
    for (const tag of tags(h)) for (const a of tag.attrs) attrs.add(a);
    expect([...attrs].filter((a) => a.startsWith('on') || a === 'style')).toEqual([]);
    expect(h).not.toMatch(/(?:src|href)="(?:https?:)?\/\//); // nothing from another origin
  });
});

describe('renderCollectionPage content', () => {
  it('builds breadcrumbs from baseUrl, keeping a mount prefix and the server encoding', () => {
    const h = renderCollectionPage({ share: 'data', path: '/My Docs/a&b/', baseUrl: '/dav/data/My%20Docs/a%26b/', entries: [], user: 'u', readOnly: false });
    const nav = /<nav class="crumbs"[^>]*>(.*?)<\/nav>/.exec(h)![1]!;
    expect(hrefs(nav)).toEqual(['/dav/', '/dav/data/', '/dav/data/My%20Docs/', '/dav/data/My%20Docs/a%26b/']);
    expect([...nav.matchAll(/>([^<]+)<\/a>/g)].map((m) => m[1])).toEqual(['Shares', 'data', 'My Docs', 'a&amp;b']);
    expect(nav).toContain('aria-current="page">a&amp;b</a>');
    expect(h).toContain('<a class="i-up" href="/dav/data/My%20Docs/">Parent folder</a>');
    expect(h).toContain('<h1 id="title" tabindex="-1">a&amp;b</h1>');
  });

  it('links the share root up to the list of shares', () => {
    const h = page([]);
    const nav = /<nav class="crumbs"[^>]*>(.*?)<\/nav>/.exec(h)![1]!;
    expect(hrefs(nav)).toEqual(['/', '/data/']);
    expect(h).toContain('<a class="i-up" href="/">All shares</a>');
    expect(h).toContain('This folder is empty.');
    expect(h).toContain('0 folders, 0 files');
  });

  it('renders the list of shares (empty share name) without breadcrumbs or parent', () => {
    const h = renderCollectionPage({ share: '', path: '/', baseUrl: '/', entries: [dir('data'), dir('B & C')], user: 'u', readOnly: true });
    expect(h).toContain('<h1 id="title" tabindex="-1">Shares</h1>');
    expect(h).not.toContain('class="crumbs"');
    expect(h).not.toContain('i-up');
    expect(hrefs(h)).toEqual(['/B%20%26%20C/', '/data/']);
  });

  it('falls back to encoding the path itself when baseUrl is too short for it', () => {
    const h = renderCollectionPage({ share: 'd', path: '/x y/z', baseUrl: '/', entries: [], user: 'u', readOnly: true });
    expect(hrefs(/<nav class="crumbs"[^>]*>(.*?)<\/nav>/.exec(h)![1]!)).toEqual(['/', '/d/', '/d/x%20y/', '/d/x%20y/z/']);
  });

  it('lists folders first in natural order with sizes, UTC dates and download links', () => {
    const h = page([file('b10', 5 * 1024 * 1024 + 123), file('b2', 1023), dir('zeta'), file('A', 0)]);
    expect([...h.matchAll(/data-name="([^"]*)"/g)].map((m) => m[1])).toEqual(['zeta', 'A', 'b2', 'b10']);
    expect(h).toContain('<td class="s" title="5,243,003 bytes">5.0 MB</td>');
    expect(h).toContain('<td class="s" title="1,023 bytes">1023 B</td>');
    expect(h).toContain('<time datetime="2024-01-02T13:45:10.000Z">2024-01-02 13:45 UTC</time>');
    expect(h).toContain('<a class="btn" href="/data/b2" download="b2" aria-label="Download b2">Download</a>');
    expect(h).not.toContain('download="zeta"');
    expect(h).toContain('1 folder, 3 files (5.0 MB)');
  });

  it('hides write controls when read-only and says so', () => {
    const ro = page([file('a')], { readOnly: true });
    expect(ro).not.toContain('id="tools"');
    expect(ro).not.toContain('<input type="file"');
    expect(ro).toContain('data-readonly="true"');
    expect(ro).toContain('<span class="ro">Read-only</span>');
    const rw = page([file('a')]);
    expect(rw).toContain('<div class="tools" id="tools" hidden>');
    expect(rw).toContain('<input type="file" id="file-input" multiple hidden>');
    expect(rw).toContain('data-readonly="false"');
  });

  it('says when the listing was truncated', () => {
    expect(page([file('a'), file('b')], { truncated: true })).toContain('only the first 2 are shown');
    expect(page([file('a')])).not.toContain('id="truncated"');
  });

  it('survives odd numbers', () => {
    const h = page([{ name: 'x', type: 'symlink', size: -1, mtimeMs: Number.NaN }]);
    expect(h).toContain('<a class="i-link" href="/data/x">x</a>');
    expect(h).toContain('<td class="m"></td>');
  });
});

describe('helpers', () => {
  it('formats sizes like a file manager', () => {
    expect([0, 1023, 1024, 1536, 10 * 1024, 1024 ** 2 - 1, 5 * 1024 ** 3].map(formatSize)).toEqual(['0 B', '1023 B', '1.0 KB', '1.5 KB', '10 KB', '1024 KB', '5.0 GB']);
  });

  it('sorts folders first, case-insensitive and numeric', () => {
    expect(sortEntries([file('b10'), file('B2'), dir('z'), file('a')]).map((e) => e.name)).toEqual(['z', 'a', 'B2', 'b10']);
  });
});

describe('serveUiAsset', () => {
  it('serves the three assets with their types, ignoring the version query', () => {
    expect(UI_ASSET_PREFIX).toBe('/.portico-ui/');
    expect(serveUiAsset('app.js?v=123')?.type).toBe('text/javascript; charset=utf-8');
    expect(serveUiAsset('style.css')?.type).toBe('text/css; charset=utf-8');
    expect(serveUiAsset('icon.svg')?.type).toBe('image/svg+xml');
    expect(serveUiAsset('app.js')!.body.toString()).toContain("classList.add('js')");
  });

  it('serves nothing else', () => {
    for (const bad of ['', 'index.ts', '../index.ts', './app.js', 'app.js/', '%61pp.js', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(serveUiAsset(bad)).toBeUndefined();
    }
  });

  it('keeps page and assets small', () => {
    const total = ['app.js', 'style.css', 'icon.svg'].reduce((n, a) => n + serveUiAsset(a)!.body.length, 0) + Buffer.byteLength(page([file('a'), dir('b')]));
    expect(total).toBeLessThan(30_000);
  });

  it('compacts sources without touching code', () => {
    expect(compactSource('/* head\n * more */\nconst a = 1; // keep\n\n    // drop\n  if (a) {\n    f("//x");\n  }\n')).toBe('const a = 1; // keep\nif (a) {\nf("//x");\n}');
  });
});
