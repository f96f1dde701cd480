/**
 * A packer worker thread: reads a file, picks its codec (codec.ts encodeFor), compresses it and takes
 * its CRC-32, off the main thread, which only writes payloads in order.
 */
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import { prepareFile, type PrepareTask } from './prepare.ts';

parentPort?.on('message', (m: PrepareTask & { id: number }) => {
  prepareFile(m, readFile, crc32).then(
    (r) => parentPort?.postMessage({ id: m.id, ...r }, r.stored.byteLength > 0 && r.stored.byteOffset === 0 && r.stored.buffer.byteLength === r.stored.byteLength ? [r.stored.buffer as ArrayBuffer] : []),
    (e: unknown) => parentPort?.postMessage({ id: m.id, error: (e as Error).message, code: (e as NodeJS.ErrnoException).code }),
  );
});
