/**
 * PUT: streaming a 300 MB upload through a server in a child process with bounded memory, chunked
 * uploads, identity-preserving overwrites, and aborted uploads (a raw socket that sends half a body
 * and closes, a curl killed mid-upload) that must leave the previous content and no partial file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE, ROOT, cleanEnv } from '../cli/helpers.ts';
import { dav, run, startDav, type DavStack } from './helpers.ts';
import { TEMP_PREFIX } from '../../backends/local/local-backend.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
let stack: DavStack;
let tmp: string;

beforeAll(async () => {
  stack = await startDav();
  await stack.addUser('alice', 'alice-pw');
  tmp = mkdtempSync(join(tmpdir(), 'portico-put-'));
});

afterAll(async () => {
  await stack?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// An upload in progress lives in the local backend's reserved temp file (its atomic writer).
const tempFiles = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith(TEMP_PREFIX));

async function settle(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

function rssKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

describe('PUT streaming', () => {
  it('uploads 300 MB through a child-process server with bounded memory; bytes match both ways', async () => {
    const file = join(tmp, 'big.bin');
    const fd = openSync(file, 'w');
    const block = randomBytes(1024 * 1024);
    for (let i = 0; i < 300; i++) {
      block.writeUInt32LE(i, 0);
      writeSync(fd, block);
    }
    closeSync(fd);
    const want = await sha256File(file);

    let child: ChildProcess | undefined;
    try {
      child = spawn(NODE, [join(ROOT, 'test/webdav/child-server.ts')], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child!.stdout! }).once('line', resolve);
        child!.once('exit', (c) => reject(new Error(`child exited ${c}`)));
      });
      const info = JSON.parse(line) as { port: number; diskDir: string; pid: number };
      const base = rssKb(info.pid, 'VmRSS');
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, rssKb(info.pid, 'VmRSS'))), 50);
      const up = await run('curl', ['-s', '-S', '-u', 'alice:alice-pw', '-T', file, '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${info.port}/disk/big.bin`], { timeoutMs: 240_000 });
      clearInterval(sampler);
      // The kernel's high-water mark catches spikes between samples.
      peak = Math.max(peak, rssKb(info.pid, 'VmHWM'));
      expect(up.stdout).toBe('201');
      console.log(`server RSS before ${Math.round(base / 1024)} MiB, peak during a 300 MiB PUT ${Math.round(peak / 1024)} MiB`);
      expect(peak - base).toBeLessThan(150 * 1024);
      expect(await sha256File(join(info.diskDir, 'big.bin'))).toBe(want);
      expect(tempFiles(info.diskDir)).toEqual([]);
      const down = await run('bash', ['-c', `curl -s -S -u alice:alice-pw http://127.0.0.1:${info.port}/disk/big.bin | sha256sum`], { timeoutMs: 240_000 });
      expect(down.stdout.split(' ')[0]).toBe(want);
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(file, { force: true });
    }
  }, 300_000);

  it('accepts chunked uploads (Transfer-Encoding: chunked)', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(join(tmp, 'chunked.bin'), data);
    const r = await run('bash', ['-c', `cat ${join(tmp, 'chunked.bin')} | curl -s -S -u alice:alice-pw -H 'Transfer-Encoding: chunked' -T - -o /dev/null -w '%{http_code}' ${stack.origin}/disk/chunked.bin`]);
    expect(r.stdout).toBe('201');
    expect(readFileSync(join(stack.diskDir, 'chunked.bin')).equals(data)).toBe(true);
  });

  it('keeps the identity of an overwritten file: id, dead properties, locks', async () => {
    expect((await dav(stack, 'PUT', '/disk/keep.txt', { auth: ALICE, body: 'first' })).status).toBe(201);
    const id1 = String((await dav(stack, 'HEAD', '/disk/keep.txt', { auth: ALICE })).headers['etag']).split('-')[0];
    const pp = '<D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:tag>kept</x:tag></D:prop></D:set></D:propertyupdate>';
    expect((await dav(stack, 'PROPPATCH', '/disk/keep.txt', { auth: ALICE, body: pp })).status).toBe(207);
    const lock = await dav(stack, 'LOCK', '/disk/keep.txt', {
      auth: ALICE,
      body: '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
    });
    const token = String(lock.headers['lock-token']);
    expect((await dav(stack, 'PUT', '/disk/keep.txt', { auth: ALICE, body: 'second, longer', headers: { If: `(${token})` } })).status).toBe(204);
    expect((await dav(stack, 'GET', '/disk/keep.txt', { auth: ALICE })).text).toBe('second, longer');
    expect(String((await dav(stack, 'HEAD', '/disk/keep.txt', { auth: ALICE })).headers['etag']).split('-')[0]).toBe(id1);
    const pf = await dav(stack, 'PROPFIND', '/disk/keep.txt', { auth: ALICE, headers: { Depth: '0' } });
    expect(pf.text).toContain('>kept</ns0:tag>');
    expect(pf.text).toContain(token.slice(1, -1));
    expect((await dav(stack, 'PUT', '/disk/keep.txt', { auth: ALICE, body: 'no token' })).status).toBe(423);
  });

  it('answers 409 for a missing parent and 405 for a collection', async () => {
    expect((await dav(stack, 'PUT', '/disk/no/parent.txt', { auth: ALICE, body: 'x' })).status).toBe(409);
    expect((await dav(stack, 'MKCOL', '/disk/adir', { auth: ALICE })).status).toBe(201);
    expect((await dav(stack, 'PUT', '/disk/adir', { auth: ALICE, body: 'x' })).status).toBe(405);
  });
});

describe('aborted PUT', () => {
  function halfPut(path: string, total: number, sent: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const auth = Buffer.from('alice:alice-pw').toString('base64');
      const s = connect(stack.port, '127.0.0.1', () => {
        s.write(`PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic ${auth}\r\nContent-Length: ${total}\r\n\r\n`);
        s.write(Buffer.alloc(sent, 0x41), () => setTimeout(() => s.destroy(), 200));
      });
      s.on('close', () => resolve());
      s.on('error', reject);
    });
  }

  it('a client that closes mid-body leaves the old content and no partial file', async () => {
    expect((await dav(stack, 'PUT', '/disk/abort.txt', { auth: ALICE, body: 'old content' })).status).toBe(201);
    await halfPut('/disk/abort.txt', 5_000_000, 2_500_000);
    await settle(() => tempFiles(stack.diskDir).length === 0);
    expect(tempFiles(stack.diskDir)).toEqual([]);
    expect((await dav(stack, 'GET', '/disk/abort.txt', { auth: ALICE })).text).toBe('old content');
    await halfPut('/disk/abort-new.txt', 5_000_000, 1_000_000);
    await settle(() => tempFiles(stack.diskDir).length === 0);
    expect(tempFiles(stack.diskDir)).toEqual([]);
    expect((await dav(stack, 'GET', '/disk/abort-new.txt', { auth: ALICE })).status).toBe(404);
    const pf = await dav(stack, 'PROPFIND', '/disk/', { auth: ALICE, headers: { Depth: '1' } });
    expect(pf.text).not.toContain(TEMP_PREFIX);
  });

  it('a curl killed mid-upload leaves the old content and no partial file', async () => {
    const file = join(tmp, 'slow.bin');
    writeFileSync(file, randomBytes(4 * 1024 * 1024));
    expect((await dav(stack, 'PUT', '/disk/killed.bin', { auth: ALICE, body: 'previous' })).status).toBe(201);
    const curl = spawn('curl', ['-s', '-u', 'alice:alice-pw', '--limit-rate', '256K', '-T', file, `${stack.origin}/disk/killed.bin`], { stdio: 'ignore' });
    // The upload runs: its temp sibling appears, then curl dies.
    await settle(() => tempFiles(stack.diskDir).length > 0, 5000);
    expect(tempFiles(stack.diskDir).length).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    curl.kill('SIGKILL');
    await new Promise((r) => curl.once('exit', r));
    await settle(() => tempFiles(stack.diskDir).length === 0);
    expect(tempFiles(stack.diskDir)).toEqual([]);
    expect((await dav(stack, 'GET', '/disk/killed.bin', { auth: ALICE })).text).toBe('previous');
  });
});
