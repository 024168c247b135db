import type { Config } from '../../src/config.js'
import { createDb } from '../../src/db/connection.js'
import { prepareDatabase } from '../../src/db/prepare.js'
import { SEED_CONCERT_ID } from '../../src/db/seed.js'
import { HALL_CONCERT_ID, addHall, addHallConcert } from '../../test/helpers/halls.js'
import { range } from '../../test/helpers/lists.js'
import { identityToken } from '../../test/helpers/jwt.js'
import { activeTokens } from '../../test/helpers/queue.js'
import { dropStore } from '../../test/helpers/store.js'

export interface Hold {
  userId: number
  concertDetailId: number
  seatNo: number
}

/** What the generated requests draw their ids from: real users, real tokens, real seats. */
export interface Fixture {
  users: number
  /** tokens[userId]: that user's queue token for the seeded concert, filled in by `admitAll`. */
  tokens: string[]
  /** hallTokens[userId]: that user's queue token for the hall's concert (queue tokens are per concert). */
  hallTokens: string[]
  /** identities[userId]: that user's identity token, as the platform's login would issue it. */
  identities: string[]
  concertId: number
  concertDetailIds: number[]
  seatsPerDetail: number
  hall: { concertDetailId: number; seats: number }
  /** Hall seats nobody has tried to hold yet, in random order; once used up, holds pick at random. */
  freeSeats: Array<[concertDetailId: number, seatNo: number]>
  /** Users who hold nothing yet, in random order: each pays once, as in a real rush. */
  usersWithoutHold: number[]
}

export const randomInt = (max: number) => 1 + Math.floor(Math.random() * max)
export const randomUser = (fixture: Fixture) => randomInt(fixture.users)

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

/**
 * A fresh lab: the database dropped, migrated and seeded again, the large hall added, and no
 * Redis keys under the lab's prefix. Answers the ids the requests draw from (tokens come later).
 */
export async function resetLab(config: Config, hallSeats: number): Promise<Fixture> {
  const [hallDetailId] = (await resetHalls(config, [hallSeats])) as [number]
  const db = createDb(config.MYSQL_URL, 1)
  try {
    const details = await db.selectFrom('concert_details').select('id').where('concert_id', '=', SEED_CONCERT_ID).orderBy('id').execute()
    return {
      users: config.SEED_USERS,
      tokens: [],
      hallTokens: [],
      identities: range(0, config.SEED_USERS + 1).map((userId) => identityToken(userId)),
      concertId: SEED_CONCERT_ID,
      concertDetailIds: details.map((detail) => detail.id),
      seatsPerDetail: config.SEATS_PER_DETAIL,
      hall: { concertDetailId: hallDetailId, seats: hallSeats },
      freeSeats: shuffle(range(1, hallSeats).map((seatNo): [number, number] => [hallDetailId, seatNo])),
      usersWithoutHold: shuffle(range(1, config.SEED_USERS)),
    }
  } finally {
    await db.destroy()
  }
}

/**
 * The lab's store emptied, its database migrated and seeded again, and the large-hall concert
 * added with one dated option per size in `hallSizes`; answers those options' ids, in order.
 */
export async function resetHalls(config: Config, hallSizes: number[]): Promise<number[]> {
  await dropStore(config)
  await prepareDatabase(config)
  const db = createDb(config.MYSQL_URL, 1)
  try {
    await addHallConcert(db)
    const ids: number[] = []
    for (const seats of hallSizes) ids.push(await addHall(db, HALL_CONCERT_ID, seats, config.SEAT_PRICE))
    return ids
  } finally {
    await db.destroy()
  }
}

/**
 * Queues every user and waits until the queue has admitted them all, so protected calls can be
 * measured with real tokens. The server must run with MAX_ACTIVE and ADMIT_BATCH >= the users.
 * A shedding server's 503s are waited out (a fresh worker may shed while it warms up).
 */
export async function admitAll(url: string, fixture: Fixture, timeoutMs = 30_000): Promise<void> {
  const users = range(1, fixture.users)
  const deadline = Date.now() + timeoutMs
  const tokens = await activeTokens(url, users, { deadline })
  users.forEach((userId, index) => (fixture.tokens[userId] = tokens[index]!))
  const hallTokens = await activeTokens(url, users, { deadline, concertId: HALL_CONCERT_ID })
  users.forEach((userId, index) => (fixture.hallTokens[userId] = hallTokens[index]!))
}
