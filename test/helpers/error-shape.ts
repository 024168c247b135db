import { STATUS_CODES } from 'node:http'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ErrorResponse } from '../../src/plugins/errors.js'

// The app's own schema of the one error shape; src leaves additionalProperties open, but a field
// beside the schema's is a leak, so here it is closed.
const errorResponse = TypeCompiler.Compile({ ...ErrorResponse, additionalProperties: false })

/**
 * The one error shape: the app's ErrorResponse schema with nothing beside its fields, statusCode
 * the response's status and error that status's name.
 */
export function isErrorResponse(status: number, body: unknown): boolean {
  return errorResponse.Check(body) && body.statusCode === status && body.error === STATUS_CODES[status]
}
