import type { Test } from 'tap'
import { sql, type Kysely } from 'kysely'
import type { Config } from '../../src/config.js'
import { createDb, parseMysqlUrl } from '../../src/db/connection.js'
import type { Database } from '../../src/db/schema.js'

/** The ledger invariant: every balance equals its starting points plus the sum of its history. */
export async function ledgerMismatches(db: Kysely<Database>) {
  const rows = await db
    .selectFrom('users')
    .leftJoin('point_history', 'point_history.user_id', 'users.id')
    .select(['users.id', 'users.point', 'users.starting_point', sql<number>`COALESCE(SUM(point_history.amount), 0)`.as('history')])
    .groupBy(['users.id', 'users.point', 'users.starting_point'])
    .execute()
  return rows.filter((row) => Number(row.point) !== Number(row.starting_point) + Number(row.history) || Number(row.point) < 0)
}

/**
 * A connection to the test's database that does not select it as the session's database, so a
 * test that kills "every connection of that database" (found by PROCESSLIST.DB) spares its own.
 */
export function observerDb(t: Test, config: Config): Kysely<Database> {
  const { serverUrl, database } = parseMysqlUrl(config.MYSQL_URL)
  const db = createDb(serverUrl, 3)
  t.teardown(() => db.destroy())
  return db.withSchema(database)
}

/** Every way the database can break the invariants the README promises; each list is empty when they hold. */
export async function invariantViolations(db: Kysely<Database>) {
  const [ledger, negativeBalances, seatsConfirmedTwice, confirmedPayments, confirmedHistory, orphanPayments, soldSeats] = await Promise.all([
    ledgerMismatches(db),
    db.selectFrom('users').select(['id', 'point']).where('point', '<', 0).execute(),
    db
      .selectFrom('reservations')
      .select(['concert_detail_id', 'seat_no', ({ fn }) => fn.countAll<number>().as('confirmed')])
      .where('status', '=', 'CONFIRMED')
      .groupBy(['concert_detail_id', 'seat_no'])
      .having(({ fn }) => fn.countAll(), '>', 1)
      .execute(),
    // A confirmed reservation has exactly one payment, of its price, by its user.
    db
      .selectFrom('reservations as r')
      .leftJoin('payments as p', 'p.reservation_id', 'r.id')
      .select(['r.id', ({ fn }) => fn.count<number>('p.id').as('payments')])
      .where('r.status', '=', 'CONFIRMED')
      .groupBy('r.id')
      .having((eb) =>
        eb.or([
          eb(eb.fn.count('p.id'), '!=', 1),
          eb(eb.fn.sum(sql<number>`CASE WHEN p.amount = r.price AND p.user_id = r.user_id THEN 0 ELSE 1 END`), '>', 0),
        ]),
      )
      .execute(),
    // ... and exactly one PAYMENT history row debiting that price.
    db
      .selectFrom('reservations as r')
      .leftJoin('point_history as h', (join) => join.onRef('h.reservation_id', '=', 'r.id').on('h.kind', '=', 'PAYMENT'))
      .select(['r.id', ({ fn }) => fn.count<number>('h.id').as('historyRows')])
      .where('r.status', '=', 'CONFIRMED')
      .groupBy('r.id')
      .having((eb) =>
        eb.or([eb(eb.fn.count('h.id'), '!=', 1), eb(eb.fn.sum(sql<number>`CASE WHEN h.amount = -r.price THEN 0 ELSE 1 END`), '>', 0)]),
      )
      .execute(),
    // No payment or payment history row belongs to anything but a confirmed reservation.
    db
      .selectFrom('payments as p')
      .leftJoin('reservations as r', 'r.id', 'p.reservation_id')
      .select(['p.id', 'r.status'])
      .where((eb) => eb.or([eb('r.id', 'is', null), eb('r.status', '!=', 'CONFIRMED')]))
      .unionAll(
        db
          .selectFrom('point_history as h')
          .leftJoin('reservations as r', 'r.id', 'h.reservation_id')
          .select(['h.id', 'r.status'])
          .where('h.kind', '=', 'PAYMENT')
          .where((eb) => eb.or([eb('r.id', 'is', null), eb('r.status', '!=', 'CONFIRMED')])),
      )
      .execute(),
    // A sold seat points at its confirmed reservation, of the same user and seat.
    db
      .selectFrom('seats as s')
      .leftJoin('reservations as r', 'r.id', 's.reservation_id')
      .select(['s.id', 's.concert_detail_id', 's.seat_no', 'r.status'])
      .where('s.status', '=', 'SOLD')
      .where((eb) =>
        eb.or([
          eb('r.id', 'is', null),
          eb('r.status', '!=', 'CONFIRMED'),
          eb('r.user_id', '!=', eb.ref('s.user_id')),
          eb('r.seat_no', '!=', eb.ref('s.seat_no')),
          eb('r.concert_detail_id', '!=', eb.ref('s.concert_detail_id')),
        ]),
      )
      .execute(),
  ])
  return { ledger, negativeBalances, seatsConfirmedTwice, confirmedPayments, confirmedHistory, orphanPayments, soldSeats }
}

/** Checks the invariants and says what was checked. */
export async function assertInvariants(t: Test, db: Kysely<Database>): Promise<void> {
  const violations = await invariantViolations(db)
  const empty = Object.fromEntries(Object.keys(violations).map((key) => [key, []]))
  t.same(violations, empty, 'ledger balanced, no balance < 0, no seat sold twice, every confirmed reservation has one payment and one history row')
  const counts = await db
    .selectFrom('reservations')
    .select(['status', ({ fn }) => fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute()
  t.comment(`reservations by status: ${counts.map((row) => `${row.status} ${row.n}`).join(', ') || 'none'}`)
}
