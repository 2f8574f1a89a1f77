/**
 * Request body validation with JSON Schema (ajv): unknown fields are rejected and the first
 * problem is reported with the field it concerns.
 */
import { Ajv, type ErrorObject, type JSONSchemaType, type ValidateFunction } from 'ajv'
import { badRequest } from './errors.js'

const ajv = new Ajv({ allErrors: false, strict: true })

export function compile<T>(schema: JSONSchemaType<T> | object): ValidateFunction<T> {
  return ajv.compile<T>(schema)
}

function describe(e: ErrorObject): { field: string; message: string } {
  const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.')
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty
    const field = path ? `${path}.${extra}` : extra
    return { field, message: `unknown field "${field}"` }
  }
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty
    const field = path ? `${path}.${missing}` : missing
    return { field, message: `missing required field "${field}"` }
  }
  const field = path || '(body)'
  return { field, message: `field "${field}" ${e.message ?? 'is invalid'}` }
}

/** Returns the body typed, or throws a 400 naming the field. */
export function check<T>(validate: ValidateFunction<T>, body: unknown): T {
  if (validate(body)) return body
  const d = describe(validate.errors![0])
  throw badRequest(d.message, d.field)
}

/** Names of objects: like Docker's, and safe as file and interface name parts. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'
/** Linux interface names: at most 15 bytes, no '/', no spaces. */
export const IFNAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$'
