import { describe, expect, it } from 'vitest';
import { MEMORY_OBJECTSTORE_CAPABILITIES, MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { instrumentBackend } from '../../src/metrics/instrumented-backend.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import type { Backend, BackendCapabilities, BackendStat } from '../../src/vfs/backend.ts';
import { VfsError } from '../../src/vfs/errors.ts';

/** A tiny flat in-memory backend (files at the root only), enough to exercise the wrapper for real. */
function tinyBackend(): Backend {
  const files = new Map<string, Buffer>();
  const caps: BackendCapabilities = {
    atomicRename: true, serverSideCopy: false, randomWrites: true, emptyDirectories: true, caseSensitive: true,
    timestampPrecisionNs: 1, hardLinks: false, symlinks: false, sparseFiles: false, posixMetadata: false,
    birthTime: false, maxFileSize: 1 << 30, maxNameBytes: 255,
  };
  const st = (path: string): BackendStat => {
    if (path === '/') return { name: '', type: 'dir', size: 0, mtimeNs: 0n, ctimeNs: 0n, atimeNs: 0n };
    const data = files.get(path);
    if (!data) throw new VfsError('ENOENT', undefined, { path });
    return { name: path.slice(1), type: 'file', size: data.length, mtimeNs: 0n, ctimeNs: 0n, atimeNs: 0n };
  };
  return {
    kind: 'tiny',
    capabilities: caps,
    stat: async (p) => st(p),
    list: async () => ({ entries: [...files.keys()].sort().map(st) }),
    read: async (p, off, len) => {
      st(p);
      return files.get(p)!.subarray(off, off + len);
    },
    openFile: async (p, o) => {
      if (!files.has(p)) {
        if (!o.create) throw new VfsError('ENOENT', undefined, { path: p });
        files.set(p, Buffer.alloc(0));
      }
      return {
        read: async (off, len) => files.get(p)!.subarray(off, off + len),
        write: async (off, data) => {
          const cur = files.get(p)!;
          const next = Buffer.alloc(Math.max(cur.length, off + data.length));
          cur.copy(next);
          next.set(data, off);
          files.set(p, next);
          return data.length;
        },
        truncate: async (size) => void files.set(p, Buffer.concat([files.get(p)!, Buffer.alloc(size)]).subarray(0, size)),
        sync: async () => {},
        stat: async () => st(p),
        close: async () => {},
      };
    },
    createWriter: async (p) => {
      const chunks: Buffer[] = [];
      return {
        write: async (c) => void chunks.push(Buffer.from(c)),
        commit: async () => {
          files.set(p, Buffer.concat(chunks));
          return st(p);
        },
        abort: async () => {},
      };
    },
    mkdir: async (p) => {
      throw new VfsError('ENOTSUP', undefined, { path: p });
    },
    rmdir: async (p) => {
      throw new VfsError('ENOTDIR', undefined, { path: p });
    },
    unlink: async (p) => {
      st(p);
      files.delete(p);
    },
    rename: async (from, to) => {
      files.set(to, files.get(from) ?? Buffer.alloc(0));
      files.delete(from);
    },
    setMetadata: async (p) => st(p),
    truncate: async (p, size) => void files.set(p, Buffer.alloc(size)),
    statfs: async () => ({ totalBytes: 1, freeBytes: 1, availableBytes: 1, totalFiles: 1, freeFiles: 1, blockSize: 4096 }),
    check: async () => {},
    close: async () => {},
  };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('instrumentBackend', () => {
  it('passes results through and counts ok and error outcomes per op', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const inner = tinyBackend();
    const b = instrumentBackend(inner, metrics, 'docs');

    expect(b.kind).toBe('tiny');
    expect(b.capabilities).toBe(inner.capabilities);
    expect(typeof b.rename).toBe('function');
    expect(b.copy).toBeUndefined();
    expect(b.symlink).toBeUndefined();
    expect(b.readlink).toBeUndefined();
    expect(b.link).toBeUndefined();
    expect('copy' in b).toBe(false);

    const w = await b.createWriter('/a.txt');
    await w.write(Buffer.from('hello '));
    await w.write(Buffer.from('world'));
    expect((await w.commit()).size).toBe(11);
    expect((await b.read('/a.txt', 6, 100)).toString()).toBe('world');
    expect((await b.stat('/a.txt')).type).toBe('file');
    await expect(b.stat('/missing')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(b.stat('/missing2')).rejects.toBeInstanceOf(VfsError);
    await expect(b.mkdir('/d')).rejects.toMatchObject({ code: 'ENOTSUP' });

    const f = await b.openFile('/a.txt', { write: true });
    expect(await f.write(0, Buffer.from('J'))).toBe(1);
    expect((await f.read(0, 5)).toString()).toBe('Jello');
    await f.close();
    await b.rename!('/a.txt', '/b.txt');
    expect((await b.list('/', { limit: 10 })).entries.map((e) => e.name)).toEqual(['b.txt']);

    const text = await metrics.metricsText();
    const s = (op: string, status: string): number | undefined =>
      value(text, `portico_backend_requests_total{backend="docs",op="${op}",status="${status}"}`);
    expect(s('stat', 'ok')).toBe(1);
    expect(s('stat', 'ENOENT')).toBe(2);
    expect(s('mkdir', 'ENOTSUP')).toBe(1);
    expect(s('createWriter', 'ok')).toBe(1);
    expect(s('writer.write', 'ok')).toBe(2);
    expect(s('writer.commit', 'ok')).toBe(1);
    expect(s('read', 'ok')).toBe(1);
    expect(s('file.write', 'ok')).toBe(1);
    expect(s('file.read', 'ok')).toBe(1);
    expect(s('file.close', 'ok')).toBe(1);
    expect(s('rename', 'ok')).toBe(1);
    expect(s('list', 'ok')).toBe(1);
    // Ops never called have no series at all (no zero-valued noise per op).
    expect(s('rmdir', 'ok')).toBeUndefined();
    expect(value(text, 'portico_backend_errors_total{backend="docs",op="stat",code="ENOENT"}')).toBe(2);
    expect(value(text, 'portico_backend_request_duration_seconds_count{backend="docs",op="stat"}')).toBe(3);
  });

  it('counts a non-VfsError failure as EIO and rethrows the original error', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const inner = tinyBackend();
    const boom = new TypeError('bug in backend');
    inner.statfs = async () => {
      throw boom;
    };
    const b = instrumentBackend(inner, metrics, 'x');
    await expect(b.statfs()).rejects.toBe(boom);
    const text = await metrics.metricsText();
    expect(value(text, 'portico_backend_errors_total{backend="x",op="statfs",code="EIO"}')).toBe(1);
  });

  it('wraps the real MemoryBackend: optional methods follow its capabilities', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const posix = instrumentBackend(new MemoryBackend(), metrics, 'mem');
    expect(posix.kind).toBe('memory');
    expect(typeof posix.rename).toBe('function');
    expect(typeof posix.symlink).toBe('function');
    expect(typeof posix.readlink).toBe('function');

    await posix.mkdir('/d');
    await expect(posix.mkdir('/d')).rejects.toMatchObject({ code: 'EEXIST' });
    const w = await posix.createWriter('/d/f');
    await w.write(Buffer.from('abc'));
    await w.commit();
    await posix.symlink!('/d/f', '/l');
    expect(await posix.readlink!('/l')).toBe('/d/f');
    await posix.rename!('/d/f', '/d/g');
    await expect(posix.rmdir('/d')).rejects.toMatchObject({ code: 'ENOTEMPTY' });

    const objectStore = instrumentBackend(new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }), metrics, 'obj');
    expect(objectStore.rename).toBeUndefined();
    expect(objectStore.link).toBeUndefined();
    expect(objectStore.symlink).toBeUndefined();

    const text = await metrics.metricsText();
    const s = (op: string, status: string): number | undefined =>
      value(text, `portico_backend_requests_total{backend="mem",op="${op}",status="${status}"}`);
    expect(s('mkdir', 'ok')).toBe(1);
    expect(s('mkdir', 'EEXIST')).toBe(1);
    expect(s('symlink', 'ok')).toBe(1);
    expect(s('readlink', 'ok')).toBe(1);
    expect(s('rename', 'ok')).toBe(1);
    expect(s('rmdir', 'ENOTEMPTY')).toBe(1);
    expect(value(text, 'portico_backend_errors_total{backend="mem",op="rmdir",code="ENOTEMPTY"}')).toBe(1);
  });
});
