/**
 * The one embedded metadata store: everything that must outlive a restart and is not file content.
 *
 * - `nodes`: persistent 64-bit file ids. A row is (id, volume, parent id, name, match key). Paths are
 *   never stored, only parent links, so renaming a directory is one UPDATE and every id below it
 *   follows. Ids come from AUTOINCREMENT and are never reused, so a stale NFS handle or SMB FileId
 *   can only ever fail (ESTALE), never reach another file.
 * - `links` and `linked_files` (component `links`): hard links on backends with native identity. A
 *   file with several names keeps one id: its first known name is its `nodes` row, every other name
 *   a `links` row (its own id, from the same sequence: the readdir cookie of that name) pointing at
 *   the file's id, and `linked_files` maps the file's native identity (local: device:inode:birth) to
 *   its id, so a name linked outside Portico finds the id at its first lookup. Only files seen with
 *   more than one link have rows here (docs/ARCHITECTURE.md "Hard links").
 * - `props`: properties keyed by file id (WebDAV dead properties, Windows attributes, creation time
 *   overrides, extended attributes). Keyed by id so they follow renames for free.
 * - `kv`: small durable values for other components (boot generation, durable locks, journals).
 * - `tree_moves` (component `tree-moves` in `migrations`): the journal of directory renames done by
 *   copy on backends without atomic rename (src/vfs/tree-move/record.ts owns the record format). A row is
 *   written in the same transaction as the rename's id update, before the first copy, and deleted
 *   when the move is complete; rows that cannot be decoded are set aside (`quarantined`), never
 *   deleted, so an operator can still read what was in them.
 * - Other components own their tables through `migrate()` (e.g. the local user store).
 *
 * Why node:sqlite: it ships with Node 24 (no native addon to build or download), is transactional,
 * survives crashes in WAL mode, and a single-row insert costs a few microseconds.
 *
 * Group commit of id rows. The first access to a file inserts its row; as its own transaction that
 * cost ~50 µs (lock calls, WAL append, and the next read re-validating its snapshot), more than the
 * rest of a 4 KiB WebDAV GET. Id rows (ensureChild/insertChild) therefore join one open write
 * transaction that commits GROUP_COMMIT_MS after its first row or at GROUP_COMMIT_ROWS rows (~6 µs
 * a row). Every other write (and every explicit transaction) commits the group first, so nothing but
 * id rows (their change state, their Windows attributes, and the removal of a name's rows:
 * dropNameGrouped) is ever delayed
 * and the order of writes on disk stays the order they were made in.
 * What a process crash can now lose: the id rows of the last few milliseconds. Those files get a new
 * id at their next access; the lost ids are never handed out again, because ids come from ranges
 * reserved durably in advance (ID_RESERVE at a time, one fsync each): a client holding a lost id (an
 * NFS handle, an ETag) gets ESTALE or a changed ETag, never another file. (Before, autocommit
 * inserts under `synchronous = NORMAL` could lose the last ids on a power cut AND reuse them.)
 * Pending rows. A new id row (ensureChild, insertChild) is not even inserted by the request that
 * makes it: its id is taken from the reserved range and the row object kept in memory (`pending`),
 * where lookups by key and by id find it; the batch inserts the pending rows, with the change state
 * their objects hold then, when the group commits (GROUP_COMMIT_MS, GROUP_COMMIT_ROWS) or before any
 * other statement that reads or writes the table. Measured on a 4 KiB GET paced like one client
 * (session open+read+close, 1 ms apart, shared 2-core VM at load ~14): the store's part of a first
 * access 89 -> 50 µs of CPU on the request (BEGIN IMMEDIATE and the INSERT ... RETURNING moved
 * into the batch, which writes ~3 rows per commit at that pace and costs 16 -> 32 µs a row). Crash semantics are the group's:
 * a process crash loses the rows of the last GROUP_COMMIT_MS (a file then gets a new id at its
 * next lookup; an NFS handle or ETag holding the lost id gets ESTALE or a changed ETag, never
 * another file), as before this step. docs/ARCHITECTURE.md "Cost per operation" says why that is
 * the line drawn.
 * Change state. A written row's change state (saveChange: change attribute, signature, identity)
 * waits for the batch the same way, kept by id (`dirty`) and written once with its state then: a
 * create advanced its directory's row and the stat that learns the directory's new signature
 * advanced it again, two UPDATEs of one row per file created in it, each also writing that file's
 * pending row at once (an UPDATE is a statement that must see the pending rows first). Lookups by
 * key and by id read the row with that state, as if the UPDATE had run; every other statement
 * writes the batch first. Crash semantics are those of the group the UPDATE joined before.
 * Known child keys. A lookup of a name with no row (every file's first access: LOOKUP, GET,
 * CREATE of a file made outside Portico) was a SELECT that found nothing. A directory whose
 * lookups missed twice (TRACK_AFTER_MISSES) has the keys of its stored rows loaded once (at most
 * TRACK_LOAD_MAX: a directory with more keeps asking), and from then on a key that is not among
 * them has no row without a query. The set may only ever hold too many keys, never too few: every
 * statement that can put a row at a (parent, key) — the inserts and the move — notes the key when
 * it runs (the statements are wrapped, so no call site can forget), a delete leaves its key (a
 * query too many, the right answer), and a rollback only leaves keys too many. Keyed by parent
 * id alone (ids are unique over volumes). Sound because this process is the only writer of
 * `nodes` (the CLI's commands write only users and kv, as the row cache and the id ranges already
 * assume); a second store on the same file in this process (tests simulating a restart) drops
 * every store's known keys when it opens, and nothing is tracked while it is open. Bounded:
 * TRACK_TOTAL_MAX keys over all directories, then all are dropped. Measured (bench driver: 6,000
 * files made outside Portico, each GET once at c=16 over WebDAV, perf of the server at load ~17):
 * SQLite's part of a first GET 16 -> 6.5 µs of CPU (what is left is the batch's INSERT and COMMIT).
 * An open group holds SQLite's write lock for those milliseconds. Another process waiting for it
 * (`portico user ...`) just waits; a second store on the same file in THIS process could not (its
 * busy wait would block the very event loop whose timer commits the group), so while a process has
 * two stores open on one file (tests that simulate a restart) neither groups: each write commits.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VfsError } from '../vfs/errors.ts';
import { Checkpointer, type CheckpointerOptions } from './checkpointer.ts';

export type FileId = bigint;

export interface NodeRow {
  id: FileId;
  vol: string;
  parent: FileId;
  name: string;
  key: string;
  /** Windows attribute bits kept by Portico (FILE_ATTRIBUTE_READONLY/HIDDEN/SYSTEM/ARCHIVE). */
  attrs: bigint;
  /** Creation-time override in ns (set by SMB/WebDAV clients; most backends cannot store one). */
  birth: bigint | null;
  /**
   * The backend's identity of the file this row names (local: device:inode), on backends whose
   * identity is stable across changes (BackendCapabilities.nativeIdentity); null until learned.
   * A different identity at the same name means the file was replaced outside Portico.
   */
  native: string | null;
  /** The change attribute: advances on every change (src/vfs/change-tracker.ts). 0 = none yet. */
  chg: bigint;
  /**
   * The backend stat signature the change attribute was last taken at (mtime, ctime, size), or
   * null after a change made through Portico (learned at the next stat, without an advance).
   */
  sigM: bigint | null;
  sigC: bigint | null;
  sigS: bigint | null;
  /** Directory mtime kept by Portico where the backend has no directory times (object stores). */
  dirMtime: bigint | null;
}

export interface PropRow {
  ns: string;
  name: string;
  value: Uint8Array;
}

/** A bound on one file's properties, namespaces with bounds of their own left out (xattrs). */
export interface PropBound {
  rows: number;
  bytes: number;
  exceptNs: string[];
}

export interface PropChange {
  ns: string;
  name: string;
  /** null removes the property. */
  value: Uint8Array | null;
}

