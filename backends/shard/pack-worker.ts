/**
 * A packer worker thread: reads a file, picks its codec (codec.ts encodeFor), compresses it and takes
 * its CRC-32, off the main thread, which only writes payloads in order.
 */
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import { prepareFile, type PrepareTask, type Prepared } from './prepare.ts';

/**
 * Moves the payload's memory to the main thread when it owns a whole ArrayBuffer; memory a native
 * codec allocated (lz4-napi's external buffers) cannot be transferred (DataCloneError): copied.
 */
function send(m: { id: number } & Prepared): void {
  const s = m.stored;
  if (s.byteLength > 0 && s.byteOffset === 0 && s.buffer.byteLength === s.byteLength) {
    try {
      parentPort?.postMessage(m, [s.buffer as ArrayBuffer]);
      return;
    } catch {
      // Not transferable: fall through to a copy.
    }
  }
  parentPort?.postMessage(m);
}

parentPort?.on('message', (m: PrepareTask & { id: number }) => {
  prepareFile(m, readFile, crc32).then(
    (r) => send({ id: m.id, ...r }),
    (e: unknown) => parentPort?.postMessage({ id: m.id, error: (e as Error).message, code: (e as NodeJS.ErrnoException).code }),
  );
});
