/**
 * A 100,000-entry directory listed completely over QUERY_DIRECTORY: the entries are made directly
 * in the local share's directory (Portico sees them first at the listing, so every id is created
 * then: the cold case), then listed by smbclient (`ls`, which asks for 8 MiB responses) and by
 * impacket continuing the scan call after call with 1 MiB buffers (room for ~9,000 entries; each
 * answer holds at most MAX_DIR_ENTRIES_PER_RESPONSE). Every name once, no duplicate,
 * nothing missing. Figures (time, memory) are logged, never asserted.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb, type SmbStack } from './gateway.ts';
import { hasImpacket, runPython } from './python.ts';
import { MAX_DIR_ENTRIES_PER_RESPONSE } from '../../protocols/smb/server/commands.ts';

const N = 100_000;
const HAVE = await hasImpacket();
const name = (i: number): string => `f${String(i).padStart(6, '0')}.txt`;

describe.skipIf(!HAVE_SMBCLIENT)('a 100,000-entry directory over QUERY_DIRECTORY', () => {
  let stack: SmbStack;
  beforeAll(async () => {
    stack = await startSmb();
    const dir = join(stack.diskDir, 'big');
    mkdirSync(dir);
    for (let i = 0; i < N; i++) closeSync(openSync(join(dir, name(i)), 'w'));
  }, 300_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('smbclient ls lists every entry once (cold: ids made during the listing)', async () => {
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const r = await smbclient(['//127.0.0.1/disk', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-c', 'ls big\\*'], { timeoutMs: 600_000 });
    const ms = performance.now() - t0;
    expect(r.code, r.out.slice(-500)).toBe(0);
    const names = [...r.out.matchAll(/^\s+(f\d{6}\.txt)\s/gm)].map((m) => m[1]!);
    expect(names.length).toBe(N);
    expect(new Set(names).size).toBe(N);
    console.log(`smbclient ls of ${N} entries (cold): ${Math.round(ms)} ms, gateway rss +${Math.round((process.memoryUsage().rss - rss0) / 2 ** 20)} MiB`);
  }, 600_000);

  it.skipIf(!HAVE)('impacket continues the scan call after call (1 MiB buffers, each answer at most the per-response bound): all names, in order, none twice', async () => {
    const t0 = performance.now();
    const out = await runPython(
      String.raw`
import struct
from impacket.smbconnection import SMBConnection
from impacket.smb3 import SessionError
from impacket.smb3structs import FILE_READ_DATA, FILE_READ_ATTRIBUTES, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, FILE_FULL_DIRECTORY_INFORMATION
from impacket.nt_errors import STATUS_NO_MORE_FILES
c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=inp['smb'])
c.login(inp['user'], inp['password'])
tid = c.connectTree('disk')
s = c.getSMBServer()
fid = s.create(tid, 'big', FILE_READ_DATA | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_DIRECTORY_FILE, FILE_OPEN, 0)
names = []
counts = []
while True:
    try:
        res = s.queryDirectory(tid, fid, '*', maxBufferSize=1048576, informationClass=FILE_FULL_DIRECTORY_INFORMATION)
    except SessionError as e:
        if e.get_error_code() != STATUS_NO_MORE_FILES:
            raise
        break
    # FILE_FULL_DIR_INFORMATION (MS-FSCC 2.4.14): NextEntryOffset at 0, FileNameLength at 60, the name at 68.
    n = 0
    off = 0
    while True:
        nxt = struct.unpack_from('<I', res, off)[0]
        ln = struct.unpack_from('<I', res, off + 60)[0]
        names.append(bytes(res[off + 68:off + 68 + ln]).decode('utf-16le'))
        n += 1
        if nxt == 0:
            break
        off += nxt
    counts.append(n)
s.close(tid, fid)
files = [x for x in names if x not in ('.', '..')]
out = {'total': len(files), 'unique': len(set(files)), 'sorted': files == sorted(files), 'calls': len(counts), 'max': max(counts), 'first': files[0], 'last': files[-1]}
`,
      { smb: stack.smbPort, user: ALICE.name, password: ALICE.password },
      600_000,
    );
    console.log(`impacket: ${out.total} entries in ${out.calls} QUERY_DIRECTORY calls (at most ${out.max} each), ${Math.round(performance.now() - t0)} ms`);
    expect(out.total).toBe(N);
    expect(out.unique).toBe(N);
    expect(out.sorted).toBe(true);
    expect(out.first).toBe(name(0));
    expect(out.last).toBe(name(N - 1));
    expect(out.calls).toBeGreaterThan(N / MAX_DIR_ENTRIES_PER_RESPONSE);
    expect(out.max).toBe(MAX_DIR_ENTRIES_PER_RESPONSE);
  }, 600_000);

  it('listed again, the names come from the row cache: a directory the size of the cache does not evict its own next names', async () => {
    // After the listings above every name has a row. Each page's cached rows are made recent
    // before its misses are looked up (Volume.touchListed); before that, each miss evicted the
    // least recent row — the next name listed — and every name of every listing was a store query.
    const sessions = stack.gateway.sessions!;
    const store = stack.gateway.store!;
    const session = sessions.openSession({ principal: (await sessions.authenticator.principalFor(ALICE.name))!, protocol: 'smb', clientAddress: '127.0.0.1' });
    const dir = await session.getattr('disk', '/big');
    const list = async (): Promise<number> => {
      let cookie: bigint | undefined;
      let n = 0;
      for (;;) {
        const p = await session.readdirById('disk', dir.id, { ...(cookie !== undefined ? { cookie } : {}), limit: 512 });
        n += p.entries.length;
        if (p.entries.length > 0) cookie = p.entries.at(-1)!.cookie;
        if (p.eof || p.entries.length === 0) return n;
      }
    };
    expect(await list()).toBe(N);
    const lookupChild = store.lookupChild.bind(store);
    let lookups = 0;
    store.lookupChild = (...a: Parameters<typeof lookupChild>) => {
      lookups++;
      return lookupChild(...a);
    };
    try {
      const t0 = performance.now();
      expect(await list()).toBe(N);
      console.log(`session readdir of ${N} entries, listed again: ${Math.round(performance.now() - t0)} ms, ${lookups} store lookups`);
    } finally {
      store.lookupChild = lookupChild;
      await session.end();
    }
    expect(lookups).toBeLessThan(N / 100);
  }, 600_000);
});
