import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import { AppError } from '../plugins/errors.js'
import { inTransaction } from '../db/transaction.js'
import { currentPoint } from '../points/repository.js'
import type { Hold, Payment, SeatRef } from './schemas.js'
import { holdHasLapsed, holdIsLive, reservationIsLiveHold, seatIsFree } from './seat-state.js'

/** Seats whose hold lapsed, oldest first, read through the seats_status_held_until index. */
export const lapsedHolds = (db: Kysely<Database>, limit: number) =>
  db.selectFrom('seats').select('id').where(holdHasLapsed).orderBy('held_until').limit(limit)

export interface HoldRules {
  holdMs: number
  /** Live holds a user may have per concert (MAX_HOLDS_PER_USER). */
  maxHolds: number
  /** How long a user waits to hold again a seat whose hold of theirs lapsed (HOLD_COOLDOWN_MS). */
  cooldownMs: number
}

const seatNotFound = (ref: SeatRef) =>
  new AppError(404, 'SEAT_NOT_FOUND', `Seat ${ref.seatNo} of concert detail ${ref.concertDetailId} does not exist`)

export function createReservationRepository(db: Kysely<Database>) {
  const seatOf = (trx: Transaction<Database> | Kysely<Database>, ref: SeatRef) =>
    trx
      .selectFrom('seats')
      .where('concert_detail_id', '=', ref.concertDetailId)
      .where('seat_no', '=', ref.seatNo)

  const holdOf = async (trx: Transaction<Database> | Kysely<Database>, reservationId: number): Promise<Hold> => {
    const row = await trx
      .selectFrom('reservations')
      .select(['id', 'concert_detail_id', 'seat_no', 'held_until', 'price'])
      .where('id', '=', reservationId)
      .executeTakeFirstOrThrow()
    return { reservationId: row.id, concertDetailId: row.concert_detail_id, seatNo: row.seat_no, heldUntil: row.held_until.toISOString(), price: row.price }
  }

  return {
    /**
     * Holds a seat for `holdMs`. Atomic: one conditional UPDATE claims the row only if it is free
     * or its hold has expired, so of any number of concurrent callers exactly one wins (a seat is
     * held or sold to at most one user). Holding a seat you already hold answers that hold. A
     * claim that breaks the hold limit or the cooldown is rolled back with the transaction.
     */
    async hold(ref: SeatRef, rules: HoldRules): Promise<Hold> {
      const { holdMs } = rules
      const claimed = await inTransaction(db, async (trx) => {
        const claim = await trx
          .updateTable('seats')
          .set({
            status: 'HELD',
            user_id: ref.userId,
            held_until: sql<Date>`NOW(3) + INTERVAL ${holdMs * 1000} MICROSECOND`,
          })
          .where('concert_detail_id', '=', ref.concertDetailId)
          .where('seat_no', '=', ref.seatNo)
          .where(seatIsFree)
          .executeTakeFirst()
        if (claim.numUpdatedRows === 0n) return undefined
        const detail = await assertMayHold(trx, ref, rules)

        // The seat row is ours now; it still points at its previous hold, if any, which lapsed.
        // Expiring that reservation by primary key locks that one row only: a search by seat would
        // take gap locks that deadlock with every concurrent hold's insert.
        const seat = await seatOf(trx, ref).select(['id', 'held_until', 'reservation_id']).executeTakeFirstOrThrow()
        if (seat.reservation_id) {
          await trx.updateTable('reservations').set({ status: 'EXPIRED' }).where('id', '=', seat.reservation_id).where('status', '=', 'HELD').execute()
        }
        const { price } = detail
        const inserted = await trx
          .insertInto('reservations')
          .values({
            user_id: ref.userId,
            concert_detail_id: ref.concertDetailId,
            seat_no: ref.seatNo,
            price,
            status: 'HELD',
            held_until: seat.held_until!,
            confirmed_at: null,
          })
          .executeTakeFirstOrThrow()
        const reservationId = Number(inserted.insertId)
        await trx.updateTable('seats').set({ reservation_id: reservationId }).where('id', '=', seat.id).execute()
        return holdOf(trx, reservationId)
      })
      if (claimed) return claimed

      const seat = await seatOf(db, ref)
        .select(['status', 'user_id', 'reservation_id', holdIsLive.as('live')])
        .executeTakeFirst()
      if (!seat) throw seatNotFound(ref)
      if (Number(seat.live) === 1 && seat.user_id === ref.userId && seat.reservation_id) {
        return holdOf(db, seat.reservation_id)
      }
      throw new AppError(409, 'SEAT_TAKEN', `Seat ${ref.seatNo} is already ${seat.status === 'SOLD' ? 'sold' : 'held'}`)
    },

    /**
     * Pays for a held seat; must run inside the caller's transaction. All-or-nothing: the seat
     * row is locked first, then the balance is debited by a conditional UPDATE that cannot go
     * below zero, then seat SOLD, reservation CONFIRMED, payment and history rows, one commit.
     */
    async pay(trx: Transaction<Database>, ref: SeatRef): Promise<Payment> {
      const seat = await seatOf(trx, ref)
        .select(['id', 'status', 'user_id', 'reservation_id', holdIsLive.as('live')])
        .forUpdate()
        .executeTakeFirst()
      if (!seat) throw seatNotFound(ref)
      if (seat.status !== 'HELD' || seat.user_id !== ref.userId || !seat.reservation_id) {
        throw new AppError(409, 'HOLD_NOT_FOUND', `You do not hold seat ${ref.seatNo}; hold it with PATCH /concert/seat first`)
      }
      if (Number(seat.live) !== 1) {
        throw new AppError(409, 'HOLD_EXPIRED', `Your hold on seat ${ref.seatNo} has expired`)
      }
      const reservation = await trx
        .selectFrom('reservations')
        .select(['id', 'price'])
        .where('id', '=', seat.reservation_id)
        .forUpdate()
        .executeTakeFirstOrThrow()
      const amount = reservation.price

      const debit = await trx
        .updateTable('users')
        .set({ point: sql`point - ${amount}` })
        .where('id', '=', ref.userId)
        .where('point', '>=', amount)
        .executeTakeFirst()
      if (debit.numUpdatedRows === 0n) {
        throw new AppError(402, 'INSUFFICIENT_POINTS', `Paying needs ${amount} points; charge more with PATCH /point`)
      }
      await trx.updateTable('seats').set({ status: 'SOLD', held_until: null }).where('id', '=', seat.id).execute()
      await trx
        .updateTable('reservations')
        .set({ status: 'CONFIRMED', confirmed_at: sql<Date>`NOW(3)` })
        .where('id', '=', reservation.id)
        .execute()
      const payment = await trx
        .insertInto('payments')
        .values({ reservation_id: reservation.id, user_id: ref.userId, amount })
        .executeTakeFirstOrThrow()
      const point = await currentPoint(trx, ref.userId)
      await trx
        .insertInto('point_history')
        .values({ user_id: ref.userId, kind: 'PAYMENT', amount: -amount, balance_after: point, reservation_id: reservation.id })
        .execute()
      return { reservationId: reservation.id, paymentId: Number(payment.insertId), amount, point }
    },

    /** How many live holds the user has in the concert: its queue slot is kept while any is left. */
    async liveHolds(userId: number, concertId: number): Promise<number> {
      const row = await db
        .selectFrom('reservations')
        .innerJoin('concert_details', 'concert_details.id', 'reservations.concert_detail_id')
        .select((eb) => eb.fn.countAll<number>().as('holds'))
        .where('reservations.user_id', '=', userId)
        .where('concert_details.concert_id', '=', concertId)
        .where(reservationIsLiveHold)
        .executeTakeFirstOrThrow()
      return Number(row.holds)
    },

    /**
     * Frees seats whose hold lapsed and marks their reservations EXPIRED, at most `limit` per call
     * in batches of `batchSize`. Holds already count as free once expired (reads and the hold
     * UPDATE check held_until), so this only tidies rows. Its work grows with the lapsed holds,
     * not with the hall: they are found through the seats_status_held_until index.
     */
    async sweepExpiredHolds(limit = 5000, batchSize = 500): Promise<number> {
      let freed = 0
      while (freed < limit) {
        // A plain read takes no locks; each batch then locks its own seats by primary key only,
        // so a hold on any other seat never waits for the sweeper.
        const ids = (await lapsedHolds(db, Math.min(batchSize, limit - freed)).execute()).map((row) => row.id)
        if (ids.length === 0) break
        const batchFreed = await inTransaction(db, async (trx) => {
          // Locked by primary key alone (a range on another index would lock its gaps too) and
          // re-checked under the lock: a seat retaken since the read is live again and stays. A
          // seat locked by a hold or another sweep is skipped, never waited for.
          const locked = await trx
            .selectFrom('seats')
            .select(['id', 'reservation_id', holdHasLapsed.as('lapsed')])
            .where('id', 'in', ids)
            .forUpdate()
            .skipLocked()
            .execute()
          const seats = locked.filter((seat) => Number(seat.lapsed) === 1)
          if (seats.length === 0) return 0
          // One transaction, both rows: a seat never stays HELD pointing at an EXPIRED reservation.
          const reservationIds = seats.flatMap((seat) => (seat.reservation_id ? [seat.reservation_id] : []))
          if (reservationIds.length > 0) {
            await trx
              .updateTable('reservations')
              .set({ status: sql`IF(status = 'HELD', 'EXPIRED', status)` })
              .where('id', 'in', reservationIds)
              .execute()
          }
          await trx
            .updateTable('seats')
            .set({ status: 'AVAILABLE', user_id: null, reservation_id: null, held_until: null })
            .where('id', 'in', seats.map((seat) => seat.id))
            .execute()
          return seats.length
        })
        freed += batchFreed
        // A batch all locked elsewhere is left to the next call rather than read again at once.
        if (ids.length < batchSize || batchFreed === 0) break
      }
      return freed
    },
  }
}

