/**
 * Where the control plane keeps its state: JSON records grouped by kind ('network',
 * 'endpoint', 'sandbox', 'pool', ...) and keyed by id. `Store` is the small interface the
 * rest of the daemon uses, so an etcd-backed store can stand in for multi-host; this file
 * holds the embedded SQLite store (one host) and an in-memory one (unit tests).
 *
 *   const store = openSqliteStore('/var/lib/switchyard')
 *   store.transaction(() => {
 *     store.put('network', net.id, net)
 *     store.put('pool', net.id, pool.toJSON())
 *   })                                   // durable on disk when this returns
 *   store.list<NetworkRecord>('network')
 *
 * Durability: WAL journal with synchronous=FULL, so each commit is fsynced before put()
 * or transaction() returns; a kill -9 (or power loss) afterwards loses nothing.
 */

import { chmodSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'

/** Collections of JSON records by kind and id. All calls are synchronous and atomic. */
export interface Store {
  /** The record, or undefined if there is none (or it is unreadable, which is reported). */
  get<T>(kind: string, id: string): T | undefined
  /** All readable records of a kind, ordered by id; unreadable ones are skipped and reported. */
  list<T>(kind: string): T[]
  /** Create or replace a record; durable when it returns (or when the outer transaction commits). */
  put(kind: string, id: string, record: unknown): void
  /** Remove a record; returns whether it existed. */
  delete(kind: string, id: string): boolean
  /** Run fn atomically: all its changes commit together, or none if it throws. Nesting is fine; fn must be synchronous. */
  transaction<R>(fn: () => R): R
  /** Release the store; later calls throw StoreError('STORE_CLOSED'). Idempotent. */
  close(): void
}

/** Logging the store needs; `console` fits. */
export interface StoreLogger {
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

/** Called for a stored record that cannot be decoded; the record is skipped, not deleted. */
export type CorruptRecordHandler = (kind: string, id: string, error: Error) => void

/** One schema step; `up` runs inside the transaction that records the new version. */
export interface Migration {
  version: number
  description: string
  up(db: Database.Database): void
}

/** Options of openSqliteStore. */
export interface SqliteStoreOptions {
  log?: StoreLogger
  onCorrupt?: CorruptRecordHandler
  /** The full, ascending list of schema steps; defaults to MIGRATIONS. */
  migrations?: readonly Migration[]
}

/** Store failures with a stable `code`: STORE_CLOSED, STORE_INVALID_KEY, STORE_INVALID_RECORD, STORE_OPEN_FAILED, STORE_SCHEMA_TOO_NEW, STORE_ASYNC_TRANSACTION. */
export class StoreError extends Error {
  override readonly name = 'StoreError'
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The schema steps of the SQLite store, oldest first. */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    description: 'records table: JSON by (kind, id)',
    up(db: Database.Database): void {
      db.exec(`CREATE TABLE records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
      ) WITHOUT ROWID`)
    },
  },
])

/** The state file inside the store directory. */
export const STATE_FILE = 'state.db'

/**
 * Open (creating if needed) `dir/state.db`. The directory is created mode 0700 and the
 * file made 0600: the state names every network and address on the host.
 */
export function openSqliteStore(dir: string, options: SqliteStoreOptions = {}): Store {
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (created !== undefined) chmodSync(dir, 0o700) // mkdir's mode is filtered by the umask
  const file = join(dir, STATE_FILE)
  let db: Database.Database | undefined
  try {
    db = new Database(file)
    chmodSync(file, 0o600)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('busy_timeout = 5000')
    migrate(db, options.migrations ?? MIGRATIONS, options.log)
  } catch (err) {
    db?.close()
    if (err instanceof StoreError) throw err
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `cannot open state database ${file}: ${(err as Error).message}; check the directory's permissions and free space, or move the file aside to start with empty state`,
      { cause: err },
    )
  }
  return new SqliteStore(db, file, reporter(options))
}

