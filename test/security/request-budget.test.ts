/**
 * Security issue 15, part 4 ("one request can stall everyone"), against the real gateway in a
 * child process (its event loop is its own, as in production) driven by real HTTP clients:
 * - the amplification PROPFIND (45,000 names on a 500-member folder, a 603 MB answer before the
 *   fix) is refused with a 4xx naming the limit before any answer is produced, and so is a
 *   PROPFIND within the name limit whose answer would be too large;
 * - a large answer within the limits streams while /health and a 4 KiB GET keep being answered;
 * - connections over the per-client cap are reset at once and hold no descriptor, while the
 *   client's other connections keep working.
 * The in-flight caps (503 + Retry-After) are in request-budget-admission.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SERVER = new URL('./request-budget-server.ts', import.meta.url).pathname;
const AUTH = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;

interface Child {
  proc: ChildProcess;
  port: number;
  adminPort: number;
  pid: number;
  diskDir: string;
  stop(): Promise<void>;
}

async function startChild(config: Record<string, unknown> = {}): Promise<Child> {
  const proc = spawn(process.execPath, [SERVER], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BUDGET_CONFIG: JSON.stringify(config) },
  });
  const line = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`server exited (${code}) before listening`)));
    createInterface({ input: proc.stdout! }).once('line', resolve);
  });
  const info = JSON.parse(line) as { port: number; adminPort: number; pid: number; diskDir: string };
  return {
    proc,
    ...info,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  /** The first 64 KiB of the body (answers here can be tens of MB). */
  head: string;
  tail: string;
  /** performance.now() when the answer's headers and its end arrived. */
  firstByteAt: number;
  endAt: number;
}

