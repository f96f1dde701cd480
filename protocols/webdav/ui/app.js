/* Portico WebDAV browser UI: progressive enhancement of the server-rendered listing.
 * Plain ES2020, no dependencies. Loaded as a blocking script in <head> so the `js` class is set
 * before first paint; everything else waits for the DOM. The page is served with a strict
 * Content-Security-Policy (ui/page-policy.ts: this script and the stylesheet by nonce, fetch and
 * XHR to the gateway only): no inline handlers, no style attributes, no eval. */
(() => {
  'use strict';
  document.documentElement.classList.add('js');

  // Shown after "STATUS Reason —". Wording per operation where the same status means different things.
  const REASONS = {
    400: 'The server did not accept the request',
    401: 'You are not signed in any more; reload the page to sign in again',
    403: 'You do not have write access',
    404: 'It no longer exists; the folder may have changed',
    405: 'That is not allowed here',
    409: 'Folder no longer exists',
    412: 'A file with that name exists',
    413: 'The file is too large for the server',
    423: 'Locked: someone else is using it',
    500: 'The server failed; try again later',
    502: 'The destination is not on this server',
    503: 'The server is busy; try again later',
    507: 'No space left',
  };
  const PARALLEL = 3;
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  const byId = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const e = Object.assign(document.createElement(tag), props || {});
    e.append(...children);
    return e;
  };
  const q = (s) => `“${s}”`;
  const ok = (status) => status >= 200 && status < 300 && status !== 207;

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    const units = ['KB', 'MB', 'GB', 'TB', 'PB', 'EB'];
    let v = bytes;
    let unit = '';
    for (const u of units) {
      v /= 1024;
      unit = u;
      if (v < 1024) break;
    }
    return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${unit}`;
  }

  /** "403 Forbidden — You do not have write access" */
  function reason(status, statusText, overrides) {
    if (status === 0) return 'the server could not be reached (network error)';
    const why = (overrides && overrides[status]) || REASONS[status] || '';
    return `${status}${statusText ? ` ${statusText}` : ''}${why ? ` — ${why}` : ''}`;
  }

  function start() {
    const body = document.body;
    const table = byId('listing');
    if (!table) return;
    const base = body.dataset.base || location.pathname;
    const readOnly = body.dataset.readonly !== 'false';
    const messages = byId('messages');
    const urlOf = (rel, dir) => base + rel.split('/').map(encodeURIComponent).join('/') + (dir ? '/' : '');
    const dataRows = () => [...table.tBodies[0].rows].filter((r) => r.dataset.name !== undefined);

    function say(text, kind) {
      const close = el('button', { type: 'button', textContent: '×', title: 'Dismiss' });
      close.setAttribute('aria-label', 'Dismiss message');
      const box = el('div', { className: `msg ${kind || ''}` }, el('span', { textContent: text }), close);
      close.addEventListener('click', () => box.remove());
      messages.append(box);
      while (messages.children.length > 6) messages.firstElementChild.remove();
      if (kind === 'ok') setTimeout(() => box.remove(), 8000);
    }

    function badName(name) {
      if (name === '') return 'Enter a name.';
      if (name === '.' || name === '..') return `${q(name)} is not a valid name.`;
      if (name.includes('/')) return 'A name cannot contain “/”.';
      return '';
    }

    async function send(method, url, headers) {
      try {
        const r = await fetch(url, { method, headers, credentials: 'same-origin', cache: 'no-store' });
        return { status: r.status, statusText: r.statusText };
      } catch {
        return { status: 0, statusText: '' };
      }
    }

    // --- sorting and local dates -------------------------------------------------------------
    let sortKey = 'name';
    let sortDir = 1;
    try {
      const saved = JSON.parse(localStorage.getItem('portico.sort') || 'null');
      if (saved && ['name', 'size', 'mtime'].includes(saved.key)) [sortKey, sortDir] = [saved.key, saved.dir === -1 ? -1 : 1];
    } catch {
      // storage disabled: default order
    }

    function applySort() {
      const rows = dataRows();
      rows.sort((a, b) => {
        const folders = (a.dataset.type === 'dir' ? 0 : 1) - (b.dataset.type === 'dir' ? 0 : 1);
        if (folders) return folders; // folders stay first in both directions
        let c = 0;
        if (sortKey !== 'name') c = Number(a.dataset[sortKey]) - Number(b.dataset[sortKey]);
        return (c || collator.compare(a.dataset.name, b.dataset.name)) * sortDir;
      });
      table.tBodies[0].append(...rows);
      for (const th of table.tHead.rows[0].cells) {
        if (!th.dataset.key) continue;
        if (th.dataset.key === sortKey) th.setAttribute('aria-sort', sortDir === 1 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
      }
    }

    for (const th of table.tHead.rows[0].cells) {
      const key = th.dataset.key;
      if (!key) continue;
      const b = el('button', { type: 'button', className: 'sort', textContent: th.textContent });
      th.replaceChildren(b);
      b.addEventListener('click', () => {
        if (sortKey === key) sortDir = -sortDir;
        else [sortKey, sortDir] = [key, key === 'name' ? 1 : -1]; // biggest and newest first
        try {
          localStorage.setItem('portico.sort', JSON.stringify({ key: sortKey, dir: sortDir }));
        } catch {
          // storage disabled: the order lasts until reload
        }
        applySort();
      });
    }

    function enhanceRows() {
      for (const t of table.querySelectorAll('time[datetime]')) {
        const d = new Date(t.dateTime);
        if (Number.isNaN(d.getTime())) continue;
        t.textContent = dateFmt.format(d);
        t.title = d.toLocaleString();
      }
      if (readOnly) return;
      for (const row of dataRows()) {
        const cell = row.querySelector('td.a');
        if (!cell || cell.querySelector('[data-act]')) continue;
        for (const [act, label] of [['rename', 'Rename'], ['delete', 'Delete']]) {
          const b = el('button', { type: 'button', className: act === 'delete' ? 'btn danger' : 'btn', textContent: label });
          b.dataset.act = act;
          b.setAttribute('aria-label', `${label} ${row.dataset.name}`);
          cell.append(b);
        }
      }
    }

    /** Re-reads this collection's HTML and swaps in the new rows, keeping messages and uploads. */
    async function refresh(focusName) {
      let res;
      try {
        res = await fetch(base, { headers: { Accept: 'text/html' }, credentials: 'same-origin', cache: 'no-store' });
      } catch {
        res = undefined;
      }
      if (!res || !res.ok) {
        say(`Could not refresh the listing: ${reason(res ? res.status : 0, res ? res.statusText : '')}.`, 'err');
        return;
      }
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const tbody = doc.querySelector('#listing tbody');
      if (!tbody) return location.reload();
      const hadFocus = table.tBodies[0].contains(document.activeElement);
      table.tBodies[0].replaceWith(document.adoptNode(tbody));
      for (const id of ['summary', 'truncated']) {
        const now = byId(id);
        const next = doc.getElementById(id);
        if (now && next) now.replaceWith(document.adoptNode(next));
        else if (now) now.remove();
        else if (next) table.before(document.adoptNode(next));
      }
      enhanceRows();
      applySort();
      const target = focusName !== undefined && dataRows().find((r) => r.dataset.name === focusName);
      if (target) target.querySelector('th a').focus();
      else if (hadFocus) byId('title').focus();
    }

    enhanceRows();
    applySort();
    if (readOnly) {
      // Without this a dropped file would replace the page with the local file.
      document.addEventListener('dragover', (e) => e.preventDefault());
      document.addEventListener('drop', (e) => {
        e.preventDefault();
        say('This folder is read-only: you cannot upload here.', 'err');
      });
      return;
    }
    byId('tools').hidden = false;

    // --- new folder, rename, delete ----------------------------------------------------------
    const mkdirForm = byId('mkdir-form');
    const mkdirName = byId('mkdir-name');
    mkdirForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = mkdirName.value.trim();
      const bad = badName(name);
      if (bad) return say(bad, 'err');
      const r = await send('MKCOL', urlOf(name, true));
      if (ok(r.status)) {
        mkdirName.value = '';
        say(`Created folder ${q(name)}.`, 'ok');
        await refresh(name);
      } else {
        say(`Creating folder ${q(name)} failed: ${reason(r.status, r.statusText, { 405: 'A file or folder with that name already exists' })}.`, 'err');
      }
    });

    table.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-act]');
      if (!b) return;
      const row = b.closest('tr');
      if (b.dataset.act === 'rename') startRename(row, b);
      else remove(row);
    });

    function startRename(row, button) {
      const cell = row.querySelector('th');
      if (cell.querySelector('form')) return;
      const link = cell.querySelector('a');
      const old = row.dataset.name;
      const dir = row.dataset.type === 'dir';
      const input = el('input', { type: 'text', value: old, required: true, spellcheck: false, autocomplete: 'off' });
      input.setAttribute('aria-label', `New name for ${old}`);
      const save = el('button', { type: 'submit', className: 'btn primary', textContent: 'Save' });
      const cancel = el('button', { type: 'button', className: 'btn', textContent: 'Cancel' });
      const form = el('form', { className: 'rename' }, input, save, cancel);
      const close = () => {
        form.remove();
        link.hidden = false;
        button.focus();
      };
      link.hidden = true;
      cell.append(form);
      input.focus();
      const dot = old.lastIndexOf('.');
      input.setSelectionRange(0, !dir && dot > 0 ? dot : old.length); // keep the extension
      cancel.addEventListener('click', close);
      form.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          close();
        }
      });
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const name = input.value.trim();
        if (name === old) return close();
        const bad = badName(name);
        if (bad) return say(bad, 'err');
        save.disabled = cancel.disabled = true;
        // RFC 4918 §10.3: Destination is an absolute URI; Overwrite: F so a rename never replaces.
        const r = await send('MOVE', urlOf(old, dir), { Destination: new URL(urlOf(name, dir), location.href).href, Overwrite: 'F' });
        if (ok(r.status)) {
          say(`Renamed ${q(old)} to ${q(name)}.`, 'ok');
          await refresh(name);
        } else {
          save.disabled = cancel.disabled = false;
          say(`Renaming ${q(old)} to ${q(name)} failed: ${reason(r.status, r.statusText, { 412: 'A file with that name exists', 409: 'The folder no longer exists' })}.`, 'err');
          input.focus();
        }
      });
    }

    async function remove(row) {
      const name = row.dataset.name;
      const dir = row.dataset.type === 'dir';
      if (!confirm(dir ? `Delete the folder ${q(name)} and everything in it?` : `Delete ${q(name)}?`)) return;
      const r = await send('DELETE', urlOf(name, dir));
      if (ok(r.status)) say(`Deleted ${q(name)}.`, 'ok');
      else say(`Deleting ${q(name)} failed: ${reason(r.status, r.statusText, { 207: 'Some items inside could not be deleted', 404: 'It was already deleted' })}.`, 'err');
      await refresh();
    }

    // --- upload ------------------------------------------------------------------------------
    const panel = byId('uploads');
    const up = { jobs: [], running: new Set(), title: null, total: null, totalText: null, list: null, action: null };
    const busy = () => up.jobs.some((j) => j.state === 'waiting' || j.state === 'sending');

    function openPanel() {
      if (up.list && busy()) return;
      up.jobs = [];
      up.title = el('h2', { id: 'uploads-title' });
      up.totalText = el('span', { className: 'st' });
      up.action = el('button', { type: 'button', className: 'btn' });
      up.action.addEventListener('click', () => {
        if (busy()) {
          // Mark the waiting ones first: finishing a job starts the next waiting one.
          for (const j of up.jobs) {
            if (j.state !== 'waiting') continue;
            Object.assign(j, { state: 'failed', status: -1, error: 'Cancelled' });
            j.st.textContent = 'Cancelled';
            j.li.className = 'fail';
          }
          for (const x of [...up.running]) x.abort();
          updateTotals();
          pump();
        } else {
          panel.hidden = true;
          up.list = null;
        }
      });
      up.total = el('progress', { max: 1, value: 0 });
      up.total.setAttribute('aria-label', 'Total upload progress');
      up.list = el('ol');
      panel.replaceChildren(el('header', null, up.title, up.totalText, up.action), up.total, up.list);
      panel.hidden = false;
    }

    function updateTotals() {
      const done = up.jobs.filter((j) => j.state === 'done').length;
      const failed = up.jobs.filter((j) => j.state === 'failed').length;
      const n = up.jobs.length;
      const size = up.jobs.reduce((s, j) => s + j.file.size + 1, 0);
      const sent = up.jobs.reduce((s, j) => s + (j.state === 'waiting' ? 0 : j.state === 'sending' ? j.loaded : j.file.size + 1), 0);
      up.total.max = Math.max(size, 1);
      up.total.value = sent;
      const files = `${n} file${n === 1 ? '' : 's'}`;
      if (busy()) {
        up.title.textContent = `Uploading ${files}`;
        up.totalText.textContent = `${Math.floor((100 * sent) / Math.max(size, 1))}%`;
        up.action.textContent = 'Cancel';
      } else {
        up.title.textContent = failed ? `Uploaded ${done} of ${files}` : `Uploaded ${files}`;
        up.totalText.textContent = failed ? `${failed} failed` : 'Done';
        up.action.textContent = 'Close';
      }
    }

    function finish(job, status, statusText) {
      up.running.delete(job.xhr);
      job.status = status;
      if (ok(status)) {
        job.state = 'done';
        job.progress.value = job.progress.max;
        job.st.textContent = 'Done';
      } else {
        job.state = 'failed';
        job.error = status === -1 ? 'Cancelled' : reason(status, statusText);
        job.st.textContent = job.error;
      }
      job.li.className = job.state === 'done' ? 'done' : 'fail';
      updateTotals();
      pump();
    }

    function pump() {
      for (const job of up.jobs) {
        if (up.running.size >= PARALLEL) break;
        if (job.state !== 'waiting') continue;
        job.state = 'sending';
        job.st.textContent = '0%';
        const xhr = new XMLHttpRequest(); // fetch() has no upload progress events
        job.xhr = xhr;
        up.running.add(xhr);
        xhr.open('PUT', urlOf(job.rel, false));
        xhr.upload.addEventListener('progress', (e) => {
          job.loaded = e.loaded;
          job.progress.value = e.loaded;
          job.st.textContent = e.loaded >= job.file.size ? 'Finishing…' : `${Math.floor((100 * e.loaded) / Math.max(job.file.size, 1))}%`;
          updateTotals();
        });
        xhr.addEventListener('load', () => finish(job, xhr.status, xhr.statusText));
        xhr.addEventListener('error', () => finish(job, 0, ''));
        xhr.addEventListener('abort', () => finish(job, -1, ''));
        xhr.send(job.file);
      }
      if (!busy() && up.jobs.length && !up.reported) {
        up.reported = true;
        report();
      }
    }

    function report() {
      const done = up.jobs.filter((j) => j.state === 'done');
      const failed = up.jobs.filter((j) => j.state === 'failed' && j.status !== -1);
      if (done.length) say(`Uploaded ${done.length} file${done.length === 1 ? '' : 's'} (${formatSize(done.reduce((s, j) => s + j.file.size, 0))}).`, 'ok');
      // One message per distinct failure, not one per file: 200 files refused by a read-only share is one problem.
      const byReason = new Map();
      for (const j of failed) byReason.set(j.error, [...(byReason.get(j.error) || []), j.rel]);
      for (const [why, names] of byReason) {
        const what = names.length === 1 ? `Upload of ${q(names[0])}` : `Upload of ${names.length} files`;
        say(`${what} failed: ${why}.`, 'err');
      }
      refresh();
    }

    async function uploadAll(files, extraDirs) {
      files = files.filter((f) => f.rel.split('/').every((p) => p !== '' && p !== '.' && p !== '..'));
      if (!files.length && !extraDirs.length) return;
      const existing = new Set(dataRows().filter((r) => r.dataset.type !== 'dir').map((r) => r.dataset.name));
      const clashes = files.filter((f) => existing.has(f.rel));
      if (clashes.length) {
        const which = clashes.length === 1 ? q(clashes[0].rel) : `${clashes.length} files`;
        if (!confirm(`${which} already exist${clashes.length === 1 ? 's' : ''} here. Replace? (Cancel uploads only the new files.)`)) {
          files = files.filter((f) => !existing.has(f.rel));
          if (!files.length) return;
        }
      }
      // Folders first, parents before children; 405 means it already exists, which is fine.
      const dirs = new Set(extraDirs);
      for (const f of files) {
        const parts = f.rel.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
      }
      for (const d of [...dirs].sort((a, b) => a.split('/').length - b.split('/').length)) {
        const r = await send('MKCOL', urlOf(d, true));
        if (!ok(r.status) && r.status !== 405) say(`Creating folder ${q(d)} failed: ${reason(r.status, r.statusText)}.`, 'err');
      }
      if (!files.length) return refresh();
      openPanel();
      up.reported = false;
      for (const f of files) {
        const progress = el('progress', { max: Math.max(f.file.size, 1), value: 0 });
        progress.setAttribute('aria-label', `Progress of ${f.rel}`);
        const st = el('span', { className: 'st', textContent: 'Waiting' });
        const li = el('li', null, el('span', { className: 'f', textContent: f.rel, title: `${f.rel} (${formatSize(f.file.size)})` }), progress, st);
        up.list.append(li);
        up.jobs.push({ file: f.file, rel: f.rel, state: 'waiting', loaded: 0, li, progress, st });
      }
      updateTotals();
      pump();
    }

    const fileInput = byId('file-input');
    const folderInput = byId('folder-input');
    byId('upload-files').addEventListener('click', () => fileInput.click());
    byId('upload-folder').addEventListener('click', () => folderInput.click());
    for (const input of [fileInput, folderInput]) {
      input.addEventListener('change', () => {
        const files = [...input.files].map((file) => ({ file, rel: file.webkitRelativePath || file.name }));
        input.value = ''; // so picking the same files again fires change
        uploadAll(files, []);
      });
    }

    // Drag and drop: a counter because dragenter/dragleave fire for every child element crossed.
    const drop = byId('drop');
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
    document.addEventListener('dragenter', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth++;
      drop.hidden = false;
    });
    document.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    document.addEventListener('dragleave', (e) => {
      if (!hasFiles(e)) return;
      if (--depth <= 0) {
        depth = 0;
        drop.hidden = true;
      }
    });
    document.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      drop.hidden = true;
      // Entries must be taken before the handler returns: the DataTransfer is emptied afterwards.
      const entries = [];
      const files = [];
      for (const item of e.dataTransfer.items) {
        if (item.kind !== 'file') continue;
        const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
        if (entry && entry.isDirectory) entries.push(entry);
        else {
          const file = item.getAsFile();
          if (file) files.push({ file, rel: file.name });
        }
      }
      readEntries(entries, files)
        .then(({ files: all, dirs }) => uploadAll(all, dirs))
        .catch((err) => say(`Reading the dropped folder failed: ${err && err.message ? err.message : err}.`, 'err'));
    });

    async function readEntries(entries, files) {
      const dirs = [];
      const walk = async (entry, prefix) => {
        if (entry.isFile) {
          files.push({ file: await new Promise((res, rej) => entry.file(res, rej)), rel: prefix + entry.name });
          return;
        }
        dirs.push(prefix + entry.name);
        const reader = entry.createReader();
        for (;;) {
          // readEntries returns at most 100 entries per call in Chromium; an empty batch is the end.
          const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
          if (!batch.length) break;
          for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
        }
      };
      for (const entry of entries) await walk(entry, '');
      return { files, dirs };
    }

    window.addEventListener('beforeunload', (e) => {
      if (busy()) e.preventDefault(); // the browser asks "Leave site?" instead of dropping uploads
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
