import t from 'tap'
import { buildTestApp, listen } from './helpers/app.js'
import { rawConnection, rawResponses, send } from './helpers/http.js'
import { isErrorResponse } from './helpers/error-shape.js'
import { waitFor } from './helpers/wait.js'

t.test('ids in paths are plain decimal integers: anything Ajv would coerce is 400', async (t) => {
  const { app } = await buildTestApp(t)
  const base = await listen(app)
  for (const path of ['/point/0x10', '/point/1e2', '/point/%205', '/point/+5', '/point/5.0', '/concerts/0x1', '/concert/1e0']) {
    const res = await send(base, 'GET', path, { identity: 5 })
    t.equal(res.status, 400, `${path}: 400`)
    t.ok(isErrorResponse(400, res.body) && res.body.code === 'VALIDATION_FAILED', `${path}: in the error shape`)
  }
  t.equal((await send(base, 'GET', '/point/5')).status, 200, '/point/5 still answers')
})

t.test("what Node's HTTP parser refuses is answered in the error shape, with a code", async (t) => {
  const { app } = await buildTestApp(t)
  const base = await listen(app)

  const huge = await send(base, 'GET', '/concerts/1', { headers: { 'x-padding': 'x'.repeat(20_000) } })
  t.equal(huge.status, 431, 'a 20 KB header: 431')
  t.ok(isErrorResponse(431, huge.body) && huge.body.code === 'HEADERS_TOO_LARGE', 'in the error shape, HEADERS_TOO_LARGE')

  for (const [what, request] of [
    ['an x-request-id with a control byte', 'GET /concerts/1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\u0001b\r\n\r\n'],
    ['a malformed request line', 'GET /concerts/1 HTTP/9.Z\r\nHost: x\r\n\r\n'],
    ['a header without a colon', 'GET /concerts/1 HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n'],
  ]) {
    const connection = rawConnection(base)
    connection.write(request!)
    const [res, ...more] = rawResponses(await connection.closed)
    t.equal(res?.status, 400, `${what}: 400`)
    t.ok(isErrorResponse(400, res?.body) && res?.body.code === 'MALFORMED_REQUEST', `${what}: in the error shape, MALFORMED_REQUEST`)
    t.equal(more.length, 0, `${what}: then the connection closes`)
  }
})

t.test('a request on a kept-alive connection during the drain gets 503 SHUTTING_DOWN in the error shape', async (t) => {
  const { app } = await buildTestApp(t)
  const base = await listen(app)
  const connection = rawConnection(base)
  // A first request whose body is still on its way keeps the connection busy, so the drain does
  // not close it as idle; the second, pipelined behind it, arrives once the drain has begun.
  const body = '{"userId":"x","charge":1}'
  const arrived = new Promise((done) => app.server.once('request', done))
  connection.write(`PATCH /point HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`)
  await arrived
  const closing = app.close()
  await waitFor('the server to stop listening', () => !app.server.listening)
  connection.write(`${body.slice(5)}GET /concerts/1 HTTP/1.1\r\nHost: x\r\n\r\n`)
  const [first, second] = rawResponses(await connection.closed)
  await closing
  t.equal(first?.status, 400, 'the request already in flight is answered')
  t.equal(second?.status, 503, 'the next one on that connection: 503')
  t.ok(isErrorResponse(503, second?.body) && second?.body.code === 'SHUTTING_DOWN', 'in the error shape, SHUTTING_DOWN')
})