function http(port: number, method: string, path: string, o: { headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(o.body));
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const firstByteAt = performance.now();
      let bytes = 0;
      let head = '';
      let tail = '';
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        // Only the ends are kept as text: converting every chunk of a 60 MB answer would slow the
        // client (and so the monitor's requests it also makes) more than the server.
        if (head.length < 65536) head += d.toString('utf8');
        tail = (tail + d.subarray(-64).toString('latin1')).slice(-64);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, head, tail, firstByteAt, endAt: performance.now() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A PROPFIND body naming `n` properties in one namespace; names padded to `nameLength`. */
function propfindBody(n: number, nameLength = 0): string {
  const names: string[] = [];
  for (let i = 0; i < n; i++) names.push(`<x:p${String(i).padStart(5, '0')}${'x'.repeat(Math.max(0, nameLength - 6))}/>`);
  return `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:example:budget"><D:prop>${names.join('')}</D:prop></D:propfind>`;
}

async function fill(port: number, dir: string, members: number): Promise<void> {
  expect((await http(port, 'MKCOL', dir, { headers: { Authorization: AUTH } })).status).toBe(201);
  // 32 at a time: under the per-client in-flight cap, so none waits.
  for (let i = 0; i < members; i += 32) {
    const batch: Promise<Answer>[] = [];
    for (let j = i; j < Math.min(members, i + 32); j++) batch.push(http(port, 'PUT', `${dir}member-${j}.txt`, { headers: { Authorization: AUTH }, body: 'x' }));
    for (const r of await Promise.all(batch)) expect(r.status).toBe(201);
  }
}

describe('PROPFIND work bounds', () => {
  let child: Child;
  beforeAll(async () => {
    child = await startChild();
    await fill(child.port, '/mem/five-hundred/', 500);
  }, 60_000);
  afterAll(async () => {
    await child?.stop();
  });

  it('the 45,000-property PROPFIND on a 500-member folder is refused with 413 naming the limit, before any answer is produced', async () => {
    const body = propfindBody(45_000);
    expect(Buffer.byteLength(body)).toBeGreaterThan(450_000);
    for (const [path, depth] of [
      ['/mem/five-hundred/', '1'],
      ['/mem/five-hundred/', '0'],
      ['/', '1'],
    ] as const) {
      const r = await http(child.port, 'PROPFIND', path, { headers: { Authorization: AUTH, Depth: depth }, body });
      expect(r.status, `${path} Depth ${depth}`).toBe(413);
      expect(r.head).toContain('protocols.webdav.maxPropfindProperties');
      expect(r.head).toContain('256');
      // Refused, not produced: the 603 MB answer of the issue never starts.
      expect(r.bytes).toBeLessThan(1024);
    }
    // The gateway is fine afterwards.
    expect((await http(child.adminPort, 'GET', '/health')).status).toBe(200);
  });

  it('a PROPFIND within the name limit whose answer would pass maxPropfindResponseBytes is refused with 403 naming that limit', async () => {
    // 250 names of ~1,500 characters: a 380 KB request, ~390 KB per member, ~195 MB for 500.
    const body = propfindBody(250, 1500);
    const r = await http(child.port, 'PROPFIND', '/mem/five-hundred/', { headers: { Authorization: AUTH, Depth: '1' }, body });
    expect(r.status).toBe(403);
    expect(r.head).toContain('protocols.webdav.maxPropfindResponseBytes');
    expect(r.head).toContain('500 members');
    expect(r.bytes).toBeLessThan(1024);
    // The same request on one resource is fine (Depth 0: one response of ~390 KB).
    const one = await http(child.port, 'PROPFIND', '/mem/five-hundred/', { headers: { Authorization: AUTH, Depth: '0' }, body });
    expect(one.status).toBe(207);
    expect(one.tail).toContain('</D:multistatus>');
  });

  it('a large answer within the limits streams while /health and a 4 KiB GET keep being answered', async () => {
    await fill(child.port, '/mem/large/', 2000);
    expect((await http(child.port, 'PUT', '/mem/small.bin', { headers: { Authorization: AUTH }, body: 'y'.repeat(4096) })).status).toBe(201);
    // 250 names of ~100 characters: ~34 KB per member, ~68 MB for 2,000 members (under the
    // 128 MiB bound): long enough an answer that interleaving shows in the count of answers.
    const body = propfindBody(250, 100);
    const warm = await http(child.port, 'PROPFIND', '/mem/large/', { headers: { Authorization: AUTH, Depth: '1' }, body });
    expect(warm.status).toBe(207);
    expect(warm.bytes).toBeGreaterThan(60_000_000);

    const start = performance.now();
    const big = http(child.port, 'PROPFIND', '/mem/large/', { headers: { Authorization: AUTH, Depth: '1' }, body });
    let streaming = true;
    void big.finally(() => (streaming = false));
    // A monitor and another client, one request after the other, for as long as the answer streams.
    const health: number[] = [];
    const gets: number[] = [];
    while (streaming) {
      const [h, g] = await Promise.all([http(child.adminPort, 'GET', '/health'), http(child.port, 'GET', '/mem/small.bin', { headers: { Authorization: AUTH } })]);
      expect(h.status).toBe(200);
      expect(g.status).toBe(200);
      expect(g.bytes).toBe(4096);
      health.push(h.endAt);
      gets.push(g.endAt);
    }
    const answer = await big;
    expect(answer.status).toBe(207);
    expect(answer.bytes).toBe(warm.bytes);
    expect(answer.tail).toContain('</D:multistatus>');
    const during = (t: number): boolean => t < answer.endAt;
    const healthDuring = health.filter(during).length;
    const getsDuring = gets.filter(during).length;
    // Loose on purpose (a loaded 2-core machine): before the fix the whole answer was rendered in
    // one stretch of the event loop and the monitor got 0-3 answers in; with slices of a few ms it
    // gets dozens. What is asserted is that they interleave, not how fast.
    const ms = Math.round(answer.endAt - start);
    expect(healthDuring, `/health answers during a ${ms} ms answer`).toBeGreaterThanOrEqual(8);
    expect(getsDuring, `GET answers during a ${ms} ms answer`).toBeGreaterThanOrEqual(8);
  }, 60_000);
});

describe('a directory larger than the lookahead', () => {
  let child: Child;
  // allprop costs ~730 bytes per file member here; the estimate (from the collection's own
  // response, which has no content length or type) ~620: 10,000 members listed ahead are estimated
  // at ~6.2 MB, under the bound; all 13,000 make ~9.5 MB, over it.
  const BOUND = 7_500_000;
  beforeAll(async () => {
    child = await startChild({ 'protocols.webdav.maxPropfindResponseBytes': BOUND });
    mkdirSync(join(child.diskDir, 'huge'));
    for (let i = 0; i < 13_000; i++) writeFileSync(join(child.diskDir, 'huge', `file-${i}.txt`), 'x');
  }, 60_000);
  afterAll(async () => {
    await child?.stop();
  });

  it('is counted while streaming and the answer is cut at maxPropfindResponseBytes, never ended as if complete', async () => {
    let answer: Answer | undefined;
    let failure: unknown;
    try {
      answer = await http(child.port, 'PROPFIND', '/disk/huge/', { headers: { Authorization: AUTH, Depth: '1' } });
    } catch (e) {
      failure = e;
    }
    // Either the client sees the connection fail, or (if the last bytes raced the reset) a body
    // that does not end the multistatus: a sync client must not take it for the whole listing.
    if (answer) {
      expect(answer.status).toBe(207);
      expect(answer.tail).not.toContain('</D:multistatus>');
      expect(answer.bytes).toBeLessThanOrEqual(BOUND + 512 * 1024);
    } else expect(failure).toBeInstanceOf(Error);
    expect((await http(child.adminPort, 'GET', '/health')).status).toBe(200);
    // Smaller requests on the same collection still work (no properties asked: ~150 bytes each).
    const names = await http(child.port, 'PROPFIND', '/disk/huge/', {
      headers: { Authorization: AUTH, Depth: '1' },
      body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
    });
    expect(names.status).toBe(207);
    expect(names.tail).toContain('</D:multistatus>');
  }, 60_000);
});

describe('per-client connection cap', () => {
  const CAP = 8;
  let child: Child;
  beforeAll(async () => {
    child = await startChild({ 'limits.maxConnectionsPerClient': CAP });
  }, 60_000);
  afterAll(async () => {
    await child?.stop();
  });

  const fds = (): number => readdirSync(`/proc/${child.pid}/fd`).length;

  function open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect(child.port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
  }

  /** One request on a raw keep-alive connection; resolves with its status line. */
  function ask(s: Socket, path = '/'): Promise<string> {
    return new Promise((resolve, reject) => {
      let got = '';
      const onData = (d: Buffer): void => {
        got += d.toString('latin1');
        const end = got.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length: *(\d+)/i.exec(got.slice(0, end))?.[1] ?? '0');
        if (got.length < end + 4 + len) return;
        s.off('data', onData);
        resolve(got.slice(0, got.indexOf('\r\n')));
      };
      s.on('data', onData);
      s.once('error', reject);
      s.write(`OPTIONS ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    });
  }

  /** Whether the server closed (or reset) the connection within `ms`. */
  function closedWithin(s: Socket, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (s.destroyed || s.readableEnded) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      s.once('end', done);
      s.once('close', done);
      s.once('error', () => undefined);
    });
  }

  it('connections over the cap are reset at once and hold no descriptor; the client’s other connections keep working; closing releases everything', async () => {
    const base = fds();
    const kept: Socket[] = [];
    for (let i = 0; i < CAP; i++) {
      const s = await open();
      // Answered: accepted and counted by the server.
      expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      kept.push(s);
    }
    const extra = await Promise.all(Array.from({ length: 3 * CAP }, () => open().catch(() => undefined)));
    const closed = await Promise.all(extra.map((s) => (s ? closedWithin(s, 3000) : Promise.resolve(true))));
    expect(closed.filter((c) => !c).length, 'connections over the cap still open after 3 s').toBe(0);
    // The server holds the CAP connections and nothing of the refused ones (a little slack for
    // descriptors the process opens on its own meanwhile).
    expect(fds()).toBeLessThanOrEqual(base + CAP + 2);
    // The connections within the cap still work.
    for (const s of kept) expect(await ask(s)).toBe('HTTP/1.1 200 OK');
    expect((await http(child.adminPort, 'GET', '/health')).status).toBe(200);

    for (const s of kept) s.destroy();
    for (const s of extra) s?.destroy();
    // The server notices the closes and releases the descriptors and the client's count.
    for (let i = 0; i < 100 && fds() > base + 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(fds()).toBeLessThanOrEqual(base + 1);
    const again: Socket[] = [];
    for (let i = 0; i < CAP; i++) {
      const s = await open();
      expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      again.push(s);
    }
    for (const s of again) s.destroy();
  }, 30_000);
});
