import Fastify from 'fastify'
import { serveReference } from './serve.js'

// The ceiling: bare Fastify answering a constant JSON object, with nothing behind it.
await serveReference('hello', async () => {
  const app = Fastify({ logger: false })
  app.get('/', async () => ({ hello: 'world' }))
  return app
})
