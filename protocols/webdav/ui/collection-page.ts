/**
 * The server-rendered HTML listing of a WebDAV collection. It is complete without JavaScript
 * (browse, breadcrumbs, download); app.js enhances it (sorting, local dates, upload, new folder,
 * rename, delete). The gateway sends the strict policy of page-policy.ts (the script and the
 * stylesheet allowed by a per-answer nonce, nothing else), so the page has no inline script, style
 * or event handler: all behaviour and looks come from the assets.
 */
import { uiAssetUrl } from './assets.ts';

export interface UiEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mtimeMs: number;
}

export interface CollectionPageOptions {
  share: string;
  /** Decoded path of the collection inside the share ('' or '/' for the share root). */
  path: string;
  /** URL path of this collection, ending with '/', percent-encoded, e.g. '/data/My%20Docs/'. */
  baseUrl: string;
  entries: UiEntry[];
  user: string;
  readOnly: boolean;
  /** The listing was cut short by the server's entry limit. */
  truncated?: boolean;
  /** The nonce of this answer's Content-Security-Policy (page-policy.ts), put on the script and stylesheet. */
  nonce?: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Safe both as element text and inside a double- or single-quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** One path segment for a URL: '#', '?', '%', '/' and everything non-ASCII are encoded. */
export function encodeSegment(name: string): string {
  return encodeURIComponent(name);
}

const UNITS = ['KB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** Binary multiples labelled the way file managers do (1 KB = 1024 bytes); app.js matches it. */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${bytes} B`;
  let v = bytes;
  let unit = '';
  for (const u of UNITS) {
    v /= 1024;
    unit = u;
    if (v < 1024) break;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v).toString()} ${unit}`;
}

/** UTC, unambiguous without JavaScript; app.js rewrites it in the reader's local time zone. */
export function formatDate(mtimeMs: number): { iso: string; text: string } | undefined {
  if (!Number.isFinite(mtimeMs) || mtimeMs <= 0) return undefined;
  const d = new Date(mtimeMs);
  if (Number.isNaN(d.getTime())) return undefined;
  const iso = d.toISOString();
  return { iso, text: `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` };
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

function compareEntries(a: UiEntry, b: UiEntry): number {
  const da = a.type === 'dir' ? 0 : 1;
  const db = b.type === 'dir' ? 0 : 1;
  return da - db || collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Folders first, then natural name order (the order app.js uses for "Name, ascending"). */
export function sortEntries(entries: readonly UiEntry[]): UiEntry[] {
  return [...entries].sort(compareEntries);
}

/**
 * Slices of work for a caller that must not hold the event loop: `due()` when its slice is used up,
 * `yield()` to let other work run (protocols/webdav/methods/propfind.ts `Slicer`).
 */
export interface WorkSlices {
  due(): boolean;
  yield(): Promise<void>;
}

/** Sorted runs of this many entries are merged (each run's sort is well under a millisecond). */
const SORT_RUN = 256;

/**
 * sortEntries' order, by a merge sort that yields whenever the slice is used up: the collator's
 * compare costs ~1 µs, so sorting 50,000 names in one piece held the loop for 50-100 ms.
 */
export async function sortEntriesInSlices(entries: readonly UiEntry[], slices: WorkSlices): Promise<UiEntry[]> {
  const n = entries.length;
  let a = [...entries];
  for (let lo = 0; lo < n; lo += SORT_RUN) {
    const run = a.slice(lo, lo + SORT_RUN).sort(compareEntries);
    for (let i = 0; i < run.length; i++) a[lo + i] = run[i]!;
    if (slices.due()) await slices.yield();
  }
  let b = new Array<UiEntry>(n);
  for (let width = SORT_RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      for (let k = lo; k < hi; k++) {
        // Ties take the left run: stable, like Array.prototype.sort.
        if (i < mid && (j >= hi || compareEntries(a[i]!, a[j]!) <= 0)) b[k] = a[i++]!;
        else b[k] = a[j++]!;
        if ((k & 255) === 255 && slices.due()) await slices.yield();
      }
    }
    [a, b] = [b, a];
  }
  return a;
}

interface Crumb {
  label: string;
  href: string;
}

/** Label of the gateway's root listing (GET / lists the shares the user can see). */
const SHARES = 'Shares';

/**
 * Breadcrumb links come from baseUrl itself (the server's own encoding, and any mount prefix it
 * has), one level per segment of `path`; labels come from the decoded `path`. The first crumb is
 * the list of shares, one level above the share. An empty `share` is that list itself.
 */
function breadcrumbs(share: string, path: string, baseUrl: string): Crumb[] {
  const names = share === '' ? [] : path.split('/').filter((s) => s !== '');
  const segs = baseUrl.split('/').filter((s) => s !== '');
  if (share === '') return [{ label: SHARES, href: `/${segs.map((s) => `${s}/`).join('')}` }];
  let rootSegs: string[];
  let pathSegs: string[];
  if (segs.length > names.length) {
    rootSegs = segs.slice(0, segs.length - names.length);
    pathSegs = segs.slice(segs.length - names.length);
  } else {
    rootSegs = [encodeSegment(share)];
    pathSegs = names.map(encodeSegment);
  }
  const dirUrl = (parts: string[]): string => `/${parts.map((s) => `${s}/`).join('')}`;
  const crumbs: Crumb[] = [
    { label: SHARES, href: dirUrl(rootSegs.slice(0, -1)) },
    { label: share, href: dirUrl(rootSegs) },
  ];
  names.forEach((label, i) => crumbs.push({ label, href: dirUrl([...rootSegs, ...pathSegs.slice(0, i + 1)]) }));
  return crumbs;
}

/** One member's row (collectionPageParts' head and tail go around the rows, in sortEntries' order). */
export function renderRow(e: UiEntry, baseUrl: string): string {
  const isDir = e.type === 'dir';
  const name = escapeHtml(e.name);
  const href = escapeHtml(baseUrl + encodeSegment(e.name) + (isDir ? '/' : ''));
  const icon = isDir ? 'i-dir' : e.type === 'symlink' ? 'i-link' : 'i-file';
  const size = isDir ? 0 : Math.max(0, e.size);
  const date = formatDate(e.mtimeMs);
  const sizeCell = isDir ? '<td class="s"><span class="vh">Folder</span></td>' : `<td class="s" title="${size.toLocaleString('en')} byte${size === 1 ? '' : 's'}">${formatSize(size)}</td>`;
  const dateCell = date ? `<td class="m"><time datetime="${date.iso}">${date.text}</time></td>` : '<td class="m"></td>';
  const download = isDir ? '' : `<a class="btn" href="${href}" download="${name}" aria-label="Download ${name}">Download</a>`;
  return (
    `<tr data-name="${name}" data-type="${e.type}" data-size="${size}" data-mtime="${date ? Math.trunc(e.mtimeMs) : 0}">` +
    `<th scope="row" class="n"><a class="${icon}" href="${href}">${name}</a></th>${sizeCell}${dateCell}<td class="a">${download}</td></tr>\n`
  );
}

function summary(entries: readonly UiEntry[]): string {
  let dirs = 0;
  let files = 0;
  let bytes = 0;
  for (const e of entries) {
    if (e.type === 'dir') dirs++;
    else {
      files++;
      bytes += Math.max(0, e.size);
    }
  }
  const plural = (n: number, w: string): string => `${n.toLocaleString('en')} ${w}${n === 1 ? '' : 's'}`;
  return `${plural(dirs, 'folder')}, ${plural(files, 'file')}${files > 0 ? ` (${formatSize(bytes)})` : ''}`;
}

/** The whole page in one string (small listings, tests; the gateway streams collectionPageParts). */
export function renderCollectionPage(opts: CollectionPageOptions): string {
  const { head, tail } = collectionPageParts(opts);
  return head + sortEntries(opts.entries).map((e) => renderRow(e, opts.baseUrl)).join('') + tail;
}

/**
 * The page around its rows, for an answer streamed in slices: `head`, then `renderRow` of each entry
 * in sortEntries' order, then `tail`. `entries` gives the count, the summary and the empty notice.
 */
export function collectionPageParts(opts: CollectionPageOptions): { head: string; tail: string } {
  const { share, path, baseUrl, entries, user, readOnly } = opts;
  const nonce = opts.nonce === undefined ? '' : ` nonce="${escapeHtml(opts.nonce)}"`;
  const crumbs = breadcrumbs(share, path, baseUrl);
  const here = crumbs[crumbs.length - 1]!;
  const parent = crumbs.length > 1 ? crumbs[crumbs.length - 2] : undefined;
  const title = escapeHtml(here.label);
  const crumbHtml = crumbs
    .map((c, i) => `<li><a href="${escapeHtml(c.href)}"${i === crumbs.length - 1 ? ' aria-current="page"' : ''}>${escapeHtml(c.label)}</a></li>`)
    .join('');
  const upLabel = crumbs.length === 2 ? 'All shares' : 'Parent folder';
  const upRow = parent ? `<tr class="up"><td colspan="4"><a class="i-up" href="${escapeHtml(parent.href)}">${upLabel}</a></td></tr>\n` : '';
  const emptyRow = entries.length === 0 ? '<tr class="empty"><td colspan="4">This folder is empty.</td></tr>\n' : '';
  const truncated = opts.truncated
    ? `<p class="notice" id="truncated">This folder has more entries than the server lists at once; only the first ${entries.length.toLocaleString('en')} are shown.</p>`
    : '';
  const tools = readOnly
    ? ''
    : `<div class="tools" id="tools" hidden>
<button type="button" class="btn primary" id="upload-files">Upload files</button>
<button type="button" class="btn" id="upload-folder">Upload folder</button>
<input type="file" id="file-input" multiple hidden>
<input type="file" id="folder-input" webkitdirectory multiple hidden>
<form id="mkdir-form" class="mkdir"><label for="mkdir-name">New folder</label><input id="mkdir-name" name="name" required autocomplete="off" spellcheck="false" maxlength="255"><button type="submit" class="btn">Create</button></form>
<p class="hint">Or drop files and folders anywhere on this page.</p>
</div>
<section id="uploads" class="uploads" hidden aria-labelledby="uploads-title"></section>
<div id="drop" class="drop" hidden><p>Drop to upload to <b>${title}</b></p></div>
<noscript><p class="notice">Turn on JavaScript to upload, create folders, rename and delete.</p></noscript>
`;
  const head = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Portico</title>
<link rel="icon" href="${uiAssetUrl('icon.svg')}" type="image/svg+xml">
<link rel="stylesheet"${nonce} href="${uiAssetUrl('style.css')}">
<script${nonce} src="${uiAssetUrl('app.js')}"></script>
</head>
<body data-base="${escapeHtml(baseUrl)}" data-readonly="${readOnly ? 'true' : 'false'}">
<header class="top"><span class="brand">Portico</span><span class="who">Signed in as <b>${escapeHtml(user)}</b>${readOnly ? ' <span class="ro">Read-only</span>' : ''}</span></header>
<main>
${crumbs.length > 1 ? `<nav class="crumbs" aria-label="Breadcrumb"><ol>${crumbHtml}</ol></nav>\n` : ''}<h1 id="title" tabindex="-1">${title}</h1>
${tools}<div id="messages" class="messages" aria-live="polite"></div>
${truncated}<table class="listing" id="listing">
<caption class="vh">Contents of ${title}</caption>
<thead><tr><th scope="col" class="n" data-key="name" aria-sort="ascending">Name</th><th scope="col" class="s" data-key="size">Size</th><th scope="col" class="m" data-key="mtime">Modified</th><th scope="col" class="a"><span class="vh">Actions</span></th></tr></thead>
<tbody>
${upRow}`;
  const tail = `${emptyRow}</tbody>
</table>
<p class="summary" id="summary">${summary(entries)}</p>
</main>
</body>
</html>
`;
  return { head, tail };
}
