/**
 * The real stack in a child process (tests that measure the server's own memory). Prints one JSON
 * line {port, diskDir, pid} when listening; SIGTERM stops it.
 */
import { startDav } from './helpers.ts';

const stack = await startDav();
await stack.addUser('alice', process.env.DAV_PASSWORD ?? 'alice-pw');
process.stdout.write(`${JSON.stringify({ port: stack.port, diskDir: stack.diskDir, pid: process.pid })}\n`);
process.on('SIGTERM', () => {
  stack.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
setInterval(() => {}, 1 << 30);
