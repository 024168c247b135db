import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database } from '../db/schema.js'
import { AppError } from '../plugins/errors.js'
import type { PointBalance } from './schemas.js'

type Db = Kysely<Database> | Transaction<Database>

export function createPointRepository(db: Kysely<Database>) {
  return {
    async balance(userId: number): Promise<PointBalance | undefined> {
      const row = await db.selectFrom('users').select(['id', 'point']).where('id', '=', userId).executeTakeFirst()
      return row && { userId: row.id, point: Number(row.point) }
    },

    exists: (userId: number) => userExists(db, userId),

    /**
     * Adds `amount` and writes its history row; must run inside the caller's transaction.
     * Atomic: the conditional UPDATE both checks the balance cap and applies the change under
     * the row lock, so concurrent charges add up exactly (ledger invariant).
     */
    async charge(trx: Transaction<Database>, userId: number, amount: number, maxBalance: number): Promise<PointBalance> {
      const result = await trx
        .updateTable('users')
        .set({ point: sql`point + ${amount}` })
        .where('id', '=', userId)
        .where(sql<boolean>`point + ${amount} <= ${maxBalance}`)
        .executeTakeFirst()
      if (result.numUpdatedRows === 0n) {
        if (!(await userExists(trx, userId))) throw new AppError(404, 'USER_NOT_FOUND', `User ${userId} not found`)
        throw new AppError(409, 'BALANCE_LIMIT_EXCEEDED', `A balance may not exceed ${maxBalance} points`)
      }
      const point = await currentPoint(trx, userId)
      await trx.insertInto('point_history').values({ user_id: userId, kind: 'CHARGE', amount, balance_after: point, reservation_id: null }).execute()
      return { userId, point }
    },
  }
}

async function userExists(db: Db, userId: number): Promise<boolean> {
  return !!(await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst())
}

export async function currentPoint(db: Db, userId: number): Promise<number> {
  const row = await db.selectFrom('users').select('point').where('id', '=', userId).executeTakeFirstOrThrow()
  return Number(row.point)
}

