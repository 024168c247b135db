import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

/** OpenAPI generated from the route schemas; registered before the routes so it sees them all. */
export default fp(
  async function docs(app) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'seatrush',
          description: 'Concert-ticket reservation API: points, concerts, a waiting queue, seat holds and payment.',
          version: '0.1.0',
        },
        components: {
          securitySchemes: {
            queueToken: {
              type: 'http',
              scheme: 'bearer',
              description: 'The token from POST /concert/wait (a bare token is accepted too)',
            },
            adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN, for the /admin routes' },
          },
        },
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    })
    await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } })
  },
  { name: 'docs' },
)
