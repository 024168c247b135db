import type { Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.js'
import { addSeats } from '../../src/db/seed.js'

/** The second seeded concert (created here too when missing), for halls of any size: CPU-heavy seat maps. */
export const HALL_CONCERT_ID = 2

export async function addHallConcert(db: Kysely<Database>): Promise<void> {
  await db.insertInto('concerts').ignore().values({ id: HALL_CONCERT_ID, title: 'Seatrush Arena', artist: 'The Queue', venue: 'Large Hall' }).execute()
}

/** A new dated option of `concertId`, two months out, with `seats` seats; answers its id. */
export async function addHall(db: Kysely<Database>, concertId: number, seats: number, price = 50_000): Promise<number> {
  const { insertId } = await db
    .insertInto('concert_details')
    .values({ concert_id: concertId, starts_at: new Date(Date.now() + 60 * 86_400_000), price, total_seats: 0 })
    .executeTakeFirstOrThrow()
  const concertDetailId = Number(insertId)
  await addSeats(db, concertDetailId, seats)
  return concertDetailId
}
