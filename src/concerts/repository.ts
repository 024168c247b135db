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

/** One option's seats in seat order, side by side: `statuses[i]` indexes SEAT_STATUSES. */
export interface SeatList {
  seatNos: Uint32Array
  statuses: Uint8Array
}

export const SEAT_STATUSES = ['AVAILABLE', 'HELD', 'SOLD'] as const satisfies readonly SeatView['status'][]
/** A status's code by its initial, the letter MySQL packs (the three initials differ). */
const STATUS_OF_INITIAL: Record<number, number> = Object.fromEntries(SEAT_STATUSES.map((status, code) => [status.charCodeAt(0), code]))

/** A list of seats as the schema's objects (tests, small maps). */
export function seatList(seats: readonly SeatView[]): SeatList {
  return { seatNos: Uint32Array.from(seats, (seat) => seat.seatNo), statuses: Uint8Array.from(seats, (seat) => SEAT_STATUSES.indexOf(seat.status)) }
}

/**
 * Reads GROUP_CONCAT's "1A2H3S…" of `count` seats, in seat order whatever order they came in. A
 * string cut short (group_concat_max_len lower than the session sets it) or anything unexpected
 * in it is an error, never a short map.
 */
export function unpackSeats(packed: string, count: number): SeatList {
  const seatNos = new Uint32Array(count)
  const statuses = new Uint8Array(count)
  let seat = 0
  let number = 0
  let digits = 0
  let i = 0
  for (; i < packed.length; i++) {
    const code = packed.charCodeAt(i)
    if (code >= 0x30 && code <= 0x39) {
      number = number * 10 + (code - 0x30)
      digits++
      continue
    }
    const status = STATUS_OF_INITIAL[code]
    if (status === undefined || digits === 0 || seat === count) break
    seatNos[seat] = number
    statuses[seat++] = status
    number = 0
    digits = 0
  }
  if (i !== packed.length || seat !== count || digits !== 0) throw new Error(`the packed seat map read ${seat} of ${count} seats: cut short or malformed`)
  return inSeatOrder({ seatNos, statuses })
}

/**
 * The seats sorted by number, merging the runs they already come in: MySQL reads a map from the
 * index on (option, status, seat), so a hall arrives as one ascending run per status, and two
 * passes merge three runs. Any order is sorted, in as many passes as it takes to halve its runs
 * down to one. The list's own arrays serve as the second buffer, so the caller gives up the list
 * it passes (unpackSeats passes the arrays it has just filled).
 */
function inSeatOrder(list: SeatList): SeatList {
  const count = list.seatNos.length
  let starts = [0]
  for (let k = 1; k < count; k++) if (list.seatNos[k - 1]! > list.seatNos[k]!) starts.push(k)
  if (starts.length === 1) return list
  let [fromNos, fromStatuses]: [Uint32Array, Uint8Array] = [list.seatNos, list.statuses]
  let [toNos, toStatuses]: [Uint32Array, Uint8Array] = [new Uint32Array(count), new Uint8Array(count)]
  while (starts.length > 1) {
    const merged: number[] = []
    for (let run = 0; run < starts.length; run += 2) {
      const low = starts[run]!
      const middle = starts[run + 1] ?? count
      const high = starts[run + 2] ?? count
      merged.push(low)
      let a = low
      let b = middle
      for (let out = low; out < high; out++) {
        const k = b >= high || (a < middle && fromNos[a]! <= fromNos[b]!) ? a++ : b++
        toNos[out] = fromNos[k]!
        toStatuses[out] = fromStatuses[k]!
      }
    }
    ;[fromNos, fromStatuses, toNos, toStatuses] = [toNos, toStatuses, fromNos, fromStatuses]
    starts = merged
  }
  return { seatNos: fromNos, statuses: fromStatuses }
}

/**
 * One option's seats packed by MySQL into one row: how many, "1A2H3S…", and the first live hold's
 * end. Unordered: MySQL's sort of the group cost it more than the whole scan (3.6-4.6 against
 * 1.7-2.3 ms of mysqld CPU for 5,000 seats). Rows come in the order of the index that holds every
 * column read here (seats_detail_map: option, status, seat, hold end), one run of seat numbers per
 * status, which unpackSeats merges.
 */
export function seatMapQuery(db: Kysely<Database>, concertDetailId: number) {
  return db
    .selectFrom('seats')
    .select([
      sql<number | string>`COUNT(*)`.as('count'),
      sql<string | null>`GROUP_CONCAT(seats.seat_no, LEFT(${seatStatusNow}, 1) SEPARATOR '')`.as('packed'),
      sql<Date | null>`MIN(CASE WHEN ${holdIsLive} THEN seats.held_until END)`.as('lapsesAt'),
    ])
    .where('concert_detail_id', '=', concertDetailId)
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

    /**
     * Every seat of one dated option in seat order, and when its first live hold lapses; undefined
     * when the option does not exist. MySQL packs the seats into one string ("1A2H3S…": number,
     * then the status's initial), which is read into two typed arrays: a large hall as thousands
     * of row objects cost the event loop more to parse, and the collector more to sweep, than
     * everything else its map needs.
     */
    async seatMap(concertDetailId: number): Promise<Timed<SeatList> | undefined> {
      const row = await seatMapQuery(db, concertDetailId).executeTakeFirstOrThrow()
      const count = Number(row.count)
      if (count === 0 && !(await this.detailExists(concertDetailId))) return undefined
      return { value: unpackSeats(row.packed ?? '', count), nextLapseAt: earliest([row.lapsesAt]) }
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
