import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { holdIsLive, seatIsFree, seatStatusNow } from '../reservations/seat-state.js'
import type { Concert, ConcertOption, SeatView } from './schemas.js'

/** What a read shows, and the first time (epoch ms, database clock) a live hold in it lapses and changes it. */
export interface Timed<T> {
  value: T
  nextLapseAt: number | null
}

const earliest = (times: Array<Date | null | undefined>): number | null => {
  const ms = times.filter((time): time is Date => time instanceof Date).map((time) => time.getTime())
  return ms.length ? Math.min(...ms) : null
}

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

    /** Every seat of one dated option in seat order, and when its first live hold lapses; undefined when the option does not exist. */
    async seatMap(concertDetailId: number): Promise<Timed<SeatView[]> | undefined> {
      const rows = await db
        .selectFrom('seats')
        .select(['seat_no as seatNo', seatStatusNow.as('status'), sql<Date | null>`CASE WHEN ${holdIsLive} THEN seats.held_until END`.as('lapsesAt')])
        .where('concert_detail_id', '=', concertDetailId)
        .orderBy('seat_no')
        .execute()
      if (rows.length === 0 && !(await this.detailExists(concertDetailId))) return undefined
      return { value: rows.map(({ seatNo, status }) => ({ seatNo, status })), nextLapseAt: earliest(rows.map((row) => row.lapsesAt)) }
    },

    /** The concert's options with the moment its first live hold lapses (a count goes up then). */
    async optionsWithLapse(concertId: number): Promise<Timed<ConcertOption[] | undefined>> {
      const [value, lapse] = await Promise.all([
        this.options(concertId),
        db
          .selectFrom('seats')
          .innerJoin('concert_details as d', 'd.id', 'seats.concert_detail_id')
          .select((eb) => eb.fn.min<Date | null>('seats.held_until').as('at'))
          .where('d.concert_id', '=', concertId)
          .where(holdIsLive)
          .executeTakeFirst(),
      ])
      return { value, nextLapseAt: earliest([lapse?.at]) }
    },

    /** The concert each option belongs to; undefined when the option does not exist. */
    async concertOf(concertDetailId: number): Promise<number | undefined> {
      const row = await db.selectFrom('concert_details').select('concert_id').where('id', '=', concertDetailId).executeTakeFirst()
      return row?.concert_id
    },
  }
}
