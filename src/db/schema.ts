import type { ColumnType, Generated } from 'kysely'

type CreatedAt = ColumnType<Date, Date | undefined, never>

export type SeatStatus = 'AVAILABLE' | 'HELD' | 'SOLD'
export type ReservationStatus = 'HELD' | 'CONFIRMED' | 'EXPIRED'
export type PointHistoryKind = 'CHARGE' | 'PAYMENT'

export interface UserTable {
  id: Generated<number>
  name: string
  point: number
  /** Balance at seeding: the ledger check is point = starting_point + SUM(point_history.amount). */
  starting_point: number
  created_at: CreatedAt
}

export interface PointHistoryTable {
  id: Generated<number>
  user_id: number
  kind: PointHistoryKind
  /** Signed change: positive for a charge, negative for a payment. */
  amount: number
  balance_after: number
  reservation_id: number | null
  created_at: CreatedAt
}

export interface ConcertTable {
  id: Generated<number>
  title: string
  artist: string
  venue: string
  /** Before it, joins wait in the concert's pre-queue; nobody is admitted. */
  sale_opens_at: ColumnType<Date, Date | undefined, Date>
  created_at: CreatedAt
}

export interface ConcertDetailTable {
  id: Generated<number>
  concert_id: number
  starts_at: Date
  price: number
  total_seats: number
}

export interface SeatTable {
  id: Generated<number>
  concert_detail_id: number
  seat_no: number
  status: SeatStatus
  user_id: number | null
  reservation_id: number | null
  held_until: Date | null
}

export interface ReservationTable {
  id: Generated<number>
  user_id: number
  concert_detail_id: number
  seat_no: number
  price: number
  status: ReservationStatus
  held_until: Date
  created_at: CreatedAt
  confirmed_at: Date | null
}

export interface PaymentTable {
  id: Generated<number>
  reservation_id: number
  user_id: number
  amount: number
  created_at: CreatedAt
}

export interface IdempotencyKeyTable {
  scope: string
  idem_key: string
  request_hash: string
  status_code: number
  response: string
  created_at: CreatedAt
}

export interface Database {
  users: UserTable
  point_history: PointHistoryTable
  concerts: ConcertTable
  concert_details: ConcertDetailTable
  seats: SeatTable
  reservations: ReservationTable
  payments: PaymentTable
  idempotency_keys: IdempotencyKeyTable
}
