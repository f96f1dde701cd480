/**
 * Object-store shares in sync mode stage a writer's data until its last close. A reader opened
 * meanwhile (another protocol: a WebDAV GET while an NFS or SMB client writes) reads the staged
 * content, the same bytes and size getattr reports; the last writer's close publishes even while
 * readers still hold the file (closed means in the store), and they keep reading.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';

const RW = { read: true, write: true, delete: false };
const RO = { read: true, write: false, delete: false };
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

function env(): { vfs: Vfs; mem: MemoryBackend } {
  const dir = mkdtempSync(join(tmpdir(), 'portico-staged-readers-'));
  const store = MetadataStore.open(dir);
  cleanup.push(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const mem = new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES });
  const vfs = new Vfs({ store, stageDir: join(dir, 'stage') });
  vfs.addVolume('s', buildVolumeStack(mem));
  return { vfs, mem };
}

it('a reader opened while a writer stages sees the staged bytes; the writer\'s close publishes while the reader stays', async () => {
  const { vfs, mem } = env();
  const w = await vfs.open('s', '/f', { access: RW, disposition: 'createOrTruncate', owner: 'writer', expect: 'file' });
  await vfs.write(w, 0, Buffer.from('abcdefgh'));
  expect((await vfs.getattr('s', '/f')).size).toBe(8);
  const r = await vfs.open('s', '/f', { access: RO, owner: 'reader', expect: 'file' });
  expect((await vfs.read(r, 0, 100)).toString()).toBe('abcdefgh');
  await vfs.write(w, 8, Buffer.from('ij'));
  expect((await vfs.read(r, 0, 100)).toString()).toBe('abcdefghij');
  await vfs.close(w);
  expect((await mem.read('/f', 0, 100)).toString()).toBe('abcdefghij');
  expect((await vfs.read(r, 4, 100)).toString()).toBe('efghij');
  await vfs.close(r);
  expect((await mem.read('/f', 0, 100)).toString()).toBe('abcdefghij');
  // A later reader with no writer around reads the object.
  const r2 = await vfs.open('s', '/f', { access: RO, owner: 'reader2', expect: 'file' });
  expect((await vfs.read(r2, 0, 100)).toString()).toBe('abcdefghij');
  await vfs.close(r2);
});
