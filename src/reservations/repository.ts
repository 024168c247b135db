import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import { AppError } from '../plugins/errors.js'
import { inTransaction } from '../db/transaction.js'
import { currentPoint } from '../points/repository.js'
import type { Hold, Payment, SeatRef } from './schemas.js'
import { holdHasLapsed, holdIsLive, seatIsFree } from './seat-state.js'


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
     * held or sold to at most one user). Holding a seat you already hold answers that hold.
     */
    async hold(ref: SeatRef, holdMs: number): Promise<Hold> {
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

        // The seat row is ours now; it still points at its previous hold, if any, which lapsed.
        // Expiring that reservation by primary key locks that one row only: a search by seat would
        // take gap locks that deadlock with every concurrent hold's insert.
        const seat = await seatOf(trx, ref).select(['id', 'held_until', 'reservation_id']).executeTakeFirstOrThrow()
        if (seat.reservation_id) {
          await trx.updateTable('reservations').set({ status: 'EXPIRED' }).where('id', '=', seat.reservation_id).where('status', '=', 'HELD').execute()
        }
        const { price } = await trx.selectFrom('concert_details').select('price').where('id', '=', ref.concertDetailId).executeTakeFirstOrThrow()
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

    /**
     * Frees seats whose hold lapsed and marks their reservations EXPIRED. Holds already count as
     * free once expired (reads and the hold UPDATE check held_until), so this only tidies rows.
     */
    async sweepExpiredHolds(limit = 1000): Promise<number> {
      // One transaction, reservations first: a reservation is never seen EXPIRED while its seat
      // still points at it, and the seat frees whatever state its reservation was left in.
      const result = await inTransaction(db, async (trx) => {
        await trx
          .updateTable('reservations')
          .set({ status: 'EXPIRED' })
          .where('status', '=', 'HELD')
          .where(sql<boolean>`held_until <= NOW(3)`)
          .limit(limit)
          .execute()
        return sql`
          UPDATE seats JOIN reservations r ON r.id = seats.reservation_id
          SET seats.status = 'AVAILABLE', seats.user_id = NULL, seats.reservation_id = NULL, seats.held_until = NULL,
              r.status = IF(r.status = 'HELD', 'EXPIRED', r.status)
          WHERE ${holdHasLapsed}`.execute(trx)
      })
      return Number(result.numAffectedRows ?? 0n)
    },
  }
}

