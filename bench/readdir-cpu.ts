/**
 * CPU per directory entry of Vfs.readdir through the session (what NFS READDIR, SMB
 * QUERY_DIRECTORY, WebDAV PROPFIND and FUSE readdirplus all take), in process, A/B.
 *
 *   node bench/readdir-cpu.ts [BASELINE_CHECKOUT]     (env: ENTRIES, PAGE, ROUNDS, KINDS=warm,expired, RESUME)
 *
 * A directory of ENTRIES (10,000) files is paged through as NFS does (PAGE entries a call, each
 * call resuming from the last cookie), through Session.readdir and Session.readdirWithProps:
 * - warm: the listing cache serves the pass (no backend call, no stat per entry);
 * - expired: after 1.1 s, the attribute cache's lifetime and so the listing cache's, the pass
 *   lists and stats every entry again.
 * With a baseline checkout (a git worktree of another commit with node_modules symlinked), its
 * stack runs in the same process and the two alternate pass by pass, so load and GC fall on both.
 * Reported: median process CPU (user+system, including the thread pool's stats) per entry, µs.
 * BENCH_INLINE_IO=0: the local backend without inline calls (as after its breaker tripped: the
 * listing's lstats off the event loop), in both stacks when the baseline's bench/lib.ts reads it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ENTRIES = Number(process.env.ENTRIES ?? 10_000);
const PAGE = Number(process.env.PAGE ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
/** KINDS=warm (or expired, withProps, ...): only the kinds whose label contains one of these. */
const KINDS = process.env.KINDS;
/** RESUME=0.6: each call resumes from 60% into the page before (as NFS does when its reply is full). */
const RESUME = Number(process.env.RESUME ?? 1);

interface Stack {
  session: {
    readdir(share: string, path: string, o?: { cookie?: bigint; limit?: number }): Promise<{ entries: { cookie: bigint }[]; eof: boolean }>;
    readdirWithProps(share: string, path: string, o?: { cookie?: bigint; limit?: number }): Promise<{ entries: { cookie: bigint }[]; eof: boolean }>;
  };
  root: string;
  close(): Promise<void>;
}

interface Variant {
  name: string;
  stack: Stack;
  base: string;
  samples: Record<string, number[]>;
}

async function load(checkout: string, name: string): Promise<Variant> {
  const lib = (await import(pathToFileURL(join(checkout, 'bench/lib.ts')).href)) as { makePorticoStack(base: string): Stack };
  const base = mkdtempSync(join(tmpdir(), `readdir-cpu-${name}-`));
  const stack = lib.makePorticoStack(base);
  await import('node:fs/promises').then((fs) => fs.mkdir(join(stack.root, 'd')));
  for (let i = 0; i < ENTRIES; i++) writeFileSync(join(stack.root, 'd', `file-${String(i).padStart(6, '0')}.txt`), 'x');
  return { name, stack, base, samples: {} };
}

async function pass(v: Variant, withProps: boolean): Promise<number> {
  const t0 = process.cpuUsage();
  let cookie: bigint | undefined;
  let n = 0;
  for (;;) {
    const o = cookie === undefined ? { limit: PAGE } : { cookie, limit: PAGE };
    const page = withProps ? await v.stack.session.readdirWithProps('s', '/d', o) : await v.stack.session.readdir('s', '/d', o);
    n += page.entries.length;
    if (page.eof || page.entries.length === 0) break;
    // NFS resumes from the last entry its reply had room for, often inside the page (RESUME=0.6:
    // 60% of it); the rest is listed again by the next call.
    const upto = RESUME >= 1 ? page.entries.length : Math.max(1, Math.floor(page.entries.length * RESUME));
    n -= page.entries.length - upto;
    cookie = page.entries[upto - 1]!.cookie;
  }
  const d = process.cpuUsage(t0);
  if (n !== ENTRIES) throw new Error(`${v.name}: listed ${n} entries, expected ${ENTRIES}`);
  return (d.user + d.system) / n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const here = resolve(import.meta.dirname, '..');
  const variants = [await load(here, 'change')];
  if (process.argv[2] !== undefined) variants.unshift(await load(resolve(process.argv[2]), 'baseline'));
  // Past the listing cache's racy window (a directory changed within 2 s of a build is not kept).
  await sleep(2200);
  // First passes: ids created, code warmed up.
  for (const v of variants) for (let i = 0; i < 3; i++) await pass(v, i % 2 === 1);
  const kinds = (
    [
      ['readdir warm', false, false],
      ['readdir expired', false, true],
      ['withProps warm', true, false],
      ['withProps expired', true, true],
    ] as [string, boolean, boolean][]
  ).filter(([k]) => KINDS === undefined || KINDS.split(',').some((w) => k.includes(w)));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [kind, props, expired] of kinds) {
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        // A warm pass right after one that built the listing; an expired one after the TTL.
        if (expired) await sleep(1100);
        else await pass(v, props);
        (v.samples[kind] ??= []).push(await pass(v, props));
      }
    }
  }
  console.log(`${ENTRIES} entries, pages of ${PAGE}, ${ROUNDS} rounds, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`median CPU µs per entry (min-max)`);
  for (const [kind] of kinds) {
    const cells = variants.map((v) => {
      const s = v.samples[kind]!;
      return `${v.name} ${median(s).toFixed(2)} (${Math.min(...s).toFixed(2)}-${Math.max(...s).toFixed(2)})`;
    });
    console.log(`  ${kind.padEnd(18)} ${cells.join('   ')}`);
  }
  for (const v of variants) {
    await v.stack.close();
    rmSync(v.base, { recursive: true, force: true });
  }
}

await main();
