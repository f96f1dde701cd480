/**
 * The `portico` command line.
 *
 *   portico serve [SOURCE]         run the gateway
 *   portico mount SOURCE DIR       mount one share with FUSE at DIR, no network servers (protocols/fuse)
 *   portico user add|passwd|del|list   manage local users (src/cli/user-commands.ts)
 *   portico cache refresh SHARE[/path]  drop cached metadata in the running gateway (src/cli/cache-commands.ts)
 *   portico auth test USER         one login as a protocol would do it: principal or reason (src/cli/auth-commands.ts)
 *   portico shard pack|ls ...       build and inspect shard sets (src/cli/shard-commands.ts)
 *   portico share list             show the configured shares
 *   portico config check FILE      validate a config file (exit 2 when invalid)
 *
 * Shares and `serve SOURCE` (decision):
 * - config has no shares: one share named `data` is made from SOURCE (default ./data);
 * - config has shares and SOURCE is given: SOURCE replaces the FIRST share's source (the others stay);
 * - config has shares and no SOURCE: the config is used as is.
 * A SOURCE that is a local directory path (no scheme such as memory: or s3://) is created if missing.
 *
 * Exit codes: 0 ok; 1 runtime error (VfsError, usage); 2 invalid configuration (ConfigError).
 * Errors print one line (a ConfigError: its list of issues) to stderr; stack traces only with
 * --log-level debug or trace.
 *
 * `--config` defaults to $PORTICO_CONFIG. Other PORTICO_* variables are config overrides
 * (config/portico.example.yaml). Precedence: defaults < file < env < these flags.
 */
import '../../protocols/index.ts';
import { mkdirSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, checkConfigFile, loadConfig } from '../config/load.ts';
import type { PorticoConfig } from '../config/schema.ts';
import { createLogger } from '../log/logger.ts';
import { Gateway } from '../server/gateway.ts';
import { protocolRegistry } from '../server/plugin.ts';
import { VfsError } from '../vfs/errors.ts';
import { userCommand } from './user-commands.ts';
import { generateSelfSigned } from '../../protocols/webdav/tls.ts';
import { cacheCommand } from './cache-commands.ts';
import { authCommand } from './auth-commands.ts';
import { shardCommand } from './shard-commands.ts';

/** Protocols that get a --<name>-port flag even before their plugin exists. */
const PORT_PROTOCOLS = ['webdav', 'nfs', 'smb'];
/** The share made by `serve` when the config has none. */
export const DEFAULT_SHARE_NAME = 'data';
export const DEFAULT_SOURCE = './data';
/** A source with a URL-like scheme is not a directory path (one letter = Windows drive). */
const SCHEME_RE = /^[A-Za-z][A-Za-z0-9+.-]+:/;

let showStacks = false;

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function parseIntArg(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(value);
}

export interface ToolConfigOptions {
  config?: string;
  state?: string;
}

/** Overrides shared by every command that reads the config. */
function commonOverrides(opts: ToolConfigOptions): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (opts.state !== undefined) o['server.stateDir'] = opts.state;
  return o;
}

function isOnlyMissingShares(e: unknown): boolean {
  return e instanceof ConfigError && e.issues.length > 0 && e.issues.every((i) => i.key === 'shares');
}

export interface LoadedConfig {
  config: PorticoConfig;
  /** False when the file (if any) defined no share and a placeholder/default share was added. */
  hadShares: boolean;
}

/**
 * Loads the config for a command; a config without shares is completed with `fallbackShare`
 * (user and share commands only need the state directory, `serve` builds the `data` share).
 */
export function loadWithShares(
  file: string | undefined,
  overrides: Record<string, unknown>,
  fallbackShare: { name: string; source: string },
): LoadedConfig {
  const base = { env: process.env, overrides, ...(file !== undefined ? { file } : {}) };
  try {
    return { config: loadConfig(base), hadShares: true };
  } catch (e) {
    if (!isOnlyMissingShares(e)) throw e;
  }
  return { config: loadConfig({ ...base, overrides: { ...overrides, shares: [fallbackShare] } }), hadShares: false };
}

/** For user/share commands: the config with at least the state directory and auth settings. */
export function loadToolConfig(opts: ToolConfigOptions): LoadedConfig {
  return loadWithShares(opts.config, commonOverrides(opts), { name: DEFAULT_SHARE_NAME, source: 'memory:' });
}

interface ServeOptions extends ToolConfigOptions {
  listen?: string;
  adminPort?: number;
  fuseMount?: string;
  fuseUser?: string;
  fuseShare?: string;
  logLevel?: string;
  nfsSquash?: string;
  nfsAnonUid?: number;
  nfsAnonGid?: number;
  [key: string]: unknown;
}

