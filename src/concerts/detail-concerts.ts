import fp from 'fastify-plugin'
import { AppError } from '../plugins/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The concert a dated option belongs to; 404 CONCERT_DETAIL_NOT_FOUND when there is no such option. */
    concertOfDetail: (concertDetailId: number) => Promise<number>
  }
}

/**
 * Which concert's queue guards a dated option. A detail never moves to another concert, so a
 * found answer is kept for good (up to `MAX_ENTRIES` details); a missing one is asked again.
 */
const MAX_ENTRIES = 100_000

export default fp(
  async function detailConcerts(app) {
    const known = new Map<number, number>()
    app.decorate('concertOfDetail', async (concertDetailId: number) => {
      const cached = known.get(concertDetailId)
      if (cached !== undefined) return cached
      const row = await app.db.selectFrom('concert_details').select('concert_id').where('id', '=', concertDetailId).executeTakeFirst()
      if (!row) throw new AppError(404, 'CONCERT_DETAIL_NOT_FOUND', `Concert detail ${concertDetailId} not found`)
      if (known.size >= MAX_ENTRIES) known.delete(known.keys().next().value as number)
      known.set(concertDetailId, row.concert_id)
      return row.concert_id
    })
  },
  { name: 'detail-concerts', dependencies: ['db'] },
)
