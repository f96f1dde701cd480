/**
 * `portico user add|passwd|del|list`: manage the local user store in `<stateDir>/portico.db`.
 *
 * Passwords never appear on the command line (they would be visible in `ps` and shell history):
 * they are prompted twice without echo on a terminal, or read as one line from stdin with
 * --password-stdin (scripts: `printf '%s\n' "$PW" | portico user add bob --password-stdin`).
 *
 * These commands open the store directly; running them while `portico serve` uses the same state
 * directory is safe (SQLite WAL with a busy timeout), and the server sees changes on the next login.
 */
import { createInterface } from 'node:readline';
import { Command, InvalidArgumentError, type Option } from 'commander';
import { LocalUserStore } from '../auth/local-users.ts';
import { loadOrCreateSecret } from '../auth/secret-box.ts';
import { MetadataStore } from '../store/metadata-store.ts';
import { VfsError } from '../vfs/errors.ts';
import type { LoadedConfig, ToolConfigOptions } from './main.ts';

export interface UserCommandDeps {
  configOption: () => Option;
  loadToolConfig: (opts: ToolConfigOptions) => LoadedConfig;
  action: <A extends unknown[]>(fn: (...args: A) => void | Promise<void>) => (...args: A) => Promise<void>;
  printTable: (header: string[], rows: string[][]) => void;
}

/** Opens the user store named by the config/--state, runs fn, always closes the store. */
async function withUsers<T>(deps: UserCommandDeps, opts: ToolConfigOptions, fn: (users: LocalUserStore) => Promise<T> | T): Promise<T> {
  const { config } = deps.loadToolConfig(opts);
  const store = MetadataStore.open(config.server.stateDir);
  try {
    const secret = loadOrCreateSecret(config.server.stateDir, config.auth.secretKey);
    return await fn(new LocalUserStore(store, { secret, bcryptRounds: config.auth.bcryptRounds }));
  } finally {
    store.close();
  }
}

/** Reads the first line of stdin (without its line ending). */
export async function readStdinLine(input: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const rl = createInterface({ input, terminal: false });
  try {
    for await (const line of rl) return line;
  } finally {
    rl.close();
  }
  throw new VfsError('EINVAL', 'no password on stdin (expected one line)');
}

/** Prompts on the terminal without echoing what is typed. */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  const out = process.stderr;
  return new Promise((resolve, reject) => {
    let value = '';
    out.write(question);
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    const done = (err?: Error): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      out.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new VfsError('ECANCELED', 'cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function readNewPassword(fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin) return readStdinLine();
  if (!process.stdin.isTTY) {
    throw new VfsError('EINVAL', 'no terminal to prompt for a password: pass it on stdin with --password-stdin');
  }
  const first = await promptHidden('New password: ');
  const second = await promptHidden('Repeat password: ');
  if (first !== second) throw new VfsError('EINVAL', 'passwords do not match');
  return first;
}

function parseId(what: string): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
    return Number(v);
  };
}

interface AddOptions extends ToolConfigOptions {
  uid?: number;
  gid?: number;
  groups?: string;
  passwordStdin?: boolean;
}

export function userCommand(deps: UserCommandDeps): Command {
  const user = new Command('user').description('manage local users');
  const withStoreOptions = (c: Command): Command => c.addOption(deps.configOption()).option('--state <dir>', 'state directory holding the user store');

  withStoreOptions(
    user
      .command('add')
      .description('add a user (password prompted, or one line on stdin with --password-stdin)')
      .argument('<name>', 'user name')
      .option('--uid <n>', 'numeric user id (default: next free from 10000)', parseId('uid'))
      .option('--gid <n>', 'primary group id (default: the uid)', parseId('gid'))
      .option('--groups <list>', 'comma-separated group names')
      .option('--password-stdin', 'read the password from stdin'),
  ).action(
    deps.action(async (name: string, opts: AddOptions) => {
      const password = await readNewPassword(opts.passwordStdin);
      const groups = opts.groups === undefined ? undefined : opts.groups.split(',').map((g) => g.trim()).filter((g) => g !== '');
      const info = await withUsers(deps, opts, (users) =>
        users.addUser({
          name,
          password,
          ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
          ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
          ...(groups !== undefined ? { groups } : {}),
        }),
      );
      process.stdout.write(`added user ${info.name} (uid ${info.uid}, gid ${info.gid})\n`);
    }),
  );

  withStoreOptions(
    user
      .command('passwd')
      .description("change a user's password")
      .argument('<name>', 'user name')
      .option('--password-stdin', 'read the password from stdin'),
  ).action(
    deps.action(async (name: string, opts: ToolConfigOptions & { passwordStdin?: boolean }) => {
      // Fail before prompting when the user does not exist.
      await withUsers(deps, opts, (users) => {
        if (!users.getUser(name)) throw new VfsError('ENOENT', `no user named "${name}"`);
      });
      const password = await readNewPassword(opts.passwordStdin);
      await withUsers(deps, opts, (users) => users.setPassword(name, password));
      process.stdout.write(`password changed for ${name}\n`);
    }),
  );

  withStoreOptions(user.command('del').description('delete a user').argument('<name>', 'user name')).action(
    deps.action(async (name: string, opts: ToolConfigOptions) => {
      await withUsers(deps, opts, (users) => users.deleteUser(name));
      process.stdout.write(`deleted user ${name}\n`);
    }),
  );

  withStoreOptions(user.command('list').description('list users')).action(
    deps.action(async (opts: ToolConfigOptions) => {
      const list = await withUsers(deps, opts, (users) => users.listUsers());
      deps.printTable(
        ['NAME', 'UID', 'GID', 'GROUPS', 'DISABLED'],
        list.map((u) => [u.name, String(u.uid), String(u.gid), u.groups.join(','), u.disabled ? 'yes' : 'no']),
      );
    }),
  );

  return user;
}
