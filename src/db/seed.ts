import { sql, type Kysely } from 'kysely'
import type { Database } from './schema.js'

export interface SeedOptions {
  users: number
  points: number
  details: number
  seatsPerDetail: number
  price: number
  /** Stops the seed between batches: what was written stays, and the next seed completes it. */
  signal?: AbortSignal
}

const BATCH = 2000
export const SEED_CONCERT_ID = 1
/** A second concert with a queue of its own, so per-concert queues can be tried side by side. */
export const SECOND_CONCERT_ID = 2
const SECOND_CONCERT_DETAILS = 2

/**
 * Idempotent: users 1..N and concerts 1 and 2 with their dated options are created when missing
 * and never touched again (balances survive a restart); seats are topped up to `seatsPerDetail`.
 * Both sales are open from the seeding on. Every batch commits alone, so a seed cut short leaves
 * only whole rows, which the next one keeps and tops up.
 */
export async function seed(db: Kysely<Database>, options: SeedOptions): Promise<void> {
  // Several hosts may start on an empty database at once, and topping up the dated options is a
  // count-then-insert: seeders of one database take turns on a named lock so none is doubled.
  await db.connection().execute(async (connection) => {
    const { rows } = await sql<{ locked: number | null }>`SELECT GET_LOCK(CONCAT('seatrush-seed:', DATABASE()), 60) AS locked`.execute(connection)
    if (Number(rows[0]?.locked) !== 1) throw new Error('Another seeder held the seed lock for 60 s')
    try {
      await seedLocked(connection, options)
    } finally {
      await sql`SELECT RELEASE_LOCK(CONCAT('seatrush-seed:', DATABASE()))`.execute(connection)
    }
  })
}

async function seedLocked(db: Kysely<Database>, options: SeedOptions): Promise<void> {
  for (let first = 1; first <= options.users; first += BATCH) {
    const last = Math.min(options.users, first + BATCH - 1)
    options.signal?.throwIfAborted()
    const rows = []
    for (let id = first; id <= last; id++) {
      rows.push({ id, name: `user-${id}`, point: options.points, starting_point: options.points })
    }
    await db.insertInto('users').ignore().values(rows).execute()
  }

  const concerts = [
    { id: SEED_CONCERT_ID, title: 'Seatrush Live', artist: 'The Queue', venue: 'Main Hall', details: options.details, firstDay: 30 },
    { id: SECOND_CONCERT_ID, title: 'Seatrush Encore', artist: 'The Queue', venue: 'Small Hall', details: SECOND_CONCERT_DETAILS, firstDay: 60 },
  ]
  for (const { details: count, firstDay: daysAhead, ...concert } of concerts) {
    options.signal?.throwIfAborted()
    await db.insertInto('concerts').ignore().values(concert).execute()

    const existing = await db
      .selectFrom('concert_details')
      .select(({ fn }) => fn.countAll<number>().as('count'))
      .where('concert_id', '=', concert.id)
      .executeTakeFirstOrThrow()
    const firstDay = new Date()
    firstDay.setUTCHours(19, 0, 0, 0)
    for (let i = Number(existing.count); i < count; i++) {
      const startsAt = new Date(firstDay.getTime() + (daysAhead + i) * 86_400_000)
      await db
        .insertInto('concert_details')
        .values({ concert_id: concert.id, starts_at: startsAt, price: options.price, total_seats: 0 })
        .execute()
    }

    const details = await db.selectFrom('concert_details').select('id').where('concert_id', '=', concert.id).execute()
    for (const detail of details) {
      options.signal?.throwIfAborted()
      await addSeats(db, detail.id, options.seatsPerDetail)
    }
  }
}

/** Tops a dated option up to `count` seats numbered 1..count and records the total. */
export async function addSeats(db: Kysely<Database>, concertDetailId: number, count: number): Promise<void> {
  for (let first = 1; first <= count; first += BATCH) {
    const last = Math.min(count, first + BATCH - 1)
    const rows = []
    for (let seatNo = first; seatNo <= last; seatNo++) {
      rows.push({ concert_detail_id: concertDetailId, seat_no: seatNo, status: 'AVAILABLE' as const })
    }
    await db.insertInto('seats').ignore().values(rows).execute()
  }
  await db
    .updateTable('concert_details')
    .set({
      total_seats: sql<number>`(SELECT COUNT(*) FROM seats WHERE seats.concert_detail_id = ${concertDetailId})`,
    })
    .where('id', '=', concertDetailId)
    .execute()
}