/** A store that lives only as long as the process, for tests. Records are copied in and out as JSON, like the real one. */
export function openMemoryStore(): Store {
  return new MemoryStore()
}

/** Bring the schema up to the newest migration; refuse a database from a newer release. */
function migrate(db: Database.Database, migrations: readonly Migration[], log?: StoreLogger): void {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version <= migrations[i - 1].version) throw new Error('migrations must have ascending versions')
  }
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)')
  const current = (db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0
  const newest = migrations.length ? migrations[migrations.length - 1].version : 0
  if (current > newest) {
    throw new StoreError(
      'STORE_SCHEMA_TOO_NEW',
      `state database ${db.name} has schema version ${current}, newer than this switchyard understands (${newest}); run a newer switchyard`,
    )
  }
  const record = db.prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)')
  for (const m of migrations) {
    if (m.version <= current) continue
    db.transaction(() => {
      m.up(db)
      record.run(m.version, m.description, new Date().toISOString())
    }).immediate()
    log?.info('store schema migrated', { version: m.version, description: m.description })
  }
}

/** One place that turns an unreadable record into a report and never into a crash. */
function reporter(options: SqliteStoreOptions): CorruptRecordHandler {
  return (kind, id, error) => {
    const msg = `skipping unreadable ${kind} record ${JSON.stringify(id)}: ${error.message}`
    if (options.log) options.log.warn(msg, { kind, id })
    if (options.onCorrupt) {
      try {
        options.onCorrupt(kind, id, error)
      } catch {
        // a faulty callback must not turn a skipped record into a failed list()
      }
    }
    if (!options.log && !options.onCorrupt) process.emitWarning(msg, 'SwitchyardStoreWarning')
  }
}

function checkKey(kind: unknown, id: unknown): void {
  if (typeof kind !== 'string' || kind === '') throw new StoreError('STORE_INVALID_KEY', `store kind must be a non-empty string, like 'network'; got ${JSON.stringify(kind)}`)
  if (typeof id !== 'string' || id === '') throw new StoreError('STORE_INVALID_KEY', `store id must be a non-empty string; got ${JSON.stringify(id)}`)
}

function encode(kind: string, id: string, record: unknown): string {
  let text: string | undefined
  try {
    text = JSON.stringify(record)
  } catch (err) {
    throw new StoreError('STORE_INVALID_RECORD', `${kind} record ${JSON.stringify(id)} cannot be stored as JSON: ${(err as Error).message}`, { cause: err })
  }
  if (text === undefined) throw new StoreError('STORE_INVALID_RECORD', `${kind} record ${JSON.stringify(id)} cannot be stored as JSON: it is ${typeof record}; store an object`)
  return text
}

function decode<T>(data: unknown, kind: string, id: string, onCorrupt: CorruptRecordHandler): T | undefined {
  if (typeof data !== 'string') {
    onCorrupt(kind, id, new Error(`stored data is ${data === null ? 'null' : typeof data}, not JSON text`))
    return undefined
  }
  try {
    return JSON.parse(data) as T
  } catch (err) {
    onCorrupt(kind, id, err as Error)
    return undefined
  }
}

/** Refuse async functions: their awaits would run after the commit, outside the transaction. */
function assertSync(result: unknown): void {
  if (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function') {
    throw new StoreError('STORE_ASYNC_TRANSACTION', 'store transaction functions must be synchronous; do the async work first, then write in one synchronous transaction')
  }
}

interface Row {
  id: string
  data: unknown
}

