import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { MIGRATIONS, openMemoryStore, openSqliteStore, StoreError, STATE_FILE, type Store } from '../../src/store/store.js'

/** The error fn throws, or undefined. */
function caught(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Net {
  id: string
  name: string
  subnet?: string
}

/** The contract every Store implementation keeps. */
function contract(name: string, open: (t: Test) => Store): void {
  t.test(`${name}: get, put, list, delete`, async (t) => {
    const s = open(t)
    t.equal(s.get('network', 'n1'), undefined)
    t.same(s.list('network'), [])
    s.put('network', 'n2', { id: 'n2', name: 'b' })
    s.put('network', 'n1', { id: 'n1', name: 'a', subnet: '10.0.0.0/24' })
    s.put('endpoint', 'n1', { id: 'n1', other: 'kind, same id' })
    t.same(s.get<Net>('network', 'n1'), { id: 'n1', name: 'a', subnet: '10.0.0.0/24' })
    t.same(s.list<Net>('network').map((n) => n.id), ['n1', 'n2'], 'ordered by id')
    s.put('network', 'n1', { id: 'n1', name: 'renamed' })
    t.same(s.get<Net>('network', 'n1'), { id: 'n1', name: 'renamed' }, 'put replaces')
    const rec = s.get<Net>('network', 'n1') as Net
    rec.name = 'mutated'
    t.equal(s.get<Net>('network', 'n1')?.name, 'renamed', 'records are copies')
    t.equal(s.delete('network', 'n1'), true)
    t.equal(s.delete('network', 'n1'), false)
    t.equal(s.get('network', 'n1'), undefined)
    t.equal(s.list('endpoint').length, 1)
  })

  t.test(`${name}: bad keys and records are clear errors`, async (t) => {
    const s = open(t)
    t.match(caught(() => s.put('', 'x', {})), { code: 'STORE_INVALID_KEY' })
    t.match(caught(() => s.put('network', '', {})), { code: 'STORE_INVALID_KEY' })
    t.match(caught(() => s.get('network', 7 as unknown as string)), { code: 'STORE_INVALID_KEY' })
    t.match(caught(() => s.put('network', 'x', undefined)), { code: 'STORE_INVALID_RECORD', message: 'network record "x"' })
    t.match(caught(() => s.put('network', 'x', { n: 1n })), { code: 'STORE_INVALID_RECORD' })
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    t.match(caught(() => s.put('network', 'x', cyclic)), { code: 'STORE_INVALID_RECORD' })
    t.equal(s.get('network', 'x'), undefined, 'nothing half-written')
  })

  t.test(`${name}: transaction commits together or rolls back on throw`, async (t) => {
    const s = open(t)
    s.put('network', 'a', { id: 'a' })
    t.equal(s.transaction(() => {
      s.put('network', 'b', { id: 'b' })
      s.put('pool', 'b', { subnet: '10.0.0.0/24' })
      return 42
    }), 42)
    t.ok(s.get('pool', 'b'))

    const boom = new Error('boom')
    t.equal(caught(() => s.transaction(() => {
      s.put('network', 'c', { id: 'c' })
      s.put('network', 'a', { id: 'a', changed: true })
      s.delete('network', 'b')
      throw boom
    })), boom, 'the error comes out as thrown')
    t.same(s.list<Net>('network'), [{ id: 'a' }, { id: 'b' }], 'all three changes undone')

    s.transaction(() => {
      s.put('network', 'd', { id: 'd' })
      t.match(caught(() => s.transaction(() => {
        s.put('network', 'e', { id: 'e' })
        s.delete('network', 'a')
        throw new Error('inner')
      })), { message: 'inner' })
      t.same(s.transaction(() => s.get('network', 'd')), { id: 'd' }, 'nested transactions see outer writes')
    })
    t.same(s.list<Net>('network').map((n) => n.id), ['a', 'b', 'd'], 'inner rolled back, outer committed')

    t.match(caught(() => s.transaction(async () => {
      s.put('network', 'async', { id: 'async' })
    })), { code: 'STORE_ASYNC_TRANSACTION' })
    t.equal(s.get('network', 'async'), undefined, 'an async transaction function is refused and undone')
  })

  t.test(`${name}: closed store`, async (t) => {
    const s = open(t)
    s.close()
    s.close()
    const err = caught(() => s.get('network', 'a'))
    t.ok(err instanceof StoreError)
    t.match(err, { code: 'STORE_CLOSED' })
    t.match(caught(() => s.put('network', 'a', {})), { code: 'STORE_CLOSED' })
  })
}

contract('memory', (t) => {
  const s = openMemoryStore()
  t.teardown(() => s.close())
  return s
})

contract('sqlite', (t) => {
  const s = openSqliteStore(tempDir(t))
  t.teardown(() => s.close())
  return s
})

t.test('sqlite: state survives close and reopen', async (t) => {
  const dir = join(tempDir(t), 'nested', 'state')
  let s = openSqliteStore(dir)
  s.put('network', 'n1', { id: 'n1', name: 'front' })
  s.put('pool', 'n1', { allocated: ['10.0.0.2-10.0.0.9'] })
  s.transaction(() => {
    s.put('endpoint', 'e1', { id: 'e1', ip: '10.0.0.2' })
    s.put('sandbox', 's1', { id: 's1' })
  })
  s.close()
  t.equal(statSync(dir).mode & 0o777, 0o700, 'directory is 0700')
  t.equal(statSync(join(dir, STATE_FILE)).mode & 0o777, 0o600, 'state file is 0600')

  s = openSqliteStore(dir)
  t.teardown(() => s.close())
  t.same(s.get('network', 'n1'), { id: 'n1', name: 'front' })
  t.same(s.get('pool', 'n1'), { allocated: ['10.0.0.2-10.0.0.9'] })
  t.same(s.list('endpoint'), [{ id: 'e1', ip: '10.0.0.2' }])
  t.same(s.list('sandbox'), [{ id: 's1' }])

  const raw = new Database(join(dir, STATE_FILE), { readonly: true })
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal')
  raw.close()
})

t.test('sqlite: a kill -9 right after put loses nothing', async (t) => {
  const dir = tempDir(t)
  const storeUrl = new URL('../../src/store/store.js', import.meta.url).href
  const script = `
    import { openSqliteStore } from ${JSON.stringify(storeUrl)}
    const s = openSqliteStore(${JSON.stringify(dir)})
    for (let i = 0; i < 50; i++) s.put('endpoint', 'ep' + i, { id: 'ep' + i, ip: '10.0.0.' + (i + 2) })
    s.transaction(() => {
      s.put('network', 'n1', { id: 'n1' })
      s.delete('endpoint', 'ep0')
    })
    s.put('pool', 'n1', { next: '10.0.0.52' })
    process.kill(process.pid, 'SIGKILL')
  `
  // Reuse the TypeScript loader tap runs this test with, so the child imports the same source.
  const loader = process.execArgv.filter((a) => a.includes('typescript'))
  const child = spawnSync(process.execPath, [...loader, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 })
  t.equal(child.signal, 'SIGKILL', `child was killed, not failed: ${child.stderr}`)

  const s = openSqliteStore(dir)
  t.teardown(() => s.close())
  t.equal(s.list('endpoint').length, 49)
  t.equal(s.get('endpoint', 'ep0'), undefined)
  t.same(s.get('endpoint', 'ep49'), { id: 'ep49', ip: '10.0.0.51' })
  t.same(s.get('network', 'n1'), { id: 'n1' })
  t.same(s.get('pool', 'n1'), { next: '10.0.0.52' }, 'the very last put before the kill is there')
})

t.test('sqlite: a corrupt record is skipped and reported, never a crash', async (t) => {
  const dir = tempDir(t)
  const reports: Array<[string, string, string]> = []
  const warnings: string[] = []
  const s = openSqliteStore(dir, {
    onCorrupt: (kind, id, err) => reports.push([kind, id, err.message]),
    log: { info: () => {}, warn: (msg) => warnings.push(msg) },
  })
  t.teardown(() => s.close())
  s.put('network', 'good1', { id: 'good1' })
  s.put('network', 'good2', { id: 'good2' })

  const raw = new Database(join(dir, STATE_FILE))
  raw.prepare('INSERT INTO records (kind, id, data, updated_at) VALUES (?, ?, ?, ?)').run('network', 'bad-json', '{"id": "bad', 0)
  raw.prepare('INSERT INTO records (kind, id, data, updated_at) VALUES (?, ?, ?, ?)').run('network', 'bad-blob', Buffer.from([0, 255]), 0)
  raw.close()

  t.same(s.list('network'), [{ id: 'good1' }, { id: 'good2' }])
  t.same(reports.map((r) => r.slice(0, 2)), [['network', 'bad-blob'], ['network', 'bad-json']])
  t.match(reports[1][2], /JSON/)
  t.equal(warnings.length, 2)
  t.match(warnings[0], 'skipping unreadable network record "bad-blob"')

  t.equal(s.get('network', 'bad-json'), undefined, 'get of a corrupt record reports and returns nothing')
  t.equal(reports.length, 3)
  s.put('network', 'bad-json', { id: 'bad-json', repaired: true })
  t.same(s.get('network', 'bad-json'), { id: 'bad-json', repaired: true }, 'a put repairs it')

  const throwing = openSqliteStore(dir, { onCorrupt: () => { throw new Error('bad callback') } })
  t.teardown(() => throwing.close())
  t.equal(throwing.list('network').length, 3, 'a throwing callback does not break list()')
})

t.test('sqlite: schema versions and the migration hook', async (t) => {
  const dir = tempDir(t)
  openSqliteStore(dir).close()
  let runs = 0
  const v2 = [...MIGRATIONS, {
    version: 2,
    description: 'add a side table',
    up(db: Database.Database) {
      runs++
      db.exec('CREATE TABLE side (x TEXT)')
    },
  }]
  const infos: string[] = []
  openSqliteStore(dir, { migrations: v2, log: { info: (m) => infos.push(m), warn: () => {} } }).close()
  openSqliteStore(dir, { migrations: v2 }).close()
  t.equal(runs, 1, 'a migration runs once')
  t.same(infos, ['store schema migrated'])

  const raw = new Database(join(dir, STATE_FILE), { readonly: true })
  t.same(raw.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all(), [1, 2])
  raw.close()

  const err = caught(() => openSqliteStore(dir))
  t.ok(err instanceof StoreError)
  t.match(err, { code: 'STORE_SCHEMA_TOO_NEW', message: 'schema version 2' })

  const failing = [...MIGRATIONS, { version: 2, description: 'fails', up() { throw new Error('nope') } }]
  const dir2 = tempDir(t)
  t.match(caught(() => openSqliteStore(dir2, { migrations: failing })), { code: 'STORE_OPEN_FAILED', message: 'nope' })
  const again = openSqliteStore(dir2)
  t.same(again.list('network'), [], 'a failed migration leaves the previous version usable')
  again.close()
})

t.test('sqlite: a file that is not a database is a clear error', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, STATE_FILE), 'this is not sqlite, just some text that is long enough to look like a header'.repeat(20))
  const err = caught(() => openSqliteStore(dir))
  t.ok(err instanceof StoreError)
  t.match(err, { code: 'STORE_OPEN_FAILED', message: join(dir, STATE_FILE) })
  t.match((err as Error).message, /move the file aside/)
})
