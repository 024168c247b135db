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
    // Concurrent first calls for one detail share one query; a failed or missing lookup is forgotten.
    const known = new Map<number, Promise<number>>()
    const lookup = async (concertDetailId: number) => {
      const row = await app.db.selectFrom('concert_details').select('concert_id').where('id', '=', concertDetailId).executeTakeFirst()
      if (!row) throw new AppError(404, 'CONCERT_DETAIL_NOT_FOUND', `Concert detail ${concertDetailId} not found`)
      return row.concert_id
    }
    app.decorate('concertOfDetail', (concertDetailId: number) => {
      const cached = known.get(concertDetailId)
      if (cached) return cached
      if (known.size >= MAX_ENTRIES) known.delete(known.keys().next().value as number)
      const pending = lookup(concertDetailId)
      pending.catch(() => known.get(concertDetailId) === pending && known.delete(concertDetailId))
      known.set(concertDetailId, pending)
      return pending
    })
  },
  { name: 'detail-concerts', dependencies: ['db'] },
)
