/**
 * Errors of the control plane, by kind (which the API maps to 400/404/409) and a stable code.
 *
 *   throw new ControlError('conflict', 'NETWORK_IN_USE', 'network blue has 2 endpoints; disconnect them first')
 */
export type ErrorKind = 'invalid' | 'not_found' | 'conflict' | 'failed'

export class ControlError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message)
  }
}

export const invalid = (message: string, field?: string) => new ControlError('invalid', 'INVALID_ARGUMENT', message, field)
export const notFound = (what: string, ref: string) => new ControlError('not_found', 'NOT_FOUND', `no ${what} named or with ID "${ref}"`)
export const conflict = (code: string, message: string) => new ControlError('conflict', code, message)
