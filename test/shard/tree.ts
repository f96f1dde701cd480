/**
 * Test trees for shard sets: nested directories (random and one deep chain), empty files and
 * directories, non-ASCII names (Latin with diacritics, Cyrillic, CJK; some written to disk in NFD,
 * as macOS writes them, which Portico serves under their NFC spelling, plus an NFD twin of an NFC
 * name that the packer must skip), compressible text and incompressible bytes of varied sizes, a few
 * multi-MiB files (below and over the 4 MiB chunked threshold) when asked. Deterministic for a seed.
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
  /** The share path (NFC, as Portico serves it). */
  path: string;
  data: Buffer;
  /** Where it is on disk, relative to the root (differs from `path` for names written in NFD). */
  disk: string;
}

/** Depth of the deep chain of directories (`/deep-深/l1-层/l2-层/…`). */
export const DEEP = 24;
/** Sizes of the large files, in order: over the 4 MiB chunked threshold, under it, well over it. */
const LARGE = [5 * 1024 * 1024 + 7, 3 * 1024 * 1024 + 1007, 9 * 1024 * 1024 + 2014];

export interface Tree {
  files: TreeFile[];
  /** Every directory, share paths. */
  dirs: string[];
  /** Share paths (NFC) of the files and directories whose names are NFD on disk. */
  nfd: string[];
}

/**
 * Writes `count` files under `root` (plus the deep chain's files and the large ones) and returns
 * them. `scale` multiplies the sizes of the binary files (a 10,000-file tree at 0.25 is ~30 MB).
 */
export function makeTree(root: string, count: number, o: { seed?: number; large?: number; scale?: number } = {}): Tree {
  const scale = o.scale ?? 1;
  const nfd: string[] = [];
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
  // Names written in NFD: a directory and files in it and elsewhere. And one NFD twin of an NFC
  // file in the same directory: both cannot be served, the packer keeps the NFC one and skips it.
  const nfdDir = '/Résumés-ü'.normalize('NFC');
  mkdirSync(join(root, nfdDir.normalize('NFD')));
  nfd.push(nfdDir);
  const nfdNames = ['café.txt', 'Ångström-ñ.bin', '한국어-파일.txt', 'naïve résumé'].map((n) => n.normalize('NFC'));
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
      data = Buffer.alloc(Math.floor(r() * 20000 * scale));
      for (let k = 0; k < data.length; k++) data[k] = Math.floor(r() * 256);
      ext = 'bin';
    } else {
      data = Buffer.alloc(Math.floor(r() * 60000 * scale));
      for (let k = 0; k < data.length; k++) data[k] = Math.floor(r() * 256);
      ext = 'jpg';
    }
    if (i % 97 === 1) {
      // On disk in NFD, under the NFD directory or a random one.
      const d = i % 2 === 1 ? nfdDir : dir;
      const name = `${i}-${nfdNames[i % nfdNames.length]}`;
      const path = `${d === '/' ? '' : d}/${name}`;
      const disk = `${d === nfdDir ? nfdDir.normalize('NFD') : d === '/' ? '' : d}/${name.normalize('NFD')}`;
      writeFileSync(join(root, disk), data);
      files.push({ path, data, disk });
      nfd.push(path);
      continue;
    }
    const path = `${dir === '/' ? '' : dir}/f${i}-${WORDS[i % WORDS.length]}.${ext}`;
    writeFileSync(join(root, path), data);
    files.push({ path, data, disk: path });
  }
  dirs.push(nfdDir);
  // The NFD twin: same directory, same name once normalised; never served.
  const twin = 'twin-é.txt'.normalize('NFC');
  writeFileSync(join(root, nfdDir.normalize('NFD'), twin), 'the NFC one');
  files.push({ path: `${nfdDir}/${twin}`, data: Buffer.from('the NFC one'), disk: `${nfdDir.normalize('NFD')}/${twin}` });
  writeFileSync(join(root, nfdDir.normalize('NFD'), twin.normalize('NFD')), 'the NFD one');
  // The deep chain, a file at every level.
  let deep = '';
  for (let k = 0; k <= DEEP; k++) {
    deep += k === 0 ? '/deep-深' : `/l${k}-层`;
    mkdirSync(join(root, deep));
    dirs.push(deep);
    const data = Buffer.from(`level ${k} 数据 `.repeat(1 + k));
    writeFileSync(join(root, deep, `at-${k}.txt`), data);
    files.push({ path: `${deep}/at-${k}.txt`, data, disk: `${deep}/at-${k}.txt` });
  }
  for (let i = 0; i < (o.large ?? 0); i++) {
    const data = Buffer.alloc(LARGE[i % LARGE.length]! + 1000 * Math.floor(i / LARGE.length));
    for (let k = 0; k < data.length; k += 4096) data.writeUInt32LE((k * 2654435761 + i) >>> 0, k);
    const path = `/large-${i}.bin`;
    writeFileSync(join(root, path), data);
    files.push({ path, data, disk: path });
  }
  return { files, dirs: [...dirs, '/empty-dir'], nfd };
}
