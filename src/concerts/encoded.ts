/**
 * Response bodies serialized once and sent many times: the bytes with a strong ETag taken from
 * them, so every worker and host that builds the same answer gives it the same ETag, and for
 * larger bodies a gzip copy made once.
 */
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import fastJsonStringify, { type Schema } from 'fast-json-stringify'
import { GZIP_MIN_BYTES } from './content-coding.js'
import { SEAT_STATUSES, type SeatList, type Timed } from './repository.js'
import { AvailableSeats, ConcertOption, ConcertOptions, SeatMap, SeatView, type ConcertOption as Option } from './schemas.js'

/** One representation of a body: its bytes and the strong ETag that names them. */
export interface EncodedBody {
  bytes: Uint8Array
  etag: string
}

/**
 * Both views of one seat map, and when the first live hold in it lapses (epoch ms). Each view is
 * serialized the first time it is read: a map rebuilt for every request (reads uncached) builds
 * only the view asked for.
 */
export interface EncodedSeatMap {
  readonly full: EncodedBody
  readonly available: EncodedBody
  nextLapseAt: number | null
}

const refs = { SeatView: SeatView as Schema, AvailableSeats: AvailableSeats as Schema, ConcertOption: ConcertOption as Schema }
// Compiled as Fastify compiles the routes' 200 schemas, so the cached bytes are what the route would send.
const stringifyOptions = fastJsonStringify(ConcertOptions, { schema: refs })
/** The seat-map schemas' own serializers: the byte writers below must match them (a test compares). */
export const schemaSerializers = {
  seatMap: fastJsonStringify(SeatMap, { schema: refs }) as (seats: SeatView[]) => string,
  available: fastJsonStringify(AvailableSeats, { schema: refs }) as (view: { concertDetailId: number; totalSeats: number; available: number[] }) => string,
}

function withEtag(bytes: Uint8Array): EncodedBody {
  return { bytes, etag: `"${createHash('sha1').update(bytes).digest('base64url')}"` }
}

function encode(json: string): EncodedBody {
  // TextEncoder gives the bytes an ArrayBuffer of their own, which crosses threads whole.
  return withEtag(new TextEncoder().encode(json))
}

// A large hall's map is thousands of small objects of one shape. Written byte by byte into one
// array sized beforehand, it needs no intermediate string: fast-json-stringify builds a string of
// ~10,000 pieces that must then be flattened and encoded, and most of a map's serialization time
// (and garbage) was there.
const ascii = (text: string) => Uint8Array.from(text, (char) => char.charCodeAt(0))
const SEAT_OPEN = ascii('{"seatNo":')
/** Indexed as SeatList's status codes. */
const STATUS_CLOSE = SEAT_STATUSES.map((status) => ascii(`,"status":"${status}"}`))
const AVAILABLE = SEAT_STATUSES.indexOf('AVAILABLE')
const COMMA = 0x2c

/** Decimal digits of a seat number (a SeatList holds unsigned 32-bit integers). */
function intLength(n: number): number {
  let length = 1
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) length++
  return length
}

/** Writes the unsigned integer `n` at `at`; answers the position after it. */
function writeInt(out: Uint8Array, at: number, n: number): number {
  const end = at + intLength(n)
  for (let i = end - 1; i >= at; i--) {
    out[i] = 0x30 + (n % 10)
    n = Math.floor(n / 10)
  }
  return end
}

function statusClose({ seatNos, statuses }: SeatList, i: number): Uint8Array {
  const close = STATUS_CLOSE[statuses[i]!]
  if (!close) throw new TypeError(`seat ${seatNos[i]} has no status the schema allows (code ${statuses[i]})`)
  return close
}

