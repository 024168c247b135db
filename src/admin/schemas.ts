import { Type, type Static } from '@sinclair/typebox'
import { Id, errorResponses } from '../shared/schemas.js'

const ConcertParams = Type.Object({ concertId: Id('Concert whose queue to read or change') })

// Bounds as for the deployment's defaults (MAX_ACTIVE, ADMIT_BATCH, ADMIT_INTERVAL_MS).
const MaxActive = Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Users of this concert allowed in at once' })
const AdmitBatch = Type.Integer({ minimum: 1, maximum: 100_000, description: 'Users admitted per tick' })
const AdmitInterval = Type.Integer({ minimum: 10, maximum: 600_000, description: 'Tick length in ms' })
const Paused = Type.Boolean({ description: 'Paused: nobody is admitted; joining and the already active keep working' })
// An ISO 8601 time with a zone, e.g. 2026-12-24T19:00:00Z.
const SaleOpensAt = Type.String({
  pattern: '^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])T([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d(\\.\\d{1,3})?)?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)$',
  description: 'When the sale opens (ISO 8601 with a zone); a time in the future re-opens the pre-queue',
})

const QueueChange = Type.Object(
  { paused: Type.Optional(Paused), maxActive: Type.Optional(MaxActive), admitBatch: Type.Optional(AdmitBatch), admitIntervalMs: Type.Optional(AdmitInterval), saleOpensAt: Type.Optional(SaleOpensAt) },
  { additionalProperties: false, minProperties: 1 },
)
export type QueueChange = Static<typeof QueueChange>

export const QueueReport = Type.Object(
  {
    concertId: Type.Integer(),
    waiting: Type.Integer({ description: 'Users in line' }),
    prequeue: Type.Integer({ description: 'Users who joined before the sale opened, not yet drawn into the line' }),
    active: Type.Integer({ description: 'Users admitted whose slot has not expired' }),
    admittedPerMinute: Type.Integer({ description: 'Users admitted in the last 60 s' }),
    settings: Type.Object({
      paused: Paused,
      maxActive: MaxActive,
      admitBatch: AdmitBatch,
      admitIntervalMs: AdmitInterval,
      saleOpensAt: Type.String({ format: 'date-time' }),
      open: Type.Boolean({ description: 'The sale has opened and the pre-queue was drawn' }),
    }),
  },
  { $id: 'QueueReport', title: 'QueueReport' },
)

const security = [{ adminToken: [] }]

export const readSchema = {
  tags: ['admin'],
  summary: "One concert's queue: counts, admission rate and the settings in force (ADMIN_TOKEN)",
  security,
  params: ConcertParams,
  response: { 200: Type.Ref('QueueReport'), ...errorResponses(400, 401, 404, 503) },
}

export const changeSchema = {
  tags: ['admin'],
  summary: "Pause, resize or re-time one concert's queue, live on every worker and host (ADMIN_TOKEN)",
  security,
  params: ConcertParams,
  body: QueueChange,
  response: { 200: Type.Ref('QueueReport'), ...errorResponses(400, 401, 404, 415, 503) },
}
