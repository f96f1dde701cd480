/**
 * The Docker image (docker/Dockerfile) as far as this machine can check it: no Docker engine runs
 * here (`docker build` needs one), so the image itself is not built. What is checked instead:
 * - the addon stage's build, replayed: a directory holding only what that stage copies (package
 *   files, scripts/, the three native/ source trees) with the packages `npm ci --ignore-scripts`
 *   installs, the build scripts run as the stage runs them, every addon built and loadable by a
 *   Node 24 process — so the stage does not depend on a file it does not copy;
 * - the runtime stage puts each addon where the code loads it by default (the ADDON_PATH of each
 *   loader), and both stages use the Node major version the repository pins.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCKERFILE = readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const ADDONS = [
  { loader: 'backends/local/native.ts', built: 'backends/local/native/build/Release/portico_local.node' },
  { loader: 'protocols/fuse/native.ts', built: 'protocols/fuse/native/build/Release/portico_fuse.node' },
  { loader: 'protocols/smb/native.ts', built: 'protocols/smb/native/build/Release/portico_smb.node' },
];

/** The instructions of one stage (from its FROM to the next), continuation lines joined. */
function stages(text: string): string[][] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const out: string[][] = [];
  for (const l of lines) {
    if (/^FROM\s/i.test(l)) out.push([]);
    out.at(-1)?.push(l);
  }
  return out;
}

const hasFuseHeaders = (() => {
  try {
    execFileSync('pkg-config', ['--exists', 'fuse3']);
    return true;
  } catch {
    return false;
  }
})();

describe('Docker image', () => {
  const [build, runtime] = stages(DOCKERFILE);

  it('both stages use the pinned Node major; the runtime stage places each addon where its loader looks', () => {
    const pinned = /^\^?(\d+)\./.exec(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies.node)![1];
    expect(stages(DOCKERFILE).map((s) => /^FROM\s+node:(\d+)-/i.exec(s[0]!)?.[1])).toEqual([pinned, pinned]);
    for (const a of ADDONS) {
      // The loader's default path, relative to the repository (and so to /app in the image).
      const src = readFileSync(join(ROOT, a.loader), 'utf8');
      const rel = /new URL\('\.\/(native\/build\/Release\/[a-z_]+\.node)'/.exec(src)?.[1];
      expect(rel, a.loader).toBeDefined();
      expect(relative(ROOT, join(ROOT, a.loader, '..', rel!))).toBe(a.built);
      expect(runtime!.some((l) => l.startsWith('COPY --from=addons') && l.endsWith(` ./${a.built}`) && l.includes(`/build/${a.built} `))).toBe(true);
    }
    // The runtime stage has what the FUSE addon needs to load and mount (libfuse3, fusermount3).
    expect(runtime!.some((l) => /apt-get install .*\bfuse3\b/.test(l))).toBe(true);
  });

  it.skipIf(!hasFuseHeaders)('the addon stage, replayed on the files it copies, builds every addon and they load', () => {
    // What the stage copies, and nothing else (its COPY lines name the paths).
    const copies = build!.filter((l) => /^COPY\s/i.test(l)).map((l) => l.split(/\s+/).slice(1, -1)).flat();
    expect(copies).toEqual(['package.json', 'package-lock.json', 'scripts', 'backends/local/native', 'protocols/fuse/native', 'protocols/smb/native']);
    const dir = mkdtempSync(join(tmpdir(), 'portico-docker-addons-'));
    try {
      for (const c of copies) {
        cpSync(join(ROOT, c), join(dir, c), { recursive: true, filter: (s) => !/\/native\/build(\/|$)/.test(s) });
      }
      for (const a of ADDONS) expect(existsSync(join(dir, a.built))).toBe(false);
      // The packages `npm ci --ignore-scripts` gives the stage: this checkout's (the same lock file).
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
      // Run as the stage's RUN line runs them (the scripts find npm's node-gyp and Node's headers).
      const run = build!.find((l) => l.startsWith('RUN bash scripts/build-local-addon.sh'))!;
      expect(run).toBeDefined();
      const env = { ...process.env, PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}` };
      execFileSync('bash', ['-c', run.slice('RUN '.length)], { cwd: dir, env, stdio: 'pipe', timeout: 240_000 });
      for (const a of ADDONS) {
        const out = execFileSync(NODE, ['-e', `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(join(dir, a.built))}); console.log(Object.keys(m.exports).length)`], { encoding: 'utf8' });
        expect(Number(out.trim())).toBeGreaterThan(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
