/**
 * Loads the configuration: defaults < YAML file < PORTICO_* environment < CLI flags (keys documented in config/portico.example.yaml).
 *
 * Decisions (and why):
 * - Every problem is reported at once, as `<key.path>: <problem> (got <value>)`, so an operator fixes a
 *   file in one round trip. Values of keys named *secretKey or *bindPassword are never echoed (logs are not secret stores).
 * - The file is read with a 1 MiB cap and YAML aliases are capped at 100 expansions: a "billion laughs"
 *   file fails with a ConfigError instead of exhausting memory. YAML 1.2 core schema (the yaml package's
 *   default), so `yes`/`on` stay strings and duplicate keys are errors.
 * - A section whose keys are all commented out (`server:` alone, which YAML reads as null) counts as
 *   absent, so commenting out lines never turns into a type error.
 * - Environment segments are matched against the schema's own keys (`STATE_DIR` -> `stateDir`), so a
 *   variable that names no key is an error naming the variable. Variables without `__` are left to
 *   other code (e.g. PORTICO_CONFIG) unless they start with a section name (`PORTICO_LOG_LEVEL`), which
 *   is almost certainly a mistyped `PORTICO_LOG__LEVEL`.
 * - Environment values are YAML scalars (`0`, `true`, `null`), except where the schema wants a string:
 *   there the raw text is kept, so a secret key of only digits stays a string.
 * - Relative paths are resolved against the directory of the place they were written: the config
 *   file's directory for file values and defaults (cwd without a file), cwd for environment and CLI
 *   values (what a shell user expects from `--state-dir ./x`). Share sources with a scheme
 *   (`memory:`, `s3://`, `file://`, `shard+...`) are left alone.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, type PorticoConfig } from './schema.ts';

export const MAX_CONFIG_BYTES = 1024 * 1024;
export const MAX_YAML_ALIASES = 100;
const ENV_PREFIX = 'PORTICO_';

export interface ConfigIssue {
  /** Dotted key path with [i] for array elements ('' for file-level problems, the variable name for env names). */
  key: string;
  value: unknown;
  message: string;
  /** Where an override came from (an env variable name or 'command line'). */
  origin?: string;
  /** True when the value must not be printed (unknown keys, secrets). */
  hideValue?: boolean;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  readonly file: string | undefined;

  constructor(issues: ConfigIssue[], file?: string) {
    const lines = issues.map(formatIssue);
    super(`invalid configuration${file !== undefined ? ` (${file})` : ''}:\n  ${lines.join('\n  ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
    this.file = file;
  }
}

export interface LoadConfigOptions {
  file?: string;
  /** Default: process.env. Pass {} to ignore the environment. */
  env?: NodeJS.ProcessEnv;
  /** Dotted keys from CLI flags, e.g. {'protocols.webdav.port': 0, 'server.stateDir': '/x'}; [i] indexes arrays. */
  overrides?: Record<string, unknown>;
  cwd?: string;
}

export function loadConfig(opts: LoadConfigOptions = {}): PorticoConfig {
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.file === undefined ? undefined : resolve(cwd, opts.file);
  const raw: Record<string, unknown> = file === undefined ? {} : readConfigFile(file);
  dropNullSections(raw, configSchema);
  const origins = new Map<string, string>();
  const issues: ConfigIssue[] = [];

  for (const o of envOverrides(opts.env ?? process.env, issues)) {
    applyOverride(raw, o.keys, resolvePathsIn(o.keys, o.value, cwd), o.origin, origins, issues);
  }
  for (const [dotted, value] of Object.entries(opts.overrides ?? {})) {
    const keys = parseDottedKey(dotted);
    if (keys === undefined) {
      issues.push({ key: dotted, value: undefined, message: 'is not a valid key path', origin: 'command line' });
      continue;
    }
    applyOverride(raw, keys, resolvePathsIn(keys, value, cwd), 'command line', origins, issues);
  }
  if (issues.length > 0) throw new ConfigError(issues, file);

  const result = configSchema.safeParse(raw, { error: phrase });
  if (!result.success) throw new ConfigError(zodIssues(result.error.issues, raw, origins), file);
  const base = file === undefined ? cwd : dirname(file);
  return resolvePathsIn([], result.data, base) as PorticoConfig;
}

/** For `portico config check`: validates one file on its own (no environment, no flags). */
export function checkConfigFile(
  file: string,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): { ok: true; config: PorticoConfig } | { ok: false; error: ConfigError } {
  try {
    return { ok: true, config: loadConfig({ file, env: opts.env ?? {}, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) }) };
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, error: e };
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// File

function readConfigFile(file: string): Record<string, unknown> {
  const fail = (message: string): never => {
    throw new ConfigError([{ key: '', value: undefined, message }], file);
  };
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) fail(`${file}: not a regular file`);
    if (st.size > MAX_CONFIG_BYTES) fail(`${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as { code?: string }).code;
    return fail(`${file}: cannot read config file: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  // The file may have grown between stat and read.
  if (text.length > MAX_CONFIG_BYTES) fail(`${file}: larger than ${MAX_CONFIG_BYTES} bytes`);

  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((err) => {
        const at = lineCounter.linePos(err.pos[0]);
        return { key: '', value: undefined, message: `${file}:${at.line}:${at.col}: ${err.message.split('\n')[0]}` };
      }),
      file,
    );
  }
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    return fail(`${file}: ${(e as Error).message}`);
  }
  if (js === null || js === undefined) return {};
  if (!isPlainObject(js)) return fail(`${file}: the top level must be a mapping of keys`);
  const bound = checkTreeBounds(js);
  if (bound) return fail(`${file}: ${bound}`);
  return js;
}

/** Most nodes a config tree may have after alias expansion, and how deep it may nest. */
const MAX_TREE_NODES = 200_000;
const MAX_TREE_DEPTH = 256;

/**
 * YAML aliases are counted by the parser, but not what they point to: a self-referencing alias
 * makes a cycle, a chain of aliases multiplies nesting depth past any recursion limit, and one large
 * anchor referenced many times multiplies the work of every later pass. One iterative walk with a
 * node budget and a depth limit catches all three before anything recursive sees the tree.
 */
function checkTreeBounds(root: unknown): string | undefined {
  const stack: [unknown, number][] = [[root, 0]];
  let visited = 0;
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (++visited > MAX_TREE_NODES) return `more than ${MAX_TREE_NODES} values after expanding aliases (a cyclic or fanned-out alias?)`;
    if (depth > MAX_TREE_DEPTH) return `nested deeper than ${MAX_TREE_DEPTH} levels`;
    if (Array.isArray(node)) for (const v of node) stack.push([v, depth + 1]);
    else if (node !== null && typeof node === 'object') for (const v of Object.values(node)) stack.push([v, depth + 1]);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Schema walking (zod 4 exposes each schema's definition as `.def`)

type Schema = z.ZodType;
interface Def {
  type: string;
  innerType?: Schema;
  in?: Schema;
  shape?: Record<string, Schema>;
  catchall?: Schema;
  valueType?: Schema;
  element?: Schema;
  values?: unknown[];
}
const defOf = (s: Schema): Def => (s as unknown as { def: Def }).def;
const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional']);

/** Strips defaults/optional/pipes; reports whether null is accepted on the way. */
function unwrap(s: Schema): { node: Schema; def: Def; nullable: boolean } {
  let nullable = false;
  for (;;) {
    const d = defOf(s);
    if (d.type === 'nullable') nullable = true;
    if (WRAPPERS.has(d.type) && d.innerType) s = d.innerType;
    else if (d.type === 'pipe' && d.in) s = d.in;
    else return { node: s, def: d, nullable };
  }
}

/** The schema of `key` inside an object/record/array schema; undefined if the key cannot exist. */
function childSchema(s: Schema, key: string | number): Schema | undefined {
  const { def } = unwrap(s);
  if (def.type === 'object') {
    if (typeof key === 'string' && def.shape && Object.hasOwn(def.shape, key)) return def.shape[key];
    if (def.catchall && defOf(def.catchall).type !== 'never') return def.catchall;
    return undefined;
  }
  if (def.type === 'record') return def.valueType;
  if (def.type === 'array') return typeof key === 'number' ? def.element : undefined;
  if (def.type === 'unknown' || def.type === 'any') return s;
  return undefined;
}

function knownKeys(s: Schema): string[] {
  const { def } = unwrap(s);
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function schemaAt(keys: readonly (string | number)[]): Schema | undefined {
  let s: Schema | undefined = configSchema;
  for (const k of keys) {
    if (s === undefined) return undefined;
    s = childSchema(s, k);
  }
  return s;
}

function dropNullSections(raw: unknown, s: Schema): void {
  if (Array.isArray(raw)) {
    raw.forEach((v, i) => {
      const c = childSchema(s, i);
      if (c) dropNullSections(v, c);
    });
    return;
  }
  if (!isPlainObject(raw)) return;
  for (const [k, v] of Object.entries(raw)) {
    const c = childSchema(s, k);
    if (!c) continue;
    const u = unwrap(c);
    if (v === null && !u.nullable && ['object', 'record', 'array'].includes(u.def.type)) delete raw[k];
    else dropNullSections(v, c);
  }
}

// ---------------------------------------------------------------------------------------------------
// Overrides

interface Override {
  keys: (string | number)[];
  value: unknown;
  origin: string;
}

const toSnake = (k: string): string => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
const toCamel = (seg: string): string => seg.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function envOverrides(env: NodeJS.ProcessEnv, issues: ConfigIssue[]): Override[] {
  const out: Override[] = [];
  const sections = knownKeys(configSchema).map(toSnake);
  for (const [name, text] of Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!name.startsWith(ENV_PREFIX) || text === undefined) continue;
    const rest = name.slice(ENV_PREFIX.length);
    const bad = (message: string): void => {
      issues.push({ key: name, value: undefined, message, hideValue: true });
    };
    if (!rest.includes('__')) {
      const upper = rest.toUpperCase();
      const section = sections.find((s) => upper === s || upper.startsWith(s + '_'));
      if (section !== undefined) {
        bad(`does not name a configuration key: segments are separated by "__" (e.g. PORTICO_${section}__<KEY>)`);
      }
      continue;
    }
    const segs = rest.split('__');
    if (segs.some((s) => !/^[A-Za-z0-9]+(_[A-Za-z0-9]+)*$/.test(s))) {
      bad('does not name a configuration key: each segment must be a key in SCREAMING_SNAKE_CASE');
      continue;
    }
    let s: Schema = configSchema;
    const keys: string[] = [];
    let error: string | undefined;
    for (const seg of segs) {
      const { def } = unwrap(s);
      const here = keys.length === 0 ? 'the configuration' : keys.join('.');
      if (def.type === 'array') {
        error = `${here} is a list and cannot be set from the environment`;
        break;
      }
      let key: string | undefined;
      let next: Schema | undefined;
      if (def.type === 'object') {
        key = Object.keys(def.shape ?? {}).find((k) => toSnake(k) === seg.toUpperCase());
        if (key !== undefined) next = def.shape![key];
        else if (def.catchall && defOf(def.catchall).type !== 'never') {
          key = toCamel(seg);
          next = def.catchall;
        }
      } else if (def.type === 'record' || def.type === 'unknown' || def.type === 'any') {
        key = toCamel(seg);
        next = childSchema(s, key);
      }
      if (key === undefined || next === undefined) {
        const known = knownKeys(s);
        error =
          def.type === 'object'
            ? `${keys.length === 0 ? 'there is no section' : `${here} has no key`} "${toCamel(seg)}"${known.length ? ` (known: ${known.map(toSnake).join(', ')})` : ''}`
            : `${here} is not a section`;
        break;
      }
      keys.push(key);
      s = next;
    }
    if (error === undefined) {
      const leaf = unwrap(s).def.type;
      if (leaf === 'object' || leaf === 'record') error = `${keys.join('.')} is a section; set its keys with ${name}__<KEY>`;
      else if (leaf === 'array') error = `${keys.join('.')} is a list and cannot be set from the environment`;
    }
    if (error !== undefined) {
      bad(`does not name a configuration key: ${error}`);
      continue;
    }
    out.push({ keys, value: envValue(text, s), origin: name });
  }
  return out;
}

/** The texts YAML reads as null (the empty text included). */
const YAML_NULL = /^\s*(null|Null|NULL|~)?\s*$/;

function envValue(text: string, s: Schema): unknown {
  const { def, nullable } = unwrap(s);
  let parsed: unknown;
  try {
    // logLevel 'error': the yaml package would otherwise warn through process.emitWarning,
    // quoting the text — which may be a secret.
    parsed = YAML.parse(text, { maxAliasCount: 0, logLevel: 'error' });
  } catch {
    return text;
  }
  const scalar = parsed === null || ['string', 'number', 'boolean'].includes(typeof parsed);
  if (!scalar) return text;
  const wantsString = def.type === 'string' || def.type === 'enum' || (def.type === 'literal' && def.values?.every((v) => typeof v === 'string'));
  // Where the schema wants a string, the raw text is the value: quotes, '#', tags and anchors in an
  // environment variable are part of it, not YAML syntax. Only YAML's own null spellings unset a
  // nullable string ('#' alone also parses to null, as a comment, but is a value like any other).
  if (wantsString) return nullable && YAML_NULL.test(text) ? null : text;
  return parsed;
}

/** 'a.b[0].c' -> ['a', 'b', 0, 'c']; undefined when malformed. */
function parseDottedKey(dotted: string): (string | number)[] | undefined {
  const keys: (string | number)[] = [];
  for (const part of dotted.split('.')) {
    const m = /^([^[\]]+)((?:\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    keys.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) keys.push(Number(idx[1]));
  }
  return keys;
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

function applyOverride(
  raw: Record<string, unknown>,
  keys: (string | number)[],
  value: unknown,
  origin: string,
  origins: Map<string, string>,
  issues: ConfigIssue[],
): void {
  if (keys.some((k) => typeof k === 'string' && FORBIDDEN_KEYS.has(k))) {
    issues.push({ key: formatKey(keys), value: undefined, message: 'is not a valid key', origin, hideValue: true });
    return;
  }
  let node: Record<string, unknown> | unknown[] = raw;
  for (let i = 0; i < keys.length - 1; i++) {
    const k = keys[i]!;
    const wantArray = typeof keys[i + 1] === 'number';
    let next = (node as Record<string | number, unknown>)[k];
    if (next === undefined || next === null) {
      next = wantArray ? [] : {};
      (node as Record<string | number, unknown>)[k] = next;
    } else if (wantArray ? !Array.isArray(next) : !isPlainObject(next)) {
      issues.push({ key: formatKey(keys.slice(0, i + 1)), value: next, message: `must be ${wantArray ? 'a list' : 'a mapping'} to apply ${formatKey(keys)}`, origin });
      return;
    }
    node = next as Record<string, unknown> | unknown[];
  }
  (node as Record<string | number, unknown>)[keys[keys.length - 1]!] = structuredClone(value);
  origins.set(formatKey(keys), origin);
}

// ---------------------------------------------------------------------------------------------------
// Paths

function isPathKey(keys: readonly (string | number)[], value: string): boolean {
  const k = keys.map((x) => (typeof x === 'number' ? '*' : x)).join('.');
  if (k === 'server.stateDir' || k === 'protocols.fuse.mountpoint') return true;
  if (k === 'auth.ldap.tls.ca' || k === 'auth.ldap.bindPasswordFile') return true;
  // TLS material of any protocol (protocols.webdav.tls.cert / .key, later SMB/NFS ones).
  if (/^protocols\.[^.]+\.tls\.(cert|key)$/.test(k)) return true;
  if (k === 'log.audit.file') return value !== '-';
  // A scheme (memory:, s3://, file://, shard+...) is not a directory path.
  if (k === 'shares.*.source') return !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value);
  return false;
}

/** Resolves the relative path values found in `value`, which sits at `keys` in the config tree. */
function resolvePathsIn(keys: (string | number)[], value: unknown, base: string): unknown {
  if (typeof value === 'string') return isPathKey(keys, value) && !isAbsolute(value) ? resolve(base, value) : value;
  if (Array.isArray(value)) return value.map((v, i) => resolvePathsIn([...keys, i], v, base));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolvePathsIn([...keys, k], v, base);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------
// Issues

/** Per-parse zod error map: turns zod's phrasing into "must ..." (schema-level messages take precedence). */
function phrase(iss: z.core.$ZodRawIssue): string | undefined {
  const n = (v: unknown): string => String(v);
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'is required';
      const expected = String(iss.expected);
      if (expected === 'int') return 'must be an integer';
      if (expected === 'object' || expected === 'record') return 'must be a mapping';
      if (expected === 'array') return 'must be a list';
      return `must be a${/^[aeiou]/.test(expected) ? 'n' : ''} ${expected}`;
    }
    case 'too_big':
      if (iss.origin === 'string') return `must be at most ${n(iss.maximum)} characters`;
      if (iss.origin === 'array') return `must have at most ${n(iss.maximum)} items`;
      return `must be ${iss.inclusive ? '<=' : '<'} ${n(iss.maximum)}`;
    case 'too_small':
      if (iss.origin === 'string') return Number(iss.minimum) === 1 ? 'must not be empty' : `must be at least ${n(iss.minimum)} characters`;
      if (iss.origin === 'array') return `must have at least ${n(iss.minimum)} item${Number(iss.minimum) === 1 ? '' : 's'}`;
      return `must be ${iss.inclusive ? '>=' : '>'} ${n(iss.minimum)}`;
    case 'invalid_value':
      return iss.values.length === 1 ? `must be ${JSON.stringify(iss.values[0])}` : `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_format':
      return 'pattern' in iss && iss.pattern ? `must match ${String(iss.pattern)}` : `must be a valid ${iss.format}`;
    case 'invalid_union':
      return 'is not one of the allowed values';
    default:
      return undefined;
  }
}

function zodIssues(zissues: readonly z.core.$ZodIssue[], raw: unknown, origins: Map<string, string>): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of zissues) {
    const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (iss.code === 'unrecognized_keys') {
      const known = knownKeys(schemaAt(path) ?? configSchema);
      for (const k of iss.keys) {
        const guess = closest(k, known);
        out.push(withOrigin({
          key: formatKey([...path, k]),
          value: getAt(raw, [...path, k]),
          message: `unknown key${guess !== undefined ? ` (did you mean "${guess}"?)` : ''}`,
          hideValue: true,
        }, origins));
      }
      continue;
    }
    const key = formatKey(path);
    const secret = /secretKey$|bindPassword$/i.test(key);
    out.push(withOrigin({ key, value: secret ? '<redacted>' : getAt(raw, path), message: iss.message, hideValue: secret }, origins));
  }
  return out;
}

function withOrigin(issue: ConfigIssue, origins: Map<string, string>): ConfigIssue {
  // The nearest ancestor that was set by an override tells the operator where to look.
  for (let k = issue.key; k !== ''; ) {
    const o = origins.get(k);
    if (o !== undefined) return { ...issue, origin: o };
    const parent = k.replace(/(\.[^.[\]]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\]|^[^.[\]]+)$/, '');
    if (parent === k) break;
    k = parent;
  }
  return issue;
}

function formatIssue(i: ConfigIssue): string {
  const got = i.hideValue || i.value === undefined ? '' : ` (got ${showValue(i.value)})`;
  const from = i.origin !== undefined ? ` [from ${i.origin}]` : '';
  return `${i.key !== '' ? `${i.key}: ` : ''}${i.message}${got}${from}`;
}

function showValue(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function formatKey(keys: readonly (string | number)[]): string {
  let out = '';
  for (const k of keys) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(k)) out += out === '' ? k : `.${k}`;
    else out += `[${JSON.stringify(k)}]`;
  }
  return out;
}

function getAt(v: unknown, keys: readonly (string | number)[]): unknown {
  for (const k of keys) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}
