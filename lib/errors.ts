/**
 * `WalError`, the one error type segwal raises, and the decoding of errors
 * coming from the native binding.
 */

/** Every code a {@link WalError} can carry. */
export type WalErrorCode =
  | 'WAL_INVALID_ARGUMENT'
  | 'WAL_LOCKED'
  | 'WAL_CLOSED'
  | 'WAL_RECORD_TOO_LARGE'
  | 'WAL_LSN_PURGED'
  | 'WAL_LSN_OUT_OF_RANGE'
  | 'WAL_CORRUPTION'
  | 'WAL_IO_ERROR'

const CODES: ReadonlySet<string> = new Set<WalErrorCode>([
  'WAL_INVALID_ARGUMENT',
  'WAL_LOCKED',
  'WAL_CLOSED',
  'WAL_RECORD_TOO_LARGE',
  'WAL_LSN_PURGED',
  'WAL_LSN_OUT_OF_RANGE',
  'WAL_CORRUPTION',
  'WAL_IO_ERROR',
])

/** Extra details of a {@link WalError}. */
export interface WalErrorDetails {
  /** The damaged file (`WAL_CORRUPTION`) or the file an OS error concerns, when known. */
  file?: string
  /** Byte offset of the damage in `file` (`WAL_CORRUPTION`). */
  offset?: number
  /** Symbolic OS error, e.g. `'ENOSPC'` (`WAL_IO_ERROR`). */
  errno?: string
  /** The underlying error (`WAL_IO_ERROR`: a Node-style system error). */
  cause?: unknown
}

/** The error every segwal operation throws or rejects with. */
export class WalError extends Error {
  /** What went wrong, one of {@link WalErrorCode}. */
  readonly code: WalErrorCode
  /** The damaged file (`WAL_CORRUPTION`) or the file of an OS error, when known. */
  readonly file?: string
  /** Byte offset of the damage in {@link WalError.file} (`WAL_CORRUPTION`). */
  readonly offset?: number
  /** Symbolic OS error such as `'ENOSPC'` (`WAL_IO_ERROR`). */
  readonly errno?: string

  /**
   * @param code one of {@link WalErrorCode}
   * @param message human-readable description; for `WAL_INVALID_ARGUMENT` it names the argument
   * @param details optional `file`, `offset`, `errno` and `cause`
   */
  constructor(code: WalErrorCode, message: string, details: WalErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    if (details.file !== undefined) this.file = details.file
    if (details.offset !== undefined) this.offset = details.offset
    if (details.errno !== undefined) this.errno = details.errno
  }
}

Object.defineProperty(WalError.prototype, 'name', { value: 'WalError', enumerable: false, writable: true, configurable: true })

/**
 * The fields of a native failure: the properties of every error the binding
 * throws or rejects with, and the errors of failed ack events.
 */
export interface NativeErrorDetail {
  /** A `WAL_*` code, or `WAL_INTERNAL` for a caught native panic. */
  code: string
  message: string
  file?: string
  offset?: number
  errno?: string
  osCode?: number
}

/** Builds the WalError of a native failure. */
export function fromNative(d: NativeErrorDetail): WalError {
  const code: WalErrorCode = CODES.has(d.code) ? (d.code as WalErrorCode) : 'WAL_IO_ERROR'
  const details: WalErrorDetails = {}
  if (d.file != null) details.file = d.file
  if (d.offset != null) details.offset = d.offset
  if (d.errno != null) details.errno = d.errno
  if (code === 'WAL_IO_ERROR') {
    const cause = new Error(d.message) as NodeJS.ErrnoException
    if (d.errno != null) cause.code = d.errno
    if (d.osCode != null) cause.errno = -d.osCode
    if (d.file != null) cause.path = d.file
    details.cause = cause
  }
  const err = new WalError(code, d.message, details)
  if (!CODES.has(d.code)) {
    // WAL_INTERNAL (a caught native panic) and the like: keep what it was.
    Object.defineProperty(err, 'nativeCode', { value: d.code, enumerable: false })
  }
  return err
}

/**
 * Turns anything the binding threw into a WalError (leaves WalErrors alone).
 * Errors without a `WAL_*` code (a native argument-conversion failure) become
 * `WAL_INVALID_ARGUMENT`.
 */
export function toWalError(e: unknown): WalError {
  if (e instanceof WalError) return e
  if (e instanceof Error) {
    const { code } = e as Error & { code?: unknown }
    if (typeof code === 'string' && code.startsWith('WAL_')) return fromNative(e as Error & NativeErrorDetail)
    return new WalError('WAL_INVALID_ARGUMENT', e.message, { cause: e })
  }
  return new WalError('WAL_IO_ERROR', String(e))
}

/** A `WAL_INVALID_ARGUMENT` error naming `name`. */
export function invalidArgument(name: string, expected: string, value: unknown): WalError {
  return new WalError('WAL_INVALID_ARGUMENT', `${name} must be ${expected}, got ${describe(value)}`)
}

/** The `WAL_CLOSED` error. */
export function closedError(): WalError {
  return new WalError('WAL_CLOSED', 'the WAL is closed')
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return value.length > 40 ? 'a string' : JSON.stringify(value)
  if (typeof value === 'bigint') return `${value}n`
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Uint8Array) return `a ${value.constructor.name}`
  return typeof value === 'object' ? 'an object' : typeof value
}