function portFlagNames(): string[] {
  const names = new Set(PORT_PROTOCOLS);
  for (const d of protocolRegistry.values()) if (d.name !== 'fuse') names.add(d.name);
  return [...names];
}

const camel = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export function serveConfig(source: string | undefined, opts: ServeOptions): LoadedConfig {
  const overrides = commonOverrides(opts);
  if (opts.listen !== undefined) overrides['server.listen'] = opts.listen;
  if (opts.adminPort !== undefined) overrides['admin.port'] = opts.adminPort;
  if (opts.fuseMount !== undefined) overrides['protocols.fuse.mountpoint'] = opts.fuseMount;
  if (opts.fuseUser !== undefined) overrides['protocols.fuse.user'] = opts.fuseUser;
  if (opts.fuseShare !== undefined) overrides['protocols.fuse.share'] = opts.fuseShare;
  if (opts.logLevel !== undefined) overrides['log.level'] = opts.logLevel;
  // Quick-start NFS squashing (protocols.nfs.squash / anonUid / anonGid; per-export rules are config-only).
  if (opts.nfsSquash !== undefined) overrides['protocols.nfs.squash'] = opts.nfsSquash;
  if (opts.nfsAnonUid !== undefined) overrides['protocols.nfs.anonUid'] = opts.nfsAnonUid;
  if (opts.nfsAnonGid !== undefined) overrides['protocols.nfs.anonGid'] = opts.nfsAnonGid;
  for (const name of portFlagNames()) {
    const v = opts[camel(`${name}-port`)];
    if (typeof v === 'number') overrides[`protocols.${name}.port`] = v;
  }
  let loaded = loadWithShares(opts.config, overrides, { name: DEFAULT_SHARE_NAME, source: source ?? DEFAULT_SOURCE });
  if (loaded.hadShares && source !== undefined) {
    loaded = { config: loadConfig({ env: process.env, ...(opts.config !== undefined ? { file: opts.config } : {}), overrides: { ...overrides, 'shares[0].source': source } }), hadShares: true };
  }
  // --s3-endpoint applies to every s3:// share (a flag beats the config, like every other flag).
  const endpoint = opts.s3Endpoint;
  if (typeof endpoint === 'string') {
    for (const share of loaded.config.shares) {
      if (share.source.startsWith('s3://') || share.source.startsWith('shard+s3://')) share.options = { ...share.options, endpoint };
    }
  }
  return loaded;
}

async function serve(source: string | undefined, opts: ServeOptions): Promise<void> {
  const { config, hadShares } = serveConfig(source, opts);
  // Only the directory named on the command line (or the default ./data) is created; a share
  // directory from a config file that does not exist is a configuration mistake to surface.
  const cliSource = !hadShares || source !== undefined ? config.shares[0]!.source : undefined;
  if (cliSource !== undefined && !SCHEME_RE.test(cliSource)) mkdirSync(cliSource, { recursive: true });
  const logger = createLogger(config.log);
  const gateway = new Gateway(config, { logger });
  await gateway.start();
  gateway.installSignalHandlers();
  // Keep the process alive even when nothing listens (every protocol and the admin port disabled):
  // it then only waits for a signal.
  setInterval(() => {}, 2 ** 30);
}

function shareList(opts: ToolConfigOptions): void {
  const { config, hadShares } = loadToolConfig(opts);
  if (!hadShares) {
    process.stdout.write(`no shares configured (portico serve DIR serves DIR as share "${DEFAULT_SHARE_NAME}")\n`);
    return;
  }
  printTable(
    ['NAME', 'SOURCE', 'PROTOCOLS', 'READONLY'],
    config.shares.map((s) => [s.name, s.source, s.protocols.join(','), String(s.readOnly)]),
  );
}

export function printTable(header: string[], rows: string[][], out: NodeJS.WritableStream = process.stdout): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  out.write([line(header), ...rows.map(line)].join('\n') + '\n');
}

function configCheck(file: string): void {
  const r = checkConfigFile(file, { env: {} });
  if (r.ok) {
    process.stdout.write('ok\n');
    return;
  }
  throw r.error;
}

