// A smaller body fits one packet with its headers anyway, and gzip barely shrinks it (the
// 154 bytes of a 50-seat ?view=available become 133).
export const GZIP_MIN_BYTES = 1024

/**
 * Whether a request's Accept-Encoding lets a body be sent gzipped, and ranks gzip at least as
 * high as identity (RFC 9110, section 12.5.3): codings compare case-insensitively, x-gzip is
 * gzip, `*` stands for every coding the header does not name, and q=0 refuses. No header at all
 * gets identity, which every client reads.
 *
 * Written here rather than taken from @fastify/accept-negotiator, which compares case-sensitively
 * and lets `*` override an explicit `gzip;q=0`.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false
  // Clients send a handful of distinct headers, each on every poll: each is parsed once.
  let accepts = parsed.get(acceptEncoding)
  if (accepts === undefined) {
    if (parsed.size >= PARSED_MAX) parsed.clear()
    parsed.set(acceptEncoding, (accepts = parseAcceptsGzip(acceptEncoding)))
  }
  return accepts
}

const PARSED_MAX = 256
const parsed = new Map<string, boolean>()

function parseAcceptsGzip(acceptEncoding: string): boolean {
  const weights = new Map<string, number>()
  for (const member of acceptEncoding.split(',')) {
    const [coding = '', ...params] = member.split(';').map((part) => part.trim().toLowerCase())
    const q = params.find((param) => param.startsWith('q='))
    const weight = q === undefined ? 1 : Number(q.slice(2))
    // A member with a malformed weight is ignored rather than guessed at.
    if (coding && weight >= 0 && weight <= 1) weights.set(coding === 'x-gzip' ? 'gzip' : coding, weight)
  }
  const weightOf = (coding: string, unnamed: number) => weights.get(coding) ?? weights.get('*') ?? unnamed
  const gzip = weightOf('gzip', 0)
  return gzip > 0 && gzip >= weightOf('identity', 1)
}