/** `[{"seatNo":1,"status":"AVAILABLE"},...]`, exactly as the SeatMap schema serializes it. */
function seatMapBytes(seats: SeatList): Uint8Array {
  const { seatNos } = seats
  let length = 2 + Math.max(0, seatNos.length - 1)
  for (let i = 0; i < seatNos.length; i++) length += SEAT_OPEN.length + intLength(seatNos[i]!) + statusClose(seats, i).length
  const out = new Uint8Array(length)
  out[0] = 0x5b
  let at = 1
  for (let i = 0; i < seatNos.length; i++) {
    if (i > 0) out[at++] = COMMA
    out.set(SEAT_OPEN, at)
    at = writeInt(out, at + SEAT_OPEN.length, seatNos[i]!)
    const close = statusClose(seats, i)
    out.set(close, at)
    at += close.length
  }
  out[at] = 0x5d
  return out
}

/** `{"concertDetailId":…,"totalSeats":…,"available":[…]}`, as the AvailableSeats schema serializes it. */
function availableBytes(concertDetailId: number, seats: SeatList): Uint8Array {
  const { seatNos, statuses } = seats
  const head = ascii(`{"concertDetailId":${concertDetailId},"totalSeats":${seatNos.length},"available":[`)
  let length = head.length + 2
  let free = 0
  for (let i = 0; i < seatNos.length; i++) {
    if (statusClose(seats, i) !== STATUS_CLOSE[AVAILABLE]) continue
    length += intLength(seatNos[i]!) + (free++ > 0 ? 1 : 0)
  }
  const out = new Uint8Array(length)
  out.set(head, 0)
  let at = head.length
  for (let i = 0, written = 0; i < seatNos.length; i++) {
    if (statuses[i] !== AVAILABLE) continue
    if (written++ > 0) out[at++] = COMMA
    at = writeInt(out, at, seatNos[i]!)
  }
  out[at++] = 0x5d
  out[at] = 0x7d
  return out
}

// Measured on a 5,000-seat full map (176 KB): level 1 gives 17.2 KB in 0.24 ms, level 6 14.6 KB
// in 0.57 ms. The copy is made once per version and sent to every poller of it, so 15% fewer
// bytes per answer are worth a third of a millisecond.
const GZIP_LEVEL = 6
const gzipCopies = new WeakMap<EncodedBody, EncodedBody | null>()

/**
 * The body's gzip copy, made on the first request that accepts it and kept as long as the body
 * is (once per version, not per request); undefined under GZIP_MIN_BYTES. Made on demand, not
 * with the bytes: a build that no client wants gzipped (a lab's load generator, a rebuild no one
 * polls) costs nothing more. Its ETag is the identity's with a suffix, so every worker and host
 * names the gzip copy of one body alike.
 */
export function gzipCopy(body: EncodedBody): EncodedBody | undefined {
  let copy = gzipCopies.get(body)
  if (copy === undefined) {
    copy =
      body.bytes.byteLength < GZIP_MIN_BYTES
        ? null
        : { bytes: gzipSync(body.bytes, { level: GZIP_LEVEL }), etag: body.etag.replace(/"$/, '-gzip"') }
    gzipCopies.set(body, copy)
  }
  return copy ?? undefined
}

export function encodeSeatMap(concertDetailId: number, { value: seats, nextLapseAt }: Timed<SeatList>): EncodedSeatMap {
  let full: EncodedBody | undefined
  let available: EncodedBody | undefined
  // The rows are let go once both views are built: a cached map then holds only its bytes.
  let rows: SeatList | undefined = seats
  const built = <T>(body: T): T => {
    if (full && available) rows = undefined
    return body
  }
  // Enumerable getters: a pool thread's answer is cloned through them, so it crosses with both views built.
  return {
    get full() {
      return full ?? built((full = withEtag(seatMapBytes(rows!))))
    },
    get available() {
      return available ?? built((available = withEtag(availableBytes(concertDetailId, rows!))))
    },
    nextLapseAt,
  }
}

export function encodeOptions(options: Option[]): EncodedBody {
  return encode(stringifyOptions(options))
}
