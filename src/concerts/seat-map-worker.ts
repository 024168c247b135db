/**
 * A piscina thread that builds whole seat maps: it runs the seat-map query on its own small
 * MySQL pool and serializes the rows with the route's response schema, so only the finished
 * JSON bytes cross back to the event loop (moved, not cloned).
 */
import { Piscina } from 'piscina'
import fastJsonStringify, { type Schema } from 'fast-json-stringify'
import { createConcertRepository } from './repository.js'
import { SeatView, seatsSchema } from './schemas.js'
import { createDb } from '../db/connection.js'

export interface SeatMapWorkerData {
  mysqlUrl: string
  /** MySQL connections of each thread. */
  connections: number
}

export interface SeatMapTask {
  concertDetailId: number
}

const { mysqlUrl, connections } = Piscina.workerData as SeatMapWorkerData
const concerts = createConcertRepository(createDb(mysqlUrl, connections))
// Compiled as Fastify compiles the route's 200 schema, so both paths answer the same bytes.
const stringifySeatMap = fastJsonStringify(seatsSchema.response[200], { schema: { SeatView: SeatView as Schema } })

/** The seat map of one dated option as UTF-8 JSON (a Uint8Array on arrival); null when the option does not exist. */
export default async function buildSeatMap({ concertDetailId }: SeatMapTask) {
  let seats
  try {
    seats = await concerts.seats(concertDetailId)
  } catch (error) {
    // Only message, stack and cause survive the trip to the event loop: the cause carries what
    // the error handler needs to answer a MySQL outage with 503 rather than 500.
    const { code, fatal } = error as { code?: unknown; fatal?: unknown }
    throw new Error((error as Error).message, { cause: { code, fatal } })
  }
  if (!seats) return null
  // TextEncoder gives the bytes an ArrayBuffer of their own, which can be transferred whole.
  return Piscina.move(new TextEncoder().encode(stringifySeatMap(seats)))
}
