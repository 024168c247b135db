import { Type } from '@sinclair/typebox'

/** Largest id any table hands out (INT UNSIGNED would allow more; nothing seeds that far). */
export const MAX_ID = 2_147_483_647

export const Id = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_ID, description })

/** Jackson's polymorphic type tag that the report's clients send; accepted and ignored. */
export const ClassTag = Type.Optional(Type.String({ maxLength: 200, description: 'Client type tag, ignored' }))

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$', description: 'Makes a retry return the first answer' }),
  ),
})

const ErrorRef = Type.Ref('ErrorResponse')

/** The error responses a route can give, all of the one error shape. */
export function errorResponses(...codes: number[]) {
  return Object.fromEntries(codes.map((code) => [code, ErrorRef]))
}