/** Ids per getPropsMany statement (one JSON array parameter). */
const PROPS_MANY_BATCH = 10_000;

/** Open stores by database file, to see a second store on one file in this process (file comment). */
const openStores = new Map<string, Set<MetadataStore>>();
// A process that exits on purpose (process.exit after a fatal error, not a kill) commits its groups
// on the way out: 'exit' listeners run synchronously, as a commit does.
process.on('exit', () => {
  for (const set of openStores.values()) for (const store of set) store.commitGroup();
});

/** Longest an id row waits for its group commit. */
const GROUP_COMMIT_MS = 20;
/** Rows after which a group commits at once. */
const GROUP_COMMIT_ROWS = 256;
/**
 * Statements that never need the pending id rows in the table first: the lookups that consult
 * them (child, get), and reads of other tables. Every other statement writes the pending rows
 * (into the open group or transaction) before it runs, so it sees the table as if they had been
 * inserted at once.
 */
const NO_FLUSH = new Set(['child', 'childKeys', 'childrenByKeys', 'get', 'linkAt', 'linkGet', 'linksOf', 'fileGet', 'fileAny', 'linkAny', 'kvGet', 'props', 'prop', 'migGet', 'seqGet', 'tmPending']);
/**
 * Known child keys (lookupChild): a directory whose first accesses missed TRACK_AFTER_MISSES times
 * has the keys of its stored rows loaded once, when it has at most TRACK_LOAD_MAX, and a miss of a
 * key not among them then costs no SELECT. At most TRACK_TOTAL_MAX keys over all directories (all
 * are dropped past it) and TRACK_DIRS_MAX directories counted or refused (the counts are dropped).
 */
const TRACK_AFTER_MISSES = 2;
const TRACK_LOAD_MAX = 4096;
const TRACK_TOTAL_MAX = 131_072;
const TRACK_DIRS_MAX = 4096;
/** Ids reserved per durable reservation. */
const ID_RESERVE = 4096n;

/** Parent id of every volume root. No real node has id 0 (AUTOINCREMENT starts at 1). */
export const NO_PARENT: FileId = 0n;

/** One journaled directory move (the record is src/vfs/tree-move/record.ts's JSON; this layer never parses it). */
export interface TreeMoveRow {
  id: string;
  vol: string;
  record: string;
  created: number;
}

/** Journal rows read per volume at start-up (a volume refuses more active moves long before this). */
const TREE_MOVES_READ_MAX = 1000;

const TREE_MOVE_MIGRATIONS: string[][] = [
  [
    `CREATE TABLE tree_moves (
       id TEXT PRIMARY KEY,
       vol TEXT NOT NULL,
       record TEXT NOT NULL,
       created INTEGER NOT NULL,
       quarantined TEXT
     ) STRICT`,
    `CREATE INDEX tree_moves_vol ON tree_moves(vol)`,
  ],
];

/** One more name of a file with several (hard links): the name's own id is its readdir cookie. */
export interface LinkRow {
  id: bigint;
  vol: string;
  parent: FileId;
  name: string;
  key: string;
  /** The file's id (its `nodes` row). */
  target: FileId;
}

/**
 * Hard links (component `links`): the other names of files with several, and native identity ->
 * file id for those files only, so files with one name cost nothing here (see the file comment).
 */
const LINK_MIGRATIONS: string[][] = [
  [
    `CREATE TABLE links (
       id INTEGER PRIMARY KEY,
       vol TEXT NOT NULL,
       parent INTEGER NOT NULL,
       name TEXT NOT NULL,
       key TEXT NOT NULL,
       target INTEGER NOT NULL
     ) STRICT`,
    `CREATE UNIQUE INDEX links_child ON links(vol, parent, key)`,
    `CREATE INDEX links_target ON links(target)`,
    `CREATE INDEX links_parent ON links(parent)`,
    `CREATE TABLE linked_files (
       vol TEXT NOT NULL,
       native TEXT NOT NULL,
       id INTEGER NOT NULL,
       PRIMARY KEY (vol, native)
     ) STRICT, WITHOUT ROWID`,
    `CREATE INDEX linked_files_id ON linked_files(id)`,
  ],
];

const LINK_COLS = 'id, vol, parent, name, key, target';

/** Rows of a directory looked at for the first name of a file first seen by another (linkedChild). */
const SIBLING_SCAN = 256;
/** Sibling scans that found nothing in a row, after which a directory is not scanned again (siblingOf). */
const SIBLING_GIVE_UP = 8;

/** linkedChild(): the file's row, the id a merge dropped, and the name's own link id when it is not the file's own name. */
export interface LinkedChild {
  row: NodeRow;
  merged?: FileId;
  link?: bigint;
}

/** A new row's change state (src/vfs/change-tracker.ts initialChange). */
export type ChangeInit = Pick<NodeRow, 'chg' | 'sigM' | 'sigC' | 'sigS' | 'native'>;

const NO_CHANGE = [0n, null, null, null, null] as const;

function pendingKey(vol: string, parent: FileId, key: string): string {
  return `${vol}\0${parent}\0${key}`;
}

/** A new id row as the INSERT ... RETURNING of it would read it back. */
function newRow(id: FileId, vol: string, parent: FileId, name: string, key: string, init: ChangeInit | undefined): NodeRow {
  return {
    id,
    vol,
    parent,
    name,
    key,
    attrs: 0n,
    birth: null,
    native: init?.native ?? null,
    chg: init?.chg ?? 0n,
    sigM: init?.sigM ?? null,
    sigC: init?.sigC ?? null,
    sigS: init?.sigS ?? null,
    dirMtime: null,
  };
}

function changeArgs(init: ChangeInit | undefined): readonly [bigint, bigint | null, bigint | null, bigint | null, string | null] {
  return init === undefined ? NO_CHANGE : [init.chg, init.sigM, init.sigC, init.sigS, init.native];
}

/** The columns of a NodeRow, in every SELECT and RETURNING of nodes. */
const NODE_COLS = 'id, vol, parent, name, key, attrs, birth, native, chg, sig_m AS sigM, sig_c AS sigC, sig_s AS sigS, dir_mtime AS dirMtime';

/**
 * Identity and change state per node (component `nodes`): the backend identity, the persisted
 * change attribute with the stat signature it was taken at, and directory times for backends
 * without them. Rows from before this step have no identity and change 0: both are learned at the
 * next stat (one advance of the change attribute, once).
 */
