/**
 * The browser UI's static assets (one script, one stylesheet, one icon), read once at startup.
 * The page links them with `?v=<hash of content>` so the server may cache them for a long time:
 * a new release changes the URL.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const UI_ASSET_PREFIX = '/.portico-ui/';

interface Asset {
  body: Buffer;
  type: string;
}

const FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

/**
 * Sent without indentation, blank lines and whole-line comments: a third less on the wire with
 * the sources kept readable. Safe for these files because none has a multi-line string, template
 * or a line that starts inside a block comment other than the leading ones removed here.
 */
export function compactSource(text: string): string {
  return text
    .replace(/^\s*\/\*[\s\S]*?\*\/\s*/, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('//'))
    .join('\n');
}

const assets = new Map<string, Asset>();
const versionHash = createHash('sha256');
for (const [name, type] of Object.entries(FILES)) {
  const raw = readFileSync(new URL(`./${name}`, import.meta.url));
  const body = name.endsWith('.svg') ? raw : Buffer.from(`${compactSource(raw.toString('utf8'))}\n`);
  assets.set(name, { body, type });
  versionHash.update(name).update(body);
}

/** Changes whenever any asset changes; appended to asset URLs as `?v=`. */
export const UI_ASSET_VERSION = versionHash.digest('hex').slice(0, 12);

/** `name` is the part of the URL path after UI_ASSET_PREFIX; a query string is ignored. */
export function serveUiAsset(name: string): { body: Buffer; type: string } | undefined {
  const q = name.indexOf('?');
  const key = q === -1 ? name : name.slice(0, q);
  // Only the fixed names above: the map lookup makes path traversal impossible by construction.
  return Object.hasOwn(FILES, key) ? assets.get(key) : undefined;
}

export function uiAssetUrl(name: string): string {
  return `${UI_ASSET_PREFIX}${name}?v=${UI_ASSET_VERSION}`;
}