/** Reports an error the way the CLI promises: one clear line, exit code by error kind. */
export function reportError(e: unknown): number {
  if (e instanceof ConfigError) {
    process.stderr.write(`portico: ${e.message}\n`);
    return 2;
  }
  const message = e instanceof VfsError ? e.message : e instanceof Error ? e.message : String(e);
  process.stderr.write(`portico: ${message}\n`);
  if (showStacks && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return 1;
}

/** Wraps an action so errors become a message and an exit code instead of a stack trace. */
export function action<A extends unknown[]>(fn: (...args: A) => void | Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}

export function buildProgram(): Command {
  const program = new Command('portico')
    .description('Multi-protocol file gateway: SMB, NFS, WebDAV and FUSE over one VFS')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError('(run portico --help for usage)');

  const configOption = (): Option => new Option('-c, --config <file>', 'config file (YAML)').env('PORTICO_CONFIG');

  const serveCmd = program
    .command('serve')
    .description('run the gateway (SOURCE: directory or backend URL for share "data"; see docs)')
    .argument('[source]', `directory or backend source (default ${DEFAULT_SOURCE}; overrides the first share's source when the config has shares)`)
    .addOption(configOption())
    .option('--state <dir>', 'state directory (metadata store, keys)')
    .option('--listen <addr>', 'default listen address for every protocol')
    .option('--admin-port <n>', 'admin endpoint port (0 disables)', parseIntArg);
  for (const name of portFlagNames()) serveCmd.option(`--${name}-port <n>`, `${name} port (0 disables)`, parseIntArg);
  serveCmd
    .addOption(new Option('--nfs-squash <mode>', 'NFS AUTH_SYS squashing: root (uid 0 → anonymous), all, none').choices(['root', 'all', 'none']))
    .option('--nfs-anon-uid <n>', 'uid of the NFS anonymous principal (default 65534)', parseIntArg)
    .option('--nfs-anon-gid <n>', 'gid of the NFS anonymous principal (default 65534)', parseIntArg)
    .option('--fuse-mount <dir>', 'mount the shares with FUSE at this directory (one subdirectory per share)')
    .option('--fuse-user <name>', 'the Portico user the FUSE mount acts as (default admin)')
    .option('--fuse-share <name>', 'mount only this share, as the mount point itself')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint for s3:// sources (else AWS_ENDPOINT_URL_S3 or the SDK default)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .action(action((source: string | undefined, opts: ServeOptions) => serve(source, opts)));

  program
    .command('mount')
    .description('mount SOURCE (directory or backend URL) with FUSE at DIR through the VFS, without network servers; SIGINT/SIGTERM unmounts')
    .argument('<source>', 'directory or backend source (replaces the first share of a config)')
    .argument('<dir>', 'mount point (an empty directory)')
    .addOption(configOption())
    .option('--state <dir>', 'state directory (metadata store, keys)')
    .option('--fuse-user <name>', 'the Portico user the mount acts as (default admin)')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint for s3:// sources')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .action(
      action((source: string, dir: string, opts: ServeOptions) => {
        const off: ServeOptions = { ...opts, fuseMount: dir, adminPort: 0 };
        for (const name of portFlagNames()) off[camel(`${name}-port`)] = 0;
        // The share SOURCE became is the mount's root (like rclone mount), not a subdirectory.
        off.fuseShare = serveConfig(source, off).config.shares[0]!.name;
        return serve(source, off);
      }),
    );

  program.addCommand(userCommand({ configOption, loadToolConfig, action, printTable }));
  program.addCommand(cacheCommand({ configOption, loadToolConfig, action }));
  program.addCommand(authCommand({ configOption, loadToolConfig, action }));
  program.addCommand(shardCommand({ action, printTable }));

  program
    .command('cert')
    .description('TLS certificates')
    .command('generate')
    .description('write a self-signed certificate and key (portico.crt, portico.key) for protocols.webdav.tls')
    .requiredOption('--out <dir>', 'output directory (created if missing)')
    .option('--host <name...>', 'DNS names or IP addresses it is valid for (default: localhost 127.0.0.1 ::1)')
    .action(
      action(async (opts: { out: string; host?: string[] }) => {
        const r = await generateSelfSigned(opts.out, opts.host ?? []);
        process.stdout.write(
          `certificate: ${r.certFile}\nkey:         ${r.keyFile}\nfingerprint: ${r.fingerprint}\n` +
            `config:\n  protocols:\n    webdav:\n      tls: { cert: ${r.certFile}, key: ${r.keyFile} }\n`,
        );
      }),
    );

  const share = program.command('share').description('inspect shares');
  share
    .command('list')
    .description('list the configured shares')
    .addOption(configOption())
    .action(action((opts: ToolConfigOptions) => shareList(opts)));

  const config = program.command('config').description('configuration tools');
  config
    .command('check')
    .description('validate a config file (exit 0 and "ok", or exit 2 with every problem)')
    .argument('<file>', 'config file')
    .action(action((file: string) => configCheck(file)));

  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  const i = argv.indexOf('--log-level');
  const level = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--log-level='))?.slice('--log-level='.length);
  showStacks = level === 'debug' || level === 'trace';
  await buildProgram().parseAsync(argv);
}