/**
 * Refuses a hold past the user's MAX_HOLDS_PER_USER live holds in the concert, or of a seat
 * whose hold of theirs lapsed less than HOLD_COOLDOWN_MS ago; answers the seat's concert detail.
 * Atomic (invariant: a user holds at most MAX_HOLDS_PER_USER live seats per concert): the user's
 * row lock serializes their holds, and the count is this transaction's first consistent read, so
 * its snapshot is taken after the lock and sees every hold of theirs committed before.
 */
async function assertMayHold(trx: Transaction<Database>, ref: SeatRef, rules: HoldRules): Promise<{ price: number; concertId: number }> {
  await trx.selectFrom('users').select('id').where('id', '=', ref.userId).forUpdate().executeTakeFirst()
  const detail = await trx
    .selectFrom('concert_details')
    .select(['price', 'concert_id as concertId'])
    .where('id', '=', ref.concertDetailId)
    .executeTakeFirstOrThrow()
  const { holds } = await trx
    .selectFrom('reservations')
    .innerJoin('concert_details', 'concert_details.id', 'reservations.concert_detail_id')
    .select((eb) => eb.fn.countAll<number>().as('holds'))
    .where('reservations.user_id', '=', ref.userId)
    .where('concert_details.concert_id', '=', detail.concertId)
    .where(reservationIsLiveHold)
    .executeTakeFirstOrThrow()
  if (Number(holds) >= rules.maxHolds) {
    throw new AppError(409, 'HOLD_LIMIT_REACHED', `You already hold ${rules.maxHolds} seats of this concert; pay for one or let one go first`)
  }
  if (rules.cooldownMs > 0) {
    // The claim succeeded, so any earlier hold of this seat has lapsed; it counts if it was theirs.
    const lapsed = await trx
      .selectFrom('reservations')
      .select(sql<number>`TIMESTAMPDIFF(MICROSECOND, NOW(3), held_until + INTERVAL ${rules.cooldownMs * 1000} MICROSECOND)`.as('waitUs'))
      .where('user_id', '=', ref.userId)
      .where('concert_detail_id', '=', ref.concertDetailId)
      .where('seat_no', '=', ref.seatNo)
      .where('status', 'in', ['HELD', 'EXPIRED'])
      .where(sql<boolean>`held_until > NOW(3) - INTERVAL ${rules.cooldownMs * 1000} MICROSECOND`)
      .orderBy('held_until', 'desc')
      .limit(1)
      .executeTakeFirst()
    if (lapsed) {
      const seconds = Math.max(1, Math.ceil(Number(lapsed.waitUs) / 1_000_000))
      throw new AppError(409, 'HOLD_COOLDOWN', `Your hold on seat ${ref.seatNo} lapsed just now; you may hold it again in ${seconds} s`)
    }
  }
  return detail
}
