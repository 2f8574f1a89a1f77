/**
 * Errors the API answers with: an HTTP status, a stable machine-readable code, a message
 * that says what to fix, and the offending field where there is one.
 *
 *   throw new ApiError(404, 'NOT_FOUND', 'no network named "blue"')
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message)
  }

  toJSON() {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } }
  }
}

export const badRequest = (message: string, field?: string) => new ApiError(400, 'INVALID_ARGUMENT', message, field)
export const notFound = (message: string) => new ApiError(404, 'NOT_FOUND', message)
export const conflict = (code: string, message: string) => new ApiError(409, code, message)