const NODE_MIGRATIONS: string[][] = [
  [
    'ALTER TABLE nodes ADD COLUMN native TEXT',
    'ALTER TABLE nodes ADD COLUMN chg INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE nodes ADD COLUMN sig_m INTEGER',
    'ALTER TABLE nodes ADD COLUMN sig_c INTEGER',
    'ALTER TABLE nodes ADD COLUMN sig_s INTEGER',
    'ALTER TABLE nodes ADD COLUMN dir_mtime INTEGER',
  ],
];

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) STRICT`,
  `CREATE TABLE IF NOT EXISTS nodes (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     vol TEXT NOT NULL,
     parent INTEGER NOT NULL,
     name TEXT NOT NULL,
     key TEXT NOT NULL,
     attrs INTEGER NOT NULL DEFAULT 0,
     birth INTEGER
   ) STRICT`,
  `CREATE UNIQUE INDEX IF NOT EXISTS nodes_child ON nodes(vol, parent, key)`,
  `CREATE INDEX IF NOT EXISTS nodes_parent ON nodes(parent)`,
  `CREATE TABLE IF NOT EXISTS props (
     id INTEGER NOT NULL,
     ns TEXT NOT NULL,
     name TEXT NOT NULL,
     value BLOB NOT NULL,
     PRIMARY KEY (id, ns, name)
   ) STRICT, WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT`,
];

export class MetadataStore {
  readonly db: DatabaseSync;
  /** Incremented at every open; lets in-memory counters stay monotonic across restarts. */
  readonly bootGeneration: number;
  readonly path: string;
  private readonly st: Record<string, StatementSync>;
  private txDepth = 0;
  private propsManyStmt: StatementSync | undefined;
  private propsTotalStmt: StatementSync | undefined;
  /** The open group commit of id rows (see the file comment). */
  private group: { rows: number; timer: NodeJS.Timeout } | undefined;
  /**
   * New id rows not written yet, by (vol, parent, key) and by id: the request that creates one
   * pays no statement, the batch writes them (see the file comment, "Pending rows").
   */
  private readonly pending = new Map<string, NodeRow>();
  private readonly pendingById = new Map<FileId, NodeRow>();
  /**
   * Written rows whose change state changed since (saveChange), by id, not written yet: the batch
   * writes each once with its state then (see the file comment, "Change state").
   */
  private readonly dirty = new Map<FileId, NodeRow>();
  private pendingTimer: NodeJS.Timeout | undefined;
  /**
   * Known child keys, by parent id (see the file comment, "Known child keys"): a superset of the
   * keys of the rows the table holds under that parent (pending rows are looked up before).
   */
  private readonly childKeys = new Map<FileId, Set<string>>();
  private childKeyCount = 0;
  /** Per parent id not tracked yet: lookups that missed (a count), or -1: too many rows to track. */
  private readonly childMisses = new Map<FileId, number>();
  /** Next id to hand out and the end of the durably reserved range (inclusive). */
  private nextId = 1n;
  private idEnd = 0n;
  /**
   * Whether any hard-link row exists: false on most stores (and always on backends without hard
   * links), which spares every lookup miss and delete the link queries.
   */
  private anyLinks = false;
  /** Per directory id: sibling scans in a row that found nothing (siblingOf). */
  private readonly siblingMisses = new Map<FileId, number>();
  /** The open stores on this database file, this one included (undefined for ':memory:'). */
  private readonly siblings: Set<MetadataStore> | undefined;
  /** The checkpoint thread, once checkpointInBackground() started it. */
  private checkpointer: Checkpointer | undefined;

  private constructor(db: DatabaseSync, path: string) {
    this.db = db;
    this.path = path;
    if (path !== ':memory:') {
      const file = resolve(path);
      let set = openStores.get(file);
      if (!set) openStores.set(file, (set = new Set()));
      // A sibling's open group would hold the write lock this store is about to need.
      for (const other of set) {
        other.commitGroup();
        // Its rows would not be noted by the other store's known child keys.
        other.forgetChildKeys();
      }
      set.add(this);
      this.siblings = set;
    }
    for (const sql of SCHEMA) db.exec(sql);
    const prep = (sql: string): StatementSync => {
      const s = db.prepare(sql);
      s.setReadBigInts(true);
      return s;
    };
    this.st = {
      migGet: prep('SELECT version FROM migrations WHERE component = ?'),
      migSet: prep('INSERT INTO migrations(component, version) VALUES (?, ?) ON CONFLICT(component) DO UPDATE SET version = excluded.version'),
    };
    // Before the node statements are prepared: they name the columns these steps add.
    this.migrate('nodes', NODE_MIGRATIONS);
    Object.assign(this.st, {
      kvGet: prep('SELECT v FROM kv WHERE k = ?'),
      kvSet: prep('INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v'),
      kvDel: prep('DELETE FROM kv WHERE k = ?'),
      root: prep(`SELECT ${NODE_COLS} FROM nodes WHERE vol = ? AND parent = 0 AND key = ''`),
      child: prep(`SELECT ${NODE_COLS} FROM nodes WHERE vol = ? AND parent = ? AND key = ?`),
      insert: prep(`INSERT INTO nodes(id, vol, parent, name, key, chg, sig_m, sig_c, sig_s, native) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${NODE_COLS}`),
      insertPlain: prep('INSERT INTO nodes(id, vol, parent, name, key, attrs, chg, sig_m, sig_c, sig_s, native) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      insertNew: prep(`INSERT INTO nodes(id, vol, parent, name, key, chg, sig_m, sig_c, sig_s, native) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(vol, parent, key) DO NOTHING RETURNING ${NODE_COLS}`),
      seqGet: prep("SELECT seq FROM sqlite_sequence WHERE name = 'nodes'"),
      seqInsert: prep("INSERT INTO sqlite_sequence(name, seq) VALUES ('nodes', ?)"),
      seqSet: prep("UPDATE sqlite_sequence SET seq = ? WHERE name = 'nodes'"),
      maxId: prep('SELECT MAX(id) AS m FROM nodes'),
      get: prep(`SELECT ${NODE_COLS} FROM nodes WHERE id = ?`),
      move: prep('UPDATE nodes SET parent = ?, name = ?, key = ? WHERE id = ?'),
      rename: prep('UPDATE nodes SET name = ? WHERE id = ?'),
      childrenByKeys: prep(`SELECT ${NODE_COLS} FROM nodes WHERE vol = ? AND parent = ? AND key IN (SELECT value FROM json_each(?))`),
      children: prep(`SELECT ${NODE_COLS} FROM nodes WHERE parent = ? AND key > ? ORDER BY key LIMIT ?`),
      delSubtree: prep(`WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent = sub.id)
                        SELECT id FROM sub`),
      delNode: prep('DELETE FROM nodes WHERE id = ?'),
      delProps: prep('DELETE FROM props WHERE id = ?'),
      props: prep('SELECT ns, name, value FROM props WHERE id = ? ORDER BY ns, name'),
      prop: prep('SELECT value FROM props WHERE id = ? AND ns = ? AND name = ?'),
      propSet: prep('INSERT INTO props(id, ns, name, value) VALUES (?, ?, ?, ?) ON CONFLICT(id, ns, name) DO UPDATE SET value = excluded.value'),
      propDel: prep('DELETE FROM props WHERE id = ? AND ns = ? AND name = ?'),
      propCopy: prep('INSERT OR REPLACE INTO props(id, ns, name, value) SELECT ?, ns, name, value FROM props WHERE id = ?'),
      setAttrs: prep('UPDATE nodes SET attrs = ? WHERE id = ?'),
      setBirth: prep('UPDATE nodes SET birth = ? WHERE id = ?'),
      setChange: prep('UPDATE nodes SET chg = ?, sig_m = ?, sig_c = ?, sig_s = ?, native = ? WHERE id = ?'),
      setDirMtime: prep('UPDATE nodes SET dir_mtime = ? WHERE id = ?'),
    });
    // Every statement that can put a row at a (parent, key) notes the key first (known child keys):
    // wrapped here so that no call site, present or future, can miss it.
    const noting = (name: string, parentAt: number, keyAt: number): void => {
      const s = this.st[name]!;
      const note = (a: unknown[]): void => {
        if (this.childKeys.size > 0) this.noteChildKey(a[parentAt] as FileId, a[keyAt] as string);
      };
      this.st[name] = {
        run: (...a: never[]) => (note(a), s.run(...a)),
        get: (...a: never[]) => (note(a), s.get(...a)),
        all: (...a: never[]) => (note(a), s.all(...a)),
      } as unknown as StatementSync;
    };
    for (const name of ['insert', 'insertPlain', 'insertNew']) noting(name, 2, 4);
    noting('move', 0, 2);
    this.st.childKeys = prep(`SELECT key FROM nodes WHERE parent = ? LIMIT ${TRACK_LOAD_MAX + 1}`);
    this.migrate('links', LINK_MIGRATIONS);
    Object.assign(this.st, {
      linkAt: prep(`SELECT ${LINK_COLS} FROM links WHERE vol = ? AND parent = ? AND key = ?`),
      linkGet: prep(`SELECT ${LINK_COLS} FROM links WHERE id = ?`),
      linksOf: prep(`SELECT ${LINK_COLS} FROM links WHERE target = ? ORDER BY id`),
      linkInsert: prep('INSERT INTO links(id, vol, parent, name, key, target) VALUES (?, ?, ?, ?, ?, ?)'),
      linkDel: prep('DELETE FROM links WHERE id = ?'),
      linkDelBelow: prep('DELETE FROM links WHERE parent = ? OR target = ?'),
      linkMove: prep('UPDATE links SET parent = ?, name = ?, key = ? WHERE id = ?'),
      linkRetarget: prep('UPDATE links SET target = ? WHERE target = ?'),
      linkAny: prep('SELECT 1 AS x FROM links LIMIT 1'),
      fileGet: prep('SELECT id FROM linked_files WHERE vol = ? AND native = ?'),
      fileSet: prep('INSERT INTO linked_files(vol, native, id) VALUES (?, ?, ?) ON CONFLICT(vol, native) DO UPDATE SET id = excluded.id'),
      fileDelId: prep('DELETE FROM linked_files WHERE id = ?'),
      fileAny: prep('SELECT 1 AS x FROM linked_files LIMIT 1'),
      // A file seen with a second name before its first: its first name may be a known sibling
      // (`ln a b`). Bounded: rows of files with one name carry no index by native identity (it
      // would cost every insert), so at most SIBLING_SCAN rows of the directory are looked at and a
      // first name beyond them is merged later (linkedChild).
      sibling: prep(`SELECT ${NODE_COLS} FROM (SELECT * FROM nodes WHERE vol = ? AND parent = ? LIMIT ${SIBLING_SCAN}) WHERE native = ? LIMIT 1`),
    });
    this.anyLinks = this.row('linkAny').get() !== undefined || this.row('fileAny').get() !== undefined;
    this.migrate('tree-moves', TREE_MOVE_MIGRATIONS);
    this.st.tmInsert = prep('INSERT INTO tree_moves(id, vol, record, created) VALUES (?, ?, ?, ?)');
    this.st.tmPending = prep('SELECT id, vol, record, created FROM tree_moves WHERE vol = ? AND quarantined IS NULL ORDER BY rowid LIMIT ?');
    this.st.tmDelete = prep('DELETE FROM tree_moves WHERE id = ?');
    this.st.tmQuarantine = prep('UPDATE tree_moves SET quarantined = ? WHERE id = ?');
    const gen = Number(this.kvGet('boot-generation') ?? '0') + 1;
    this.kvSet('boot-generation', String(gen));
    this.bootGeneration = gen;
  }

  /** Opens (creating) `<dir>/portico.db`, or an in-memory store for ':memory:'. */
  static open(dir: string): MetadataStore {
    if (dir === ':memory:') return new MetadataStore(new DatabaseSync(':memory:'), ':memory:');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'portico.db');
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(file);
    } catch (e) {
      throw new VfsError('EIO', `cannot open metadata store ${file}: ${(e as Error).message}`, { cause: e });
    }
    // The store holds password hashes (local users): owner-only, like ~/.ssh.
    chmodSync(file, 0o600);
    db.exec('PRAGMA journal_mode = WAL');
    // NORMAL in WAL mode: a power cut may lose the last transactions but never corrupts the store.
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA busy_timeout = 5000');
    return new MetadataStore(db, file);
  }

  /** Whether pending id rows or change state wait for the batch (writePending). */
  private get unwritten(): boolean {
    return this.pending.size > 0 || this.dirty.size > 0;
  }

  private row(s: string): StatementSync {
    if (this.unwritten && !NO_FLUSH.has(s)) this.writePending();
    return this.st[s]!;
  }

  /** A write statement that must not wait for a group commit: the open group commits first. */
  private w(s: string): StatementSync {
    this.checkpointer?.noteWrite();
    if (this.group || this.unwritten) this.commitGroup();
    return this.st[s]!;
  }

  /**
   * Commits the open group of id rows now (a no-op when none is open). Called before every other
   * write; components writing through `db` directly must call it first too.
   */
  commitGroup(): void {
    if (this.unwritten) this.writePending();
    const g = this.group;
    if (!g) return;
    this.group = undefined;
    clearTimeout(g.timer);
    this.checkpointer?.noteWrite();
    try {
      this.db.exec('COMMIT');
    } catch (e) {
      // The group's id rows are lost (see the file comment); nothing else was in it.
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      process.emitWarning(`metadata store: group commit failed: ${(e as Error).message}`);
    }
  }

  /**
   * Runs `fn` (its own statements) and has it committed together with what the group holds: when a
   * group is open or rows wait for one, `fn` runs inside that transaction and it commits now — one
   * commit where commitGroup() followed by `fn`'s own autocommit statements made two or more. Inside
   * an explicit transaction, that transaction commits it; with nothing waiting, `fn`'s statements
   * commit as they run. For writes that must be durable before the caller answers (client records:
   * src/locks/client-records.ts), as after commitGroup().
   */
  commitWith(fn: () => void): void {
    if (this.txDepth > 0) return fn();
    if (this.unwritten) this.writePending();
    if (!this.group) return fn();
    try {
      fn();
    } finally {
      this.commitGroup();
    }
  }

  /** Whether id rows may wait for a batch (not in a transaction, not ':memory:', no sibling store). */
  private get deferrable(): boolean {
    return this.txDepth === 0 && this.siblings !== undefined && this.siblings.size === 1;
  }

  /**
   * A new id row kept in memory until the batch writes it (writePending): lookups by key and by id
   * see it at once, every other statement writes it first.
   */
  private addPending(row: NodeRow): NodeRow {
    this.pending.set(pendingKey(row.vol, row.parent, row.key), row);
    this.pendingById.set(row.id, row);
    this.batchSoon();
    return row;
  }

  /** The batch of pending rows and change states is written within GROUP_COMMIT_MS, or now when full. */
  private batchSoon(): void {
    if (this.pending.size + this.dirty.size >= GROUP_COMMIT_ROWS) this.commitGroup();
    else if (this.pendingTimer === undefined) {
      this.pendingTimer = setTimeout(() => {
        this.pendingTimer = undefined;
        this.commitGroup();
      }, GROUP_COMMIT_MS);
      this.pendingTimer.unref();
    }
  }

  /**
   * A row as the table holds it, with the change state of an unwritten saveChange of it (`dirty`):
   * what the query would have read had the UPDATE been run at once.
   */
  private withDirty(r: NodeRow | undefined): NodeRow | undefined {
    if (r === undefined || this.dirty.size === 0) return r;
    const d = this.dirty.get(r.id);
    if (d !== undefined) {
      r.chg = d.chg;
      r.sigM = d.sigM;
      r.sigC = d.sigC;
      r.sigS = d.sigS;
      r.native = d.native;
    }
    return r;
  }

  /**
   * Inserts the pending id rows, with their change state as their row objects hold it now, into
   * the open transaction or group (opening one). A failed insert loses that row as a crash would
   * (its file gets a new id at its next lookup: the id is never handed out again).
   */
  private writePending(): void {
    const rows = [...this.pending.values()];
    const changed = [...this.dirty.values()];
    this.pending.clear();
    this.pendingById.clear();
    this.dirty.clear();
    if (this.pendingTimer !== undefined) {
      clearTimeout(this.pendingTimer);
      this.pendingTimer = undefined;
    }
    if (this.txDepth === 0 && !this.group) {
      this.db.exec('BEGIN IMMEDIATE');
      const timer = setTimeout(() => this.commitGroup(), GROUP_COMMIT_MS);
      timer.unref();
      this.group = { rows: 0, timer };
    }
    if (this.group) this.group.rows += rows.length + changed.length;
    const ins = this.st.insertPlain!;
    for (const r of rows) {
      try {
        ins.run(r.id, r.vol, r.parent, r.name, r.key, r.attrs, r.chg, r.sigM, r.sigC, r.sigS, r.native);
      } catch (e) {
        process.emitWarning(`metadata store: id row ${r.id} not written: ${(e as Error).message}`);
      }
    }
    // After the inserts: a row written by an earlier batch may have changed again since.
    const upd = this.st.setChange!;
    for (const r of changed) {
      try {
        upd.run(r.chg, r.sigM, r.sigC, r.sigS, r.native, r.id);
      } catch (e) {
        process.emitWarning(`metadata store: change state of id ${r.id} not written: ${(e as Error).message}`);
      }
    }
  }

  /** Makes the next id-row insert part of the open group (opening one), unless a transaction is open. */
  private joinGroup(): void {
    // No group in an explicit transaction (it commits the rows), for ':memory:', or beside a sibling.
    if (this.txDepth > 0 || this.siblings === undefined || this.siblings.size > 1) return;
    if (this.group) {
      this.group.rows++;
      return;
    }
    this.db.exec('BEGIN IMMEDIATE');
    const timer = setTimeout(() => this.commitGroup(), GROUP_COMMIT_MS);
    timer.unref();
    this.group = { rows: 1, timer };
  }

  /** After an id-row insert: commits a group that is full. */
  private groupFilled(): void {
    if (this.group && this.group.rows >= GROUP_COMMIT_ROWS) this.commitGroup();
  }

  /**
   * The next file id. Ids come from a range whose end is recorded in sqlite_sequence (durably, power
   * cut included) before the first of them is handed out, so no id is handed out twice even when the
   * rows that used it were lost. The range starts above everything this process handed out, stored,
   * or reserved before.
   */
  private allocId(): FileId {
    if (this.nextId > this.idEnd) {
      // Commits an open group first; the caller's next insert opens a new one.
      this.durableTransaction(() => {
        const seq = (this.row('seqGet').get() as { seq: bigint } | undefined)?.seq;
        const max = (this.row('maxId').get() as { m: bigint | null }).m ?? 0n;
        let start = this.idEnd + 1n;
        if (seq !== undefined && seq + 1n > start) start = seq + 1n;
        if (max + 1n > start) start = max + 1n;
        const end = start + ID_RESERVE - 1n;
        if (seq === undefined) this.row('seqInsert').run(end);
        else this.row('seqSet').run(end);
        this.nextId = start;
        this.idEnd = end;
      });
    }
    return this.nextId++;
  }

  /** Runs fn in one transaction (nestable: inner calls join the outer one). */
  transaction<T>(fn: () => T): T {
    if (this.group || this.unwritten) this.commitGroup();
    if (this.txDepth > 0) {
      this.txDepth++;
      try {
        return fn();
      } finally {
        this.txDepth--;
      }
    }
    this.db.exec('BEGIN IMMEDIATE');
    this.txDepth = 1;
    try {
      const out = fn();
      this.checkpointer?.noteWrite();
      this.db.exec('COMMIT');
      return out;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    } finally {
      this.txDepth = 0;
    }
  }

  /**
   * A transaction that is on disk when it returns, power cut included: the store runs
   * `synchronous = NORMAL` (a crash loses nothing committed, a power cut may lose the last
   * transactions), which is right for ids but not for a record that must exist before an irreversible
   * step elsewhere (the tree-move journal before the first copy). Costs one fsync of the WAL.
   */
  durableTransaction<T>(fn: () => T): T {
    if (this.txDepth > 0 || this.path === ':memory:') return this.transaction(fn);
    if (this.group || this.unwritten) this.commitGroup();
    this.db.exec('PRAGMA synchronous = FULL');
    try {
      return this.transaction(fn);
    } finally {
      this.db.exec('PRAGMA synchronous = NORMAL');
    }
  }

  /** Applies a component's schema steps once each, in order; `steps[i]` upgrades version i to i+1. */
  migrate(component: string, steps: string[][]): void {
    const have = Number((this.row('migGet').get(component) as { version?: bigint } | undefined)?.version ?? 0n);
    if (have > steps.length) throw new VfsError('EIO', `state store has ${component} schema v${have}, newer than this build (v${steps.length})`);
    for (let v = have; v < steps.length; v++) {
      this.transaction(() => {
        for (const sql of steps[v]!) this.db.exec(sql);
        this.row('migSet').run(component, v + 1);
      });
    }
  }

  kvGet(key: string): string | undefined {
    return (this.row('kvGet').get(key) as { v: string } | undefined)?.v;
  }
  kvSet(key: string, value: string): void {
    this.w('kvSet').run(key, value);
  }
  kvDelete(key: string): void {
    this.w('kvDel').run(key);
  }

  /** Journals a directory move (call inside the transaction that also moves its id rows). */
  insertTreeMove(id: string, vol: string, record: string): void {
    this.w('tmInsert').run(id, vol, record, Date.now());
  }

  /** A volume's journaled moves that are not quarantined, oldest first. */
  pendingTreeMoves(vol: string): TreeMoveRow[] {
    return (this.row('tmPending').all(vol, TREE_MOVES_READ_MAX) as unknown as Array<{ id: string; vol: string; record: string; created: bigint }>).map((r) => ({
      id: String(r.id),
      vol: String(r.vol),
      record: String(r.record),
      created: Number(r.created),
    }));
  }

  deleteTreeMove(id: string): void {
    this.w('tmDelete').run(id);
  }

  /** Sets a journal row aside (it is kept, with the reason, but never resumed). */
  quarantineTreeMove(id: string, reason: string): void {
    this.w('tmQuarantine').run(reason.slice(0, 1000), id);
  }

  /** The id of a volume's root directory, created on first use. */
  rootId(vol: string): FileId {
    const r = this.row('root').get(vol) as NodeRow | undefined;
    if (r) return r.id;
    const id = this.allocId();
    return (this.w('insert').get(id, vol, NO_PARENT, '', '', ...NO_CHANGE) as { id: bigint }).id;
  }

  getNode(id: FileId): NodeRow | undefined {
    if (this.pendingById.size > 0) {
      const p = this.pendingById.get(id);
      if (p !== undefined) return p;
    }
    return this.withDirty(this.row('get').get(id) as NodeRow | undefined);
  }

  lookupChild(vol: string, parent: FileId, key: string): NodeRow | undefined {
    if (this.pending.size > 0) {
      const p = this.pending.get(pendingKey(vol, parent, key));
      if (p !== undefined) return p;
    }
    const known = this.childKeys.size > 0 ? this.childKeys.get(parent) : undefined;
    if (known !== undefined && !known.has(key)) return undefined;
    const r = this.row('child').get(vol, parent, key) as NodeRow | undefined;
    if (r === undefined && known === undefined) this.missedChild(parent);
    return this.withDirty(r);
  }

  /**
   * A lookup under `parent` found no row: at the TRACK_AFTER_MISSES-th, the keys of the parent's
   * rows are loaded (when at most TRACK_LOAD_MAX) and later misses under it cost no SELECT. Only
   * while no other store in this process has the file open (its inserts would not be noted).
   */
  private missedChild(parent: FileId): void {
    if (this.siblings !== undefined && this.siblings.size > 1) return;
    const n = this.childMisses.get(parent) ?? 0;
    if (n < 0) return;
    if (n + 1 < TRACK_AFTER_MISSES) {
      if (this.childMisses.size >= TRACK_DIRS_MAX) this.childMisses.clear();
      this.childMisses.set(parent, n + 1);
      return;
    }
    // What the table holds under it now (with the rows of an open transaction or group: a later
    // rollback only leaves a key too many, which costs a SELECT, never a wrong answer). Pending
    // rows are not in it: lookups find them first, and their insert notes the key.
    const keys = this.row('childKeys').all(parent) as Array<{ key: string }>;
    if (keys.length > TRACK_LOAD_MAX) {
      if (this.childMisses.size >= TRACK_DIRS_MAX) this.childMisses.clear();
      this.childMisses.set(parent, -1);
      return;
    }
    this.childMisses.delete(parent);
    if (this.childKeyCount + keys.length > TRACK_TOTAL_MAX) this.forgetChildKeys();
    const set = new Set<string>();
    for (const k of keys) set.add(k.key);
    this.childKeys.set(parent, set);
    this.childKeyCount += set.size;
  }

  /** A row is put at (parent, key) (an insert or a move): its key joins the parent's known keys. */
  private noteChildKey(parent: FileId, key: string): void {
    const set = this.childKeys.get(parent);
    if (set === undefined || set.has(key)) return;
    set.add(key);
    if (++this.childKeyCount > TRACK_TOTAL_MAX) this.forgetChildKeys();
  }

  /** Drops every known child key (lookups ask the table again until directories are tracked anew). */
  private forgetChildKeys(): void {
    this.childKeys.clear();
    this.childMisses.clear();
    this.childKeyCount = 0;
  }

  /**
   * The rows of several names of one directory (a listed page) in one query, pending rows
   * included: key -> row; a key absent from the map has no row. Lets ensureChild skip its lookup.
   */
  childrenByKeys(vol: string, parent: FileId, keys: readonly string[]): Map<string, NodeRow> {
    const out = new Map<string, NodeRow>();
    const ask: string[] = [];
    for (const k of keys) {
      const p = this.pending.size > 0 ? this.pending.get(pendingKey(vol, parent, k)) : undefined;
      if (p !== undefined) out.set(k, p);
      else ask.push(k);
    }
    if (ask.length > 0) {
      for (const r of this.row('childrenByKeys').all(vol, parent, JSON.stringify(ask)) as unknown as NodeRow[]) out.set(r.key, this.withDirty(r)!);
    }
    return out;
  }

  /**
   * A child's row, inserted when it has none yet (with the change state of its first stat when the
   * caller has one: src/vfs/change-tracker.ts). Keeps the stored display name current.
   */
  ensureChild(vol: string, parent: FileId, name: string, key: string, init?: ChangeInit, known?: NodeRow | null): NodeRow {
    // `known`: the row childrenByKeys just found for the name (null: none), so no lookup of its own.
    const r = known === undefined ? this.lookupChild(vol, parent, key) : (known ?? undefined);
    if (r) {
      if (r.name !== name) {
        this.w('rename').run(name, r.id);
        r.name = name;
      }
      return r;
    }
    // Another name of a file known by its first (a hard link): the file's row.
    if (this.anyLinks) {
      const l = this.lookupLink(vol, parent, key);
      const target = l && this.getNode(l.target);
      if (target) return target;
    }
    const id = this.allocId();
    if (this.deferrable) return this.addPending(newRow(id, vol, parent, name, key, init));
    return this.row('insert').get(id, vol, parent, name, key, ...changeArgs(init)) as unknown as NodeRow;
  }

  /**
   * Row for a name that was just created: insert first, and only on a conflict (a stale row left by
   * an outside delete, or a concurrent lookup) fall back to the existing row.
   */
  insertChild(vol: string, parent: FileId, name: string, key: string, init?: ChangeInit): NodeRow {
    // Deferred like ensureChild's: a conflict is then found by the lookup (pending rows included).
    if (this.deferrable) {
      const have = this.lookupChild(vol, parent, key);
      if (have) return this.ensureChild(vol, parent, name, key, init);
      if (this.anyLinks) {
        const stale = this.lookupLink(vol, parent, key);
        if (stale) this.row('linkDel').run(stale.id);
      }
      return this.addPending(newRow(this.allocId(), vol, parent, name, key, init));
    }
    const id = this.allocId();
    this.joinGroup();
    const r = this.row('insertNew').get(id, vol, parent, name, key, ...changeArgs(init)) as NodeRow | undefined;
    // A link row left at the name (its file's other name removed outside): the new file's row wins.
    if (r && this.anyLinks) {
      const stale = this.lookupLink(vol, parent, key);
      if (stale) this.row('linkDel').run(stale.id);
    }
    this.groupFilled();
    return r ?? this.ensureChild(vol, parent, name, key, init);
  }

  /**
   * Gives a name a new id: the row's file was replaced (outside Portico) by another at the same
   * name. The old row, what lies below it and their properties are deleted, so the old id is stale.
   */
  replaceChild(old: NodeRow, init?: ChangeInit): NodeRow {
    return this.replaceName(old.vol, old.parent, old.name, old.key, init);
  }

  /**
   * Gives the name (parent, key) a new id: the file it held was replaced outside Portico. The name
   * is dropped as by dropName (a file with other names keeps its id under one of them), then a new
   * row is inserted.
   */
  replaceName(vol: string, parent: FileId, name: string, key: string, init?: ChangeInit): NodeRow {
    return this.transaction(() => {
      this.dropName(vol, parent, key);
      const id = this.allocId();
      return this.row('insert').get(id, vol, parent, name, key, ...changeArgs(init)) as unknown as NodeRow;
    });
  }

  // ---------------------------------------------------------------- hard links

  /** Whether any hard-link row exists (most stores: none, and the link queries are skipped). */
  get hasLinks(): boolean {
    return this.anyLinks;
  }

  lookupLink(vol: string, parent: FileId, key: string): LinkRow | undefined {
    if (!this.anyLinks) return undefined;
    return this.row('linkAt').get(vol, parent, key) as LinkRow | undefined;
  }

  getLink(id: bigint): LinkRow | undefined {
    if (!this.anyLinks) return undefined;
    return this.row('linkGet').get(id) as LinkRow | undefined;
  }

  /** The other names of a file, oldest first. */
  linksOf(target: FileId): LinkRow[] {
    if (!this.anyLinks) return [];
    return this.row('linksOf').all(target) as unknown as LinkRow[];
  }

  /** The id of a file with several names, by its native identity. */
  linkedFile(vol: string, native: string): FileId | undefined {
    if (!this.anyLinks) return undefined;
    return (this.row('fileGet').get(vol, native) as { id: bigint } | undefined)?.id;
  }

  /**
   * The row of a name whose file has several names (nlink > 1 on an identity backend), keyed by
   * the file's native identity so that every name gives the one id:
   * - the name's own row when the file is known by it (or is not known by another id yet: it is
   *   registered under this id);
   * - its link row's file when it is a known other name;
   * - else the file's id when it is known (by `linked_files`, or as a sibling in the same
   *   directory with that identity): the name becomes a link of it;
   * - else a new row, registered.
   * Two rows for one file (a name known alone before the links were made, another name in another
   * directory seen first) are merged: the older id (smaller: handed out first) stays, the other
   * name becomes a link of it and its id goes stale (its properties are dropped with it).
   */
  linkedChild(vol: string, parent: FileId, name: string, key: string, native: string, init?: ChangeInit): LinkedChild {
    // Joins the group commit like an id row (the first sight of each name of a linked file would
    // otherwise be a transaction of its own, ~0.3 ms): the group is one transaction, so these
    // statements still land or are lost together. The rare steps that call transaction() (a merge,
    // a stale row dropped) commit the group first and run in their own.
    if (this.txDepth > 0) return this.linkedChildIn(vol, parent, name, key, native, init);
    this.joinGroup();
    try {
      return this.linkedChildIn(vol, parent, name, key, native, init);
    } finally {
      this.groupFilled();
    }
  }

  private linkedChildIn(vol: string, parent: FileId, name: string, key: string, native: string, init?: ChangeInit): LinkedChild {
    {
      const own = this.lookupChild(vol, parent, key);
      const alias = own ? undefined : this.lookupLink(vol, parent, key);
      const knownId = this.linkedFile(vol, native);
      let known = knownId !== undefined ? this.getNode(knownId) : undefined;
      if (known && known.native !== null && known.native !== native) known = undefined;
      if (own && (own.native === null || own.native === native)) {
        if (own.name !== name) {
          this.row('rename').run(name, own.id);
          own.name = name;
        }
        if (!known || known.id === own.id) {
          if (knownId !== own.id) this.registerFile(vol, native, own.id);
          return { row: own };
        }
        const [keep, lose] = own.id < known.id ? [own, known] : [known, own];
        const link = this.transaction(() => this.mergeInto(keep, lose));
        this.registerFile(vol, native, keep.id);
        return lose === own ? { row: keep, merged: lose.id, link } : { row: keep, merged: lose.id };
      }
      if (alias) {
        const target = this.getNode(alias.target);
        if (target && (target.native === null || target.native === native)) {
          if (knownId !== target.id) this.registerFile(vol, native, target.id);
          return { row: target, link: alias.id };
        }
        this.row('linkDel').run(alias.id);
      }
      // A stale row of another file at this name (replaced outside): dropped.
      if (own) this.dropName(vol, parent, key);
      if (!known) known = this.siblingOf(vol, parent, native);
      if (known) {
        const link = this.insertLink(vol, parent, name, key, known.id);
        if (knownId !== known.id) this.registerFile(vol, native, known.id);
        return { row: known, link };
      }
      const id = this.allocId();
      const row = this.row('insert').get(id, vol, parent, name, key, ...changeArgs(init)) as unknown as NodeRow;
      this.registerFile(vol, native, id);
      return { row };
    }
  }

  /**
   * The first name of a linked file, among the first SIBLING_SCAN rows of its other name's
   * directory. A directory where this found nothing SIBLING_GIVE_UP times in a row (a tree of
   * links made in bulk elsewhere, like an rsnapshot copy: every name is new) is not scanned again
   * by this process, so its first listing costs no scan per name; what a scan would have found is
   * merged later (linkedChild).
   */
  private siblingOf(vol: string, parent: FileId, native: string): NodeRow | undefined {
    const misses = this.siblingMisses.get(parent) ?? 0;
    if (misses >= SIBLING_GIVE_UP) return undefined;
    const hit = this.row('sibling').get(vol, parent, native) as NodeRow | undefined;
    if (hit) this.siblingMisses.delete(parent);
    else {
      if (this.siblingMisses.size >= 10_000) this.siblingMisses.clear();
      this.siblingMisses.set(parent, misses + 1);
    }
    return hit;
  }

  /**
   * A hard link made through Portico: `name` in `parent` is one more name of the file `target`
   * (native identity `native`). A stale row at the name (removed outside) is dropped first.
   * Returns the new name's own id (its readdir cookie).
   */
  addLink(vol: string, parent: FileId, name: string, key: string, target: FileId, native: string | undefined): bigint {
    return this.transaction(() => {
      const own = this.lookupChild(vol, parent, key);
      if (own?.id === target) return target;
      if (own) this.dropName(vol, parent, key);
      const stale = this.lookupLink(vol, parent, key);
      if (stale) this.row('linkDel').run(stale.id);
      const id = this.insertLink(vol, parent, name, key, target);
      if (native !== undefined) this.registerFile(vol, native, target);
      return id;
    });
  }

  private insertLink(vol: string, parent: FileId, name: string, key: string, target: FileId): bigint {
    const id = this.allocId();
    this.anyLinks = true;
    this.row('linkInsert').run(id, vol, parent, name, key, target);
    return id;
  }

  private registerFile(vol: string, native: string, id: FileId): void {
    this.anyLinks = true;
    this.row('fileSet').run(vol, native, id);
  }

  /**
   * `lose` names the same file as `keep`: its name becomes a link of keep, its own id goes.
   * Returns the new link's id.
   */
  private mergeInto(keep: NodeRow, lose: NodeRow): bigint {
    this.row('linkRetarget').run(keep.id, lose.id);
    this.deleteSubtree(lose.id);
    return this.insertLink(lose.vol, lose.parent, lose.name, lose.key, keep.id);
  }

  /**
   * A name is gone (unlinked, replaced by a rename, or found replaced outside). A link row is just
   * deleted; a file's own row with other names is moved to the oldest of them (the file keeps its
   * id, properties and change state: promoted); otherwise the row, every row below it and their
   * properties are deleted. Returns the deleted ids (empty when the file lives on). `leaf`: the
   * caller knows the name is not a directory's.
   */
  dropName(vol: string, parent: FileId, key: string, id?: FileId, leaf = false): FileId[] {
    if (!this.anyLinks && this.deferrable) return this.dropNameGrouped(vol, parent, key, id, leaf);
    return this.transaction(() => {
      const own = this.lookupChild(vol, parent, key);
      if (!own) {
        const l = this.lookupLink(vol, parent, key);
        if (l) this.row('linkDel').run(l.id);
        return [];
      }
      const heir = this.linksOf(own.id)[0];
      if (heir) {
        this.row('linkDel').run(heir.id);
        this.row('move').run(heir.parent, heir.name, heir.key, own.id);
        return [];
      }
      return this.deleteSubtree(own.id);
    });
  }

  /**
   * dropName in a store without hard links, outside a transaction: the name's rows are deleted in
   * the group commit, like id rows, instead of a transaction of their own (which committed the
   * group first: two commits per remove, the largest store cost of a create-write-remove cycle).
   * A row still pending (created within the last GROUP_COMMIT_MS, never written) is just
   * forgotten. What a crash can lose: the deletion of the last few milliseconds, leaving a row for
   * a name that is gone. The next file at that name then finds the old row: on identity backends
   * (local disks) its different native id gives it a new id (change-tracker.ts, REPLACED); on
   * others it takes the old id, as a file deleted and created again outside Portico already does
   * there. Never does an id name two files at once, and nothing but the rows of that name is
   * delayed: every other write still commits the group first, so the order on disk is kept.
   */
  private dropNameGrouped(vol: string, parent: FileId, key: string, id?: FileId, leaf = false): FileId[] {
    const pk = pendingKey(vol, parent, key);
    // The caller's id (its cached row of the name) saves the SELECT; a pending row is found by key.
    const own = id !== undefined && (this.pending.size === 0 || !this.pending.has(pk)) ? { id } : this.lookupChild(vol, parent, key);
    if (!own) return [];
    if (this.pending.get(pk) === own) {
      let childPending = false;
      for (const r of this.pendingById.values()) if (r.parent === own.id) childPending = true;
      if (!childPending) {
        this.pending.delete(pk);
        this.pendingById.delete(own.id);
        return [own.id];
      }
    }
    this.joinGroup();
    // A name that is not a directory's has no pending row below it (new rows go under directories),
    // so nothing waiting needs writing first: the waiting change states (a directory's, advanced by
    // each create and remove in it) stay coalesced until the batch, instead of an UPDATE per remove.
    const st = leaf ? this.st : undefined;
    const ids = ((st?.delSubtree ?? this.row('delSubtree')).all(own.id) as { id: bigint }[]).map((r) => r.id);
    for (const x of ids) {
      (st?.delNode ?? this.row('delNode')).run(x);
      (st?.delProps ?? this.row('delProps')).run(x);
      // A waiting change state of a deleted row would update nothing.
      if (this.dirty.size > 0) this.dirty.delete(x);
    }
    if (this.group) this.group.rows += ids.length - 1;
    this.groupFilled();
    return ids;
  }

  /**
   * Promotes another name of a file to its own row (the name the row held is gone outside Portico).
   * Returns false when the link row is not one of the file's.
   */
  promoteLink(linkId: bigint): boolean {
    return this.transaction(() => {
      const l = this.getLink(linkId);
      if (!l) return false;
      const displaced = this.lookupChild(l.vol, l.parent, l.key);
      if (displaced && displaced.id !== l.target) this.deleteSubtree(displaced.id);
      this.row('linkDel').run(l.id);
      this.row('move').run(l.parent, l.name, l.key, l.target);
      return true;
    });
  }

  /**
   * A rename of one name: the name's link row moves when it is one, else its own row (moveNode).
   * Whatever held the target name is dropped first (dropName), unless it is the same name.
   */
  moveName(vol: string, parent: FileId, key: string, id: FileId, newParent: FileId, newName: string, newKey: string): void {
    if (!this.anyLinks) return this.moveNode(vol, id, newParent, newName, newKey);
    this.transaction(() => {
      const own = this.lookupChild(vol, parent, key);
      const l = own?.id === id ? undefined : this.lookupLink(vol, parent, key);
      if (!l) return this.moveNode(vol, id, newParent, newName, newKey);
      if (newParent !== parent || newKey !== key) this.dropName(vol, newParent, newKey);
      this.row('linkMove').run(newParent, newName, newKey, l.id);
    });
  }

  /**
   * Moves a node under a new parent/name. A row already holding the target key (the replaced file
   * of a rename) is deleted with its subtree and properties first.
   */
  moveNode(vol: string, id: FileId, newParent: FileId, newName: string, newKey: string): void {
    this.transaction(() => {
      const existing = this.lookupChild(vol, newParent, newKey);
      if (existing && existing.id !== id) this.dropName(vol, newParent, newKey);
      else if (this.anyLinks) {
        const l = this.lookupLink(vol, newParent, newKey);
        if (l) this.row('linkDel').run(l.id);
      }
      this.row('move').run(newParent, newName, newKey, id);
    });
  }

  /** Deletes a node, every row below it and their properties. Returns the deleted ids. */
  deleteSubtree(id: FileId): FileId[] {
    return this.transaction(() => {
      let ids = (this.row('delSubtree').all(id) as { id: bigint }[]).map((r) => r.id);
      // A file in the tree with another name outside it (a hard link) lives on there: that name
      // becomes its own (promoted, as dropName does), so the id and its properties stay.
      if (this.anyLinks && ids.length > 0) {
        const dead = new Set(ids);
        ids = ids.filter((x) => {
          const heir = this.linksOf(x).find((l) => !dead.has(l.parent));
          if (heir === undefined) return true;
          this.row('linkDel').run(heir.id);
          this.row('move').run(heir.parent, heir.name, heir.key, x);
          return false;
        });
      }
      for (const x of ids) {
        this.row('delNode').run(x);
        this.row('delProps').run(x);
        if (this.anyLinks) {
          this.row('linkDelBelow').run(x, x);
          this.row('fileDelId').run(x);
        }
      }
      return ids;
    });
  }

  /**
   * Persists a row's change state (chg, signature, identity) as the row object holds it. Joins the
   * group commit like id rows: a crash may lose the last few milliseconds of them, after which the
   * files' stats no longer match the stored signatures and their change attributes advance again,
   * which clients take as "changed" (never as "unchanged" when it was).
   */
  saveChange(row: NodeRow): void {
    // A pending row is inserted with its change state as it is then: nothing to write now.
    if (this.pendingById.get(row.id) === row) return;
    if (this.deferrable) {
      // Written by the batch, once however often it changes until then (a directory takes a
      // change per create in it, and a learned signature after).
      this.dirty.set(row.id, row);
      this.batchSoon();
      return;
    }
    this.joinGroup();
    this.row('setChange').run(row.chg, row.sigM, row.sigC, row.sigS, row.native, row.id);
    this.groupFilled();
  }

  /** Directory mtime kept for backends without directory times; joins the group commit. */
  setDirMtime(id: FileId, ns: bigint): void {
    this.joinGroup();
    this.row('setDirMtime').run(ns, id);
    this.groupFilled();
  }

  /**
   * Windows attributes join the group commit, like a row's change state: a file created over SMB
   * gets them at once (ARCHIVE at least), and as a write of its own this committed the group and
   * then itself — two commits per created file, most of an SMB CREATE's store cost (mput of 500
   * 4 KiB files). A row still pending takes them into its insert. Crash semantics are the group's:
   * a process crash may lose the attributes set in the last GROUP_COMMIT_MS, as it loses the id
   * rows made then (the client's data written meanwhile is no more durable without a flush).
   */
  setWinAttributes(id: FileId, attrs: number): void {
    const pending = this.pendingById.get(id);
    if (pending !== undefined) {
      pending.attrs = BigInt(attrs);
      return;
    }
    this.joinGroup();
    this.row('setAttrs').run(BigInt(attrs), id);
    this.groupFilled();
  }

  setBirthTime(id: FileId, birthNs: bigint | null): void {
    this.w('setBirth').run(birthNs, id);
  }

  /** Known children ordered by key, for reconciling listings. */
  children(parent: FileId, afterKey = '', limit = 1000): NodeRow[] {
    return this.row('children').all(parent, afterKey, limit) as unknown as NodeRow[];
  }

  getProps(id: FileId): PropRow[] {
    return this.row('props').all(id) as unknown as PropRow[];
  }

  /**
   * Properties of many ids in one query (WebDAV PROPFIND Depth 1: one statement per directory page
   * instead of one per member). Ids without properties are absent from the map.
   */
  getPropsMany(ids: readonly FileId[]): Map<FileId, PropRow[]> {
    const out = new Map<FileId, PropRow[]>();
    if (ids.length === 0) return out;
    if (!this.propsManyStmt) {
      this.propsManyStmt = this.db.prepare('SELECT id, ns, name, value FROM props WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id, ns, name');
      this.propsManyStmt.setReadBigInts(true);
    }
    for (let i = 0; i < ids.length; i += PROPS_MANY_BATCH) {
      const list = `[${ids.slice(i, i + PROPS_MANY_BATCH).join(',')}]`;
      for (const r of this.propsManyStmt.all(list) as unknown as Array<PropRow & { id: FileId }>) {
        let rows = out.get(r.id);
        if (!rows) out.set(r.id, (rows = []));
        rows.push({ ns: r.ns, name: r.name, value: r.value });
      }
    }
    return out;
  }

  getProp(id: FileId, ns: string, name: string): Uint8Array | undefined {
    return (this.row('prop').get(id, ns, name) as { value: Uint8Array } | undefined)?.value;
  }

  /** Applies all changes or none (WebDAV PROPPATCH is atomic per request). */
  setProps(id: FileId, changes: PropChange[], bound?: PropBound): void {
    this.transaction(() => {
      for (const c of changes) {
        if (c.value === null) this.row('propDel').run(id, c.ns, c.name);
        else this.row('propSet').run(id, c.ns, c.name, c.value);
      }
      // Checked inside the transaction: over the bound, nothing of this call is kept.
      if (bound !== undefined && changes.some((c) => c.value !== null)) {
        this.propsTotalStmt ??= this.db.prepare(
          'SELECT COUNT(*) AS n, COALESCE(SUM(length(CAST(ns AS BLOB)) + length(CAST(name AS BLOB)) + length(value)), 0) AS bytes FROM props WHERE id = ? AND ns NOT IN (SELECT value FROM json_each(?))',
        );
        const t = this.propsTotalStmt.get(id, JSON.stringify(bound.exceptNs)) as { n: number; bytes: number };
        if (t.n > bound.rows || t.bytes > bound.bytes) {
          throw new VfsError('ENOSPC', `a file keeps at most ${bound.rows} properties and ${bound.bytes} bytes of them (now ${t.n}, ${t.bytes} bytes)`);
        }
      }
    });
  }

  copyProps(from: FileId, to: FileId): void {
    this.w('propCopy').run(to, from);
  }

  /**
   * WAL checkpoints in a thread of their own while writes are frequent, not inside commits on this
   * thread (checkpointer.ts says why and when). For long-running processes: the gateway calls it
   * after opening.
   * A no-op for ':memory:' stores and when already on.
   */
  checkpointInBackground(options?: CheckpointerOptions): Checkpointer | undefined {
    if (this.path === ':memory:' || !this.db.isOpen) return undefined;
    this.checkpointer ??= new Checkpointer(this.db, this.path, options);
    return this.checkpointer;
  }

  close(): void {
    if (!this.db.isOpen) return;
    this.commitGroup();
    this.checkpointer?.stop();
    this.checkpointer = undefined;
    this.db.close();
    this.siblings?.delete(this);
    if (this.siblings?.size === 0) openStores.delete(resolve(this.path));
  }
}
