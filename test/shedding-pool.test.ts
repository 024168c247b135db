import t, { type Test } from 'tap'
import type { MysqlPoolConnection } from 'kysely'
import { PoolOverloadedError, SheddingPool, createMysqlPool, databaseUrl } from '../src/db/connection.js'
import { testConfig } from './helpers/app.js'
import { waitFor } from './helpers/wait.js'

// A pool of one real MySQL connection, shedding on short settings so a test reaches overload fast.
const SHED = { targetMs: 20, intervalMs: 20 }

function onePool(t: Test): SheddingPool {
  const pool = new SheddingPool(createMysqlPool(databaseUrl(testConfig().MYSQL_URL, 'mysql'), 1), SHED)
  t.teardown(() => new Promise<void>((done) => pool.end(() => done())))
  return pool
}

const take = (pool: SheddingPool) =>
  new Promise<MysqlPoolConnection>((done, fail) => pool.getConnection((error, connection) => (error ? fail(error) : done(connection))))

/** Asks for a connection as `name`; once served, notes the name and gives the connection back. */
function ask(pool: SheddingPool, name: string, served: string[], refused: string[]): void {
  pool.getConnection((error, connection) => {
    if (error) return void (error instanceof PoolOverloadedError ? refused.push(name) : served.push(`${name}: ${error}`))
    served.push(name)
    setImmediate(() => connection.release())
  })
}

/** Lets the waiters asked for in this turn join the line, before any 10 ms sample can refuse them. */
const nextTurn = () => new Promise((done) => setImmediate(done))

t.test('a pool not overloaded serves its waiters oldest first', async (t) => {
  const pool = onePool(t)
  const holder = await take(pool)
  const served: string[] = []
  const refused: string[] = []
  ask(pool, 'older', served, refused)
  ask(pool, 'newer', served, refused)
  await nextTurn()
  t.equal(pool.waiting, 2)
  holder.release()
  await waitFor('both waiters to be served', () => served.length === 2)
  t.same(served, ['older', 'newer'])
  t.same(refused, [])
})

t.test('an overloaded pool serves its newest waiter first (adaptive LIFO) and refuses the old ones', async (t) => {
  const pool = onePool(t)
  const holder = await take(pool)
  const served: string[] = []
  const refused: string[] = []
  // A stream of waiters behind the held connection: the wait stands above the target.
  let streaming = true
  let streamed = 0
  const stream = setInterval(() => streaming && ask(pool, `stream ${streamed++}`, served, refused), 2)
  t.teardown(() => clearInterval(stream))
  await waitFor('the pool to be overloaded', () => pool.standing)
  streaming = false
  t.ok(refused.length > 0, `waiters that stood were refused (${refused.length})`)
  t.same(served, [], 'nobody was served while the connection was held')

  // Two waiters join the line in turn; the connection comes back before either is 10 ms old.
  ask(pool, 'older', served, refused)
  ask(pool, 'newer', served, refused)
  await nextTurn()
  holder.release()
  await waitFor('the newer waiter to be served', () => served.includes('newer'))
  t.equal(served[0], 'newer', 'the freed connection went to the newest waiter')
  await waitFor('the older waiter to be answered', () => served.includes('older') || refused.includes('older'))
  t.ok(served.indexOf('older') === -1 || served.indexOf('older') > served.indexOf('newer'), 'the older waiter came after, or was refused')

  // Once the line drains, the pool is FIFO again.
  await waitFor('the overload to end', () => !pool.overloaded)
  const again = await take(pool)
  const after: string[] = []
  ask(pool, 'first', after, refused)
  ask(pool, 'second', after, refused)
  await nextTurn()
  again.release()
  await waitFor('both waiters to be served', () => after.length === 2)
  t.same(after, ['first', 'second'])
})
