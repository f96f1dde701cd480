#!/usr/bin/env node
// Entry point. The sources are TypeScript run directly by Node 24's type stripping, so an older
// Node cannot even parse them: say so clearly instead of failing with a syntax error.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `portico: Node.js 24 or newer is required (this is ${process.version}).\n` +
      'Run it with Node 24 (e.g. `npm start`, which uses the node from node_modules/.bin).\n',
  );
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
