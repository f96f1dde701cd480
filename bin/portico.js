#!/usr/bin/env node
// Entry point. The sources are TypeScript run directly by Node 24's type stripping, so an older
// Node cannot even parse them: say so clearly instead of failing with a syntax error.
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `portico: Node.js 24 or newer is required (this is ${process.version}).\n` +
      'Run it with Node 24 (e.g. `npm start`, which uses the node from node_modules/.bin).\n',
  );
  process.exit(1);
}

/*
 * V8 flags for the long-running gateway (`serve`), set here so that every way of starting it gets
 * them (`npm start`, `node bin/portico.js serve`, Docker's ENTRYPOINT, the benchmarks). Heap flags
 * only work on the command line, so the process re-executes itself once with them (execve: same
 * PID, no second process); a flag the user already gave (command line or NODE_OPTIONS) is kept.
 *
 * --max-semi-space-size=8: V8 lets the young generation grow to 64 MB semi-spaces; after a busy
 *   moment (a 10,000-entry PROPFIND renders ~3 MB of strings) the process keeps that memory.
 *   8 MB semi-spaces kept RSS about 25 MB lower with no measurable cost on small requests.
 * --expose-gc: a large PUT body arrives as 64 KiB socket buffers that die young but outside the
 *   JS heap, so V8 only notices them through its external-memory limit and answers with full
 *   (mark-compact) collections: half of a 1 GiB PUT's CPU and +70 MB RSS. The WebDAV PUT asks
 *   for a young-generation collection every few MiB instead (protocols/webdav/methods/put.ts),
 *   which frees them at once: 1 GiB PUT CPU 2.7 s -> 1.3 s, peak RSS 206 -> 154 MB.
 */
const SERVE_FLAGS = ['--max-semi-space-size=8', '--expose-gc'];
if (process.argv[2] === 'serve') {
  // libuv's thread pool runs every asynchronous file operation, fsync and bcrypt. Its default of 4
  // threads lets four fsyncs (a durable PUT each) or four bcrypts hold every other file operation
  // up; 16 gave concurrent durable 4 KiB PUTs about 30% more throughput. Read by libuv when the
  // pool first starts, i.e. after this line; a value the user set is kept.
  process.env.UV_THREADPOOL_SIZE ??= '16';
}
if (process.argv[2] === 'serve' && typeof process.execve === 'function') {
  const given = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  const missing = SERVE_FLAGS.filter((f) => !given.includes(f.split('=')[0]));
  if (missing.length > 0) {
    process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
  }
}

// The compile cache keeps type stripping's output (and V8's code cache) on disk, in
// <tmpdir>/node-compile-cache unless NODE_COMPILE_CACHE says otherwise: later starts neither
// instantiate the TypeScript stripper (a WebAssembly module, ~25 MB resident for the whole life of
// the process) nor compile from scratch. Content-hashed, so a changed source is never served stale.
module.enableCompileCache?.();

const { main } = await import('../src/cli/main.ts');
await main(process.argv);
