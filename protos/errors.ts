/**
 * Every error Switchboard reports on the wire has a stable code from this table.
 * One row per code: HTTP status for REST answers, WebSocket close code when the error ends the
 * connection (0 = the socket stays open and gets an `error` frame), gRPC status for the partner API.
 * docs/PROTOCOL.md documents every code; a test fails when one is missing there.
 */
export const ERRORS = {
  SB_ERR_BAD_FRAME: {
    http: 400,
    close: 0,
    grpc: 3,
    text: 'Frame is not valid JSON or lacks a string "type".',
  },
  SB_ERR_UNKNOWN_TYPE: {
    http: 400,
    close: 0,
    grpc: 12,
    text: 'Frame type is not part of protocol v1 for this role.',
  },
  SB_ERR_INVALID_FIELD: {
    http: 400,
    close: 0,
    grpc: 3,
    text: 'A field is missing, of the wrong type or out of range.',
  },
  SB_ERR_FRAME_TOO_LARGE: { http: 413, close: 4009, grpc: 8, text: 'Frame exceeds the maximum frame size.' },
  SB_ERR_RATE_LIMITED: {
    http: 429,
    close: 4029,
    grpc: 8,
    text: 'Too many frames per second on this socket.',
  },
  SB_ERR_SLOW_CONSUMER: {
    http: 503,
    close: 4008,
    grpc: 8,
    text: 'Client does not read fast enough; buffered output exceeded the bound.',
  },
  SB_ERR_IDLE_TIMEOUT: { http: 408, close: 4000, grpc: 4, text: 'No traffic within the idle timeout.' },
  SB_ERR_UNAUTHENTICATED: {
    http: 401,
    close: 4001,
    grpc: 16,
    text: 'Missing, malformed, expired or forged token.',
  },
  SB_ERR_BAD_CREDENTIALS: { http: 401, close: 0, grpc: 16, text: 'Email or password is wrong.' },
  SB_ERR_FORBIDDEN: { http: 403, close: 0, grpc: 7, text: 'The caller may not act on this resource.' },
  SB_ERR_NOT_FOUND: { http: 404, close: 0, grpc: 5, text: 'No such tenant, session, agent or route.' },
  SB_ERR_RECALL_EXPIRED: {
    http: 409,
    close: 0,
    grpc: 9,
    text: 'Only messages sent in the last 2 minutes can be recalled.',
  },
  SB_ERR_INVALID_STATE: {
    http: 409,
    close: 0,
    grpc: 9,
    text: 'The operation is not possible in the current state of the session or agent.',
  },
  SB_ERR_TAG_REQUIRED: {
    http: 409,
    close: 0,
    grpc: 9,
    text: 'The tenant requires at least one session tag before a session is closed.',
  },
  SB_ERR_ALREADY_RATED: { http: 409, close: 0, grpc: 6, text: 'This session has already been rated.' },
  SB_ERR_SENSITIVE_WORD: {
    http: 422,
    close: 0,
    grpc: 9,
    text: "The message contains a word on the tenant's sensitive-word list and was not sent.",
  },
  SB_ERR_AGENT_UNAVAILABLE: {
    http: 409,
    close: 0,
    grpc: 9,
    text: 'The agent is not online or has no free capacity.',
  },
  SB_ERR_TRANSFER_PENDING: {
    http: 409,
    close: 0,
    grpc: 10,
    text: 'A transfer of this session is already waiting for an answer.',
  },
  SB_ERR_SESSION_CLOSED: { http: 409, close: 0, grpc: 9, text: 'The session is closed; open a new one.' },
  SB_ERR_SEQ_CONFLICT: {
    http: 409,
    close: 0,
    grpc: 10,
    text: 'Another writer appended at this sequence number.',
  },
  SB_ERR_BAD_SEQ: { http: 400, close: 0, grpc: 11, text: 'Resume sequence number is ahead of the session.' },
  SB_ERR_MAILBOX_FULL: { http: 503, close: 0, grpc: 8, text: 'Target actor mailbox is full; retry later.' },
  SB_ERR_BUSY: { http: 503, close: 0, grpc: 8, text: 'The server is busy; send the frame again later.' },
  SB_ERR_TIMEOUT: { http: 504, close: 0, grpc: 4, text: 'The operation did not finish within its deadline.' },
  SB_ERR_STORE_UNAVAILABLE: {
    http: 503,
    close: 0,
    grpc: 14,
    text: 'The message store did not confirm the write; it was not acknowledged.',
  },
  SB_ERR_NODE_UNAVAILABLE: {
    http: 503,
    close: 0,
    grpc: 14,
    text: 'The cluster node that owns the target cannot be reached now; retry.',
  },
  SB_ERR_SHUTTING_DOWN: {
    http: 503,
    close: 4002,
    grpc: 14,
    text: 'The server is draining; reconnect elsewhere or later.',
  },
  SB_ERR_REPLACED: {
    http: 409,
    close: 4003,
    grpc: 6,
    text: 'A newer connection of the same agent replaced this one.',
  },
  SB_ERR_INTERNAL: {
    http: 500,
    close: 0,
    grpc: 13,
    text: 'Unexpected server error; it was logged with the ref.',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/**
 * Errors that say "not now" rather than "no": the same request may well succeed on a later try
 * (a store or node briefly away, a shard between owners, a full mailbox, a deadline). Clients retry
 * these with backoff; the gateway does the same for the subscriptions it keeps for a socket.
 */
export const TRANSIENT_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SB_ERR_STORE_UNAVAILABLE',
  'SB_ERR_NODE_UNAVAILABLE',
  'SB_ERR_TIMEOUT',
  'SB_ERR_MAILBOX_FULL',
  'SB_ERR_BUSY',
  'SB_ERR_RATE_LIMITED',
  'SB_ERR_SHUTTING_DOWN',
]);

/** Errors crossing a boundary (socket, HTTP, actor ask) carry a code from {@link ERRORS}. */
export class SbError extends Error {
  readonly code: ErrorCode;
  readonly ref: string | undefined;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; ref?: string }) {
    super(message ?? ERRORS[code].text, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SbError';
    this.code = code;
    this.ref = options?.ref;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, x);
}

/** Rebuilds an SbError from a plain `{code, message}` (e.g. after crossing a thread). */
export function toSbError(x: unknown): SbError {
  if (x instanceof SbError) return x;
  if (x && typeof x === 'object' && isErrorCode((x as { code?: unknown }).code)) {
    const o = x as { code: ErrorCode; message?: unknown };
    return new SbError(o.code, typeof o.message === 'string' ? o.message : undefined);
  }
  return new SbError('SB_ERR_INTERNAL', x instanceof Error ? x.message : String(x), { cause: x });
}