class SqliteStore implements Store {
  private readonly stmtGet: Database.Statement<[string, string], { data: unknown }>
  private readonly stmtList: Database.Statement<[string], Row>
  private readonly stmtPut: Database.Statement<[string, string, string, number]>
  private readonly stmtDelete: Database.Statement<[string, string]>
  private closed = false

  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    private readonly onCorrupt: CorruptRecordHandler,
  ) {
    this.stmtGet = db.prepare('SELECT data FROM records WHERE kind = ? AND id = ?')
    this.stmtList = db.prepare('SELECT id, data FROM records WHERE kind = ? ORDER BY id')
    this.stmtPut = db.prepare(
      'INSERT INTO records (kind, id, data, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at',
    )
    this.stmtDelete = db.prepare('DELETE FROM records WHERE kind = ? AND id = ?')
  }

  get<T>(kind: string, id: string): T | undefined {
    this.check()
    checkKey(kind, id)
    const row = this.stmtGet.get(kind, id)
    return row === undefined ? undefined : decode<T>(row.data, kind, id, this.onCorrupt)
  }

  list<T>(kind: string): T[] {
    this.check()
    checkKey(kind, '-')
    const out: T[] = []
    for (const row of this.stmtList.all(kind)) {
      const rec = decode<T>(row.data, kind, String(row.id), this.onCorrupt)
      if (rec !== undefined) out.push(rec)
    }
    return out
  }

  put(kind: string, id: string, record: unknown): void {
    this.check()
    checkKey(kind, id)
    this.stmtPut.run(kind, id, encode(kind, id, record), Date.now())
  }

  delete(kind: string, id: string): boolean {
    this.check()
    checkKey(kind, id)
    return this.stmtDelete.run(kind, id).changes > 0
  }

  transaction<R>(fn: () => R): R {
    this.check()
    const tx = this.db.transaction((): R => {
      const result = fn()
      assertSync(result)
      return result
    })
    // IMMEDIATE takes the write lock up front, so a reader (the CLI) cannot make us fail mid-way with SQLITE_BUSY.
    return this.db.inTransaction ? tx() : tx.immediate()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }

  private check(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', `the store ${this.file} is closed`)
  }
}

class MemoryStore implements Store {
  private readonly kinds = new Map<string, Map<string, string>>()
  /** Undo steps of the open transaction(s); undefined outside any. */
  private undo: Array<() => void> | undefined
  private closed = false

  get<T>(kind: string, id: string): T | undefined {
    this.check()
    checkKey(kind, id)
    const text = this.kinds.get(kind)?.get(id)
    return text === undefined ? undefined : (JSON.parse(text) as T)
  }

  list<T>(kind: string): T[] {
    this.check()
    checkKey(kind, '-')
    const records = this.kinds.get(kind)
    if (!records) return []
    return [...records.keys()].sort().map((id) => JSON.parse(records.get(id) as string) as T)
  }

  put(kind: string, id: string, record: unknown): void {
    this.check()
    checkKey(kind, id)
    const text = encode(kind, id, record)
    let records = this.kinds.get(kind)
    if (!records) {
      records = new Map()
      this.kinds.set(kind, records)
    }
    this.remember(kind, id, records.get(id))
    records.set(id, text)
  }

  delete(kind: string, id: string): boolean {
    this.check()
    checkKey(kind, id)
    const records = this.kinds.get(kind)
    const old = records?.get(id)
    if (!records || old === undefined) return false
    this.remember(kind, id, old)
    records.delete(id)
    return true
  }

  transaction<R>(fn: () => R): R {
    this.check()
    const outer = this.undo === undefined
    const undo = (this.undo ??= [])
    const mark = undo.length
    try {
      const result = fn()
      assertSync(result)
      return result
    } catch (err) {
      // Undo newest first back to where this (possibly nested) transaction began, like a savepoint.
      while (undo.length > mark) (undo.pop() as () => void)()
      throw err
    } finally {
      if (outer) this.undo = undefined
    }
  }

  close(): void {
    this.closed = true
    this.kinds.clear()
  }

  private remember(kind: string, id: string, old: string | undefined): void {
    if (!this.undo) return
    this.undo.push(() => {
      let records = this.kinds.get(kind)
      if (!records) {
        records = new Map()
        this.kinds.set(kind, records)
      }
      if (old === undefined) records.delete(id)
      else records.set(id, old)
    })
  }

  private check(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the memory store is closed')
  }
}
