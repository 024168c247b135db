/**
 * A piscina thread that builds whole seat maps: it runs the seat-map query on its own small
 * MySQL pool and serializes the rows with the route's response schemas, so only the finished
 * bytes cross back to the event loop (typed arrays: copied as bytes, no objects rebuilt).
 */
import { Piscina } from 'piscina'
import { createConcertRepository } from './repository.js'
import { encodeSeatMap, type EncodedSeatMap } from './encoded.js'
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
/** Both views of one dated option's seat map, serialized; null when the option does not exist. */
export default async function buildSeatMap({ concertDetailId }: SeatMapTask): Promise<EncodedSeatMap | null> {
  let seats
  try {
    seats = await concerts.seatMap(concertDetailId)
  } catch (error) {
    // Only message, stack and cause survive the trip to the event loop: the cause carries what
    // the error handler needs to answer a MySQL outage with 503 rather than 500.
    const { code, fatal } = error as { code?: unknown; fatal?: unknown }
    throw new Error((error as Error).message, { cause: { code, fatal } })
  }
  return seats ? encodeSeatMap(concertDetailId, seats) : null
}
