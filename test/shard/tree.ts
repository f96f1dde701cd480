/**
 * Test trees for shard sets: nested directories, empty files and directories, non-ASCII names,
 * compressible text and incompressible bytes of varied sizes, a few files over the 4 MiB chunked
 * threshold when asked. Deterministic for a seed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'shard', 'portico', 'index', 'footer', 'über', '数据', 'naïve', 'zstd'];
const NAMES = ['img', 'doc', 'Ünïcode', 'данные', '日本語', 'a b', 'x-y', 'z0', 'e\u0301t\u00e9'.normalize('NFC')];

export interface TreeFile {
  path: string;
  data: Buffer;
}

/** Writes `count` files under `root` and returns them (share paths, '/'-rooted), plus the directories. */
export function makeTree(root: string, count: number, o: { seed?: number; large?: number } = {}): { files: TreeFile[]; dirs: string[] } {
  const r = rng(o.seed ?? 1);
  const dirs = ['/'];
  const files: TreeFile[] = [];
  mkdirSync(root, { recursive: true });
  for (let d = 0; d < Math.max(3, Math.floor(count / 40)); d++) {
    const parent = dirs[Math.floor(r() * dirs.length)] as string;
    const name = `${NAMES[d % NAMES.length]}${d}`;
    const path = `${parent === '/' ? '' : parent}/${name}`;
    mkdirSync(join(root, path), { recursive: true });
    dirs.push(path);
  }
  mkdirSync(join(root, 'empty-dir'));
  for (let i = 0; i < count; i++) {
    const dir = dirs[Math.floor(r() * dirs.length)] as string;
    const kind = r();
    let data: Buffer;
    let ext: string;
    if (i % 50 === 0) {
      data = Buffer.alloc(0);
      ext = 'empty';
    } else if (kind < 0.5) {
      const n = 1 + Math.floor(r() * 400);
      data = Buffer.from(Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' '));
      ext = 'txt';
    } else if (kind < 0.8) {
      data = Buffer.alloc(Math.floor(r() * 20000));
      for (let k = 0; k < data.length; k++) data[k] = Math.floor(r() * 256);
      ext = 'bin';
    } else {
      data = Buffer.alloc(Math.floor(r() * 60000));
      for (let k = 0; k < data.length; k++) data[k] = Math.floor(r() * 256);
      ext = 'jpg';
    }
    const path = `${dir === '/' ? '' : dir}/f${i}-${WORDS[i % WORDS.length]}.${ext}`;
    writeFileSync(join(root, path), data);
    files.push({ path, data });
  }
  for (let i = 0; i < (o.large ?? 0); i++) {
    const data = Buffer.alloc(5 * 1024 * 1024 + 1000 * i + 7);
    for (let k = 0; k < data.length; k += 4096) data.writeUInt32LE((k * 2654435761 + i) >>> 0, k);
    const path = `/large-${i}.bin`;
    writeFileSync(join(root, path), data);
    files.push({ path, data });
  }
  return { files, dirs: [...dirs, '/empty-dir'] };
}
