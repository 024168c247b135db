/**
 * Response bodies serialized once and sent many times: the bytes with a strong ETag taken from
 * them, so every worker and host that builds the same answer gives it the same ETag.
 */
import { createHash } from 'node:crypto'
import fastJsonStringify, { type Schema } from 'fast-json-stringify'
import type { Timed } from './repository.js'
import { AvailableSeats, ConcertOption, ConcertOptions, SeatMap, SeatView, type ConcertOption as Option } from './schemas.js'

export interface EncodedBody {
  bytes: Uint8Array
  etag: string
}

/** Both views of one seat map, and when the first live hold in it lapses (epoch ms). */
export interface EncodedSeatMap {
  full: EncodedBody
  available: EncodedBody
  nextLapseAt: number | null
}

const refs = { SeatView: SeatView as Schema, AvailableSeats: AvailableSeats as Schema, ConcertOption: ConcertOption as Schema }
// Compiled as Fastify compiles the routes' 200 schemas, so the cached bytes are what the route would send.
const stringifySeatMap = fastJsonStringify(SeatMap, { schema: refs })
const stringifyAvailable = fastJsonStringify(AvailableSeats, { schema: refs })
const stringifyOptions = fastJsonStringify(ConcertOptions, { schema: refs })

function encode(json: string): EncodedBody {
  // TextEncoder gives the bytes an ArrayBuffer of their own, which crosses threads whole.
  const bytes = new TextEncoder().encode(json)
  return { bytes, etag: `"${createHash('sha1').update(bytes).digest('base64url')}"` }
}

export function encodeSeatMap(concertDetailId: number, { value: seats, nextLapseAt }: Timed<SeatView[]>): EncodedSeatMap {
  const available = seats.filter((seat) => seat.status === 'AVAILABLE').map((seat) => seat.seatNo)
  return {
    full: encode(stringifySeatMap(seats)),
    available: encode(stringifyAvailable({ concertDetailId, totalSeats: seats.length, available })),
    nextLapseAt,
  }
}

export function encodeOptions(options: Option[]): EncodedBody {
  return encode(stringifyOptions(options))
}
