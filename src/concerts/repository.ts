import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { seatIsFree, seatStatusNow } from '../reservations/seat-state.js'
import type { Concert, ConcertOption, SeatView } from './schemas.js'

export function createConcertRepository(db: Kysely<Database>) {
  return {
    async concert(concertId: number): Promise<Concert | undefined> {
      const row = await db.selectFrom('concerts').select(['id', 'title', 'artist', 'venue', 'sale_opens_at']).where('id', '=', concertId).executeTakeFirst()
      return row && { concertId: row.id, title: row.title, artist: row.artist, venue: row.venue, saleOpensAt: row.sale_opens_at.toISOString() }
    },

    /** The concert's dated options with live seat counts; undefined when the concert does not exist. */
    async options(concertId: number): Promise<ConcertOption[] | undefined> {
      const [exists, rows] = await Promise.all([
        db.selectFrom('concerts').select('id').where('id', '=', concertId).executeTakeFirst(),
        db
          .selectFrom('concert_details as d')
          .select((eb) => [
            'd.id',
            'd.starts_at',
            'd.price',
            'd.total_seats',
            eb
              .selectFrom('seats')
              .select(eb.fn.countAll<number>().as('n'))
              .whereRef('seats.concert_detail_id', '=', 'd.id')
              .where(seatIsFree)
              .as('available'),
          ])
          .where('d.concert_id', '=', concertId)
          .orderBy('d.starts_at')
          .execute(),
      ])
      if (!exists) return undefined
      return rows.map((row) => ({
        concertDetailId: row.id,
        date: row.starts_at.toISOString(),
        price: row.price,
        totalSeats: row.total_seats,
        availableSeats: Number(row.available ?? 0),
      }))
    },

    async detailExists(concertDetailId: number): Promise<boolean> {
      return !!(await db.selectFrom('concert_details').select('id').where('id', '=', concertDetailId).executeTakeFirst())
    },

    /** Every seat of one dated option in seat order; undefined when the option does not exist. */
    async seats(concertDetailId: number): Promise<SeatView[] | undefined> {
      const rows = await db
        .selectFrom('seats')
        .select(['seat_no as seatNo', seatStatusNow.as('status')])
        .where('concert_detail_id', '=', concertDetailId)
        .orderBy('seat_no')
        .execute()
      if (rows.length === 0 && !(await this.detailExists(concertDetailId))) return undefined
      return rows
    },
  }
}

