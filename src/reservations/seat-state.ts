import { sql } from 'kysely'
import type { SeatStatus } from '../db/schema.js'

/*
 * Invariant: a seat is held or sold to at most one user, and a hold lasts until its held_until.
 * Whether a seat is free and whether a hold is live is decided by these conditions alone, on the
 * database clock (NOW(3), the one clock every worker and host shares): the seat reads, the hold,
 * the payment and the sweeper all import them. A hold past its held_until is free at once, before
 * the sweeper tidies its row. They name the `seats` table, so queries use it unaliased.
 */

/** The seat is held and the hold has lapsed: free to take, waiting for the sweeper. */
export const holdHasLapsed = sql<boolean>`(seats.status = 'HELD' AND seats.held_until <= NOW(3))`

/** The seat is held and the hold still runs. */
export const holdIsLive = sql<boolean>`(seats.status = 'HELD' AND seats.held_until > NOW(3))`

/** Nobody holds or owns the seat: never taken, or its hold lapsed. */
export const seatIsFree = sql<boolean>`(seats.status = 'AVAILABLE' OR ${holdHasLapsed})`

/** The status a client is shown: a lapsed hold is AVAILABLE. */
export const seatStatusNow = sql<SeatStatus>`CASE WHEN ${holdHasLapsed} THEN 'AVAILABLE' ELSE seats.status END`

/** A reservation that still holds its seat: the hold-limit count and the slot release use it. */
export const reservationIsLiveHold = sql<boolean>`(reservations.status = 'HELD' AND reservations.held_until > NOW(3))`
