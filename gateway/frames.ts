/**
 * Parsing and validation of client frames. Anything that is not a well-formed protocol v1 frame
 * for the caller's role becomes an SbError here; nothing malformed reaches an actor.
 */
import { SbError } from '../protos/errors.ts';
import {
  AGENT_STATUSES,
  type AgentStatus,
  type Attachment,
  type ClientFrame,
  type Limits,
  type Role,
} from '../protos/ws-v1.ts';

const VISITOR_TYPES = new Set([
  'open',
  'send',
  'resume',
  'typing',
  'close',
  'ping',
  'handoff',
  'rate',
  'page',
  'device',
]);
const AGENT_TYPES = new Set([
  'send',
  'resume',
  'typing',
  'close',
  'status',
  'ping',
  'recall',
  'transfer',
  'transferAnswer',
  'tag',
  'note',
  'inviteRating',
]);
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_MSG_ID_RE = /^[\x21-\x7e]{1,64}$/;

function field(cond: boolean, msg: string): void {
  if (!cond) throw new SbError('SB_ERR_INVALID_FIELD', msg);
}

function optRef(o: Record<string, unknown>): string | undefined {
  const r = o['ref'];
  if (r === undefined) return undefined;
  field(typeof r === 'string' && r.length <= 64, 'ref must be a string of at most 64 characters');
  return r as string;
}

function sessionId(o: Record<string, unknown>): string {
  const s = o['sessionId'];
  field(typeof s === 'string' && ID_RE.test(s), 'sessionId must be 1–64 letters, digits, - or _');
  return s as string;
}

/** Best-effort ref of a frame that failed validation, so the client can match the error. */
export function refOf(raw: unknown): string | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const o = raw as Record<string, unknown>;
  const r = o['type'] === 'send' ? o['clientMsgId'] : o['ref'];
  return typeof r === 'string' && r.length <= 64 ? r : undefined;
}

/** JSON text → object with a string `type`; SB_ERR_BAD_FRAME otherwise. */
export function parseJson(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new SbError('SB_ERR_BAD_FRAME', 'frame is not valid JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v) || typeof (v as { type?: unknown }).type !== 'string') {
    throw new SbError('SB_ERR_BAD_FRAME', 'frame must be a JSON object with a string "type"');
  }
  return v as Record<string, unknown>;
}

export function validateFrame(o: Record<string, unknown>, role: Role, limits: Limits): ClientFrame {
  const type = o['type'] as string;
  const allowed = role === 'visitor' ? VISITOR_TYPES : AGENT_TYPES;
  if (!allowed.has(type))
    throw new SbError('SB_ERR_UNKNOWN_TYPE', `unknown frame type "${type.slice(0, 40)}" for ${role}`);
  const ref = optRef(o);
  const withRef = <T extends object>(f: T): T => (ref === undefined ? f : { ...f, ref });
  switch (type) {
    case 'open': {
      const entry = o['entry'];
      const channel = o['channel'] ?? 'web';
      field(
        entry === undefined || (typeof entry === 'string' && ID_RE.test(entry)),
        'entry must be 1–64 letters, digits, - or _',
      );
      field(channel === 'web' || channel === 'h5' || channel === 'app', 'channel must be web, h5 or app');
      const assoc = o['associationId'];
      field(
        assoc === undefined || (typeof assoc === 'string' && ID_RE.test(assoc)),
        'associationId must be 1–64 letters, digits, - or _',
      );
      const f: ClientFrame = { type: 'open', channel: channel as 'web' | 'h5' | 'app' };
      if (entry !== undefined) f.entry = entry as string;
      if (assoc !== undefined) f.associationId = assoc as string;
      return withRef(f);
    }
    case 'send': {
      const sid = sessionId(o);
      const cm = o['clientMsgId'];
      const text = o['text'];
      field(
        typeof cm === 'string' && CLIENT_MSG_ID_RE.test(cm),
        'clientMsgId must be 1–64 printable ASCII characters',
      );
      const att = o['attachment'];
      let attachment: Attachment | undefined;
      if (att !== undefined) {
        field(att !== null && typeof att === 'object' && !Array.isArray(att), 'attachment must be an object');
        const a = att as Record<string, unknown>;
        field(
          typeof a['fileId'] === 'string' && ID_RE.test(a['fileId']),
          'attachment.fileId must be a file id',
        );
        // Name, type and size are taken from the stored upload; the client's copies are informative.
        attachment = {
          fileId: a['fileId'] as string,
          name: typeof a['name'] === 'string' ? a['name'].slice(0, 200) : '',
          mime: typeof a['mime'] === 'string' ? a['mime'].slice(0, 128) : '',
          size: typeof a['size'] === 'number' ? a['size'] : 0,
        };
      }
      field(
        typeof text === 'string' && (text.trim().length > 0 || (attachment !== undefined && text === '')),
        'text must be a non-empty string',
      );
      field(
        (text as string).length <= limits.maxTextChars,
        `text longer than ${limits.maxTextChars} characters`,
      );
      const sf: ClientFrame = {
        type: 'send',
        sessionId: sid,
        clientMsgId: cm as string,
        text: text as string,
      };
      if (attachment) sf.attachment = attachment;
      return sf;
    }
    case 'resume': {
      const sid = sessionId(o);
      const last = o['lastSeq'];
      field(
        typeof last === 'number' && Number.isSafeInteger(last) && last >= 0,
        'lastSeq must be an integer ≥ 0',
      );
      return withRef({ type: 'resume', sessionId: sid, lastSeq: last as number });
    }
    case 'typing': {
      const sid = sessionId(o);
      const text = o['text'];
      field(text === undefined || typeof text === 'string', 'text must be a string');
      field(
        text === undefined || (text as string).length <= limits.maxTextChars,
        `text longer than ${limits.maxTextChars}`,
      );
      return text === undefined
        ? { type: 'typing', sessionId: sid }
        : { type: 'typing', sessionId: sid, text: text as string };
    }
    case 'close':
      return withRef({ type: 'close', sessionId: sessionId(o) });
    case 'recall': {
      const seq = o['seq'];
      field(typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 1, 'seq must be an integer ≥ 1');
      return withRef({ type: 'recall', sessionId: sessionId(o), seq: seq as number });
    }
    case 'status': {
      const s = o['status'];
      field(
        typeof s === 'string' && (AGENT_STATUSES as readonly string[]).includes(s),
        `status must be one of ${AGENT_STATUSES.join(', ')}`,
      );
      return withRef({ type: 'status', status: s as AgentStatus });
    }
    case 'ping':
      return withRef({ type: 'ping' });
    case 'handoff':
      return withRef({ type: 'handoff', sessionId: sessionId(o) });
    case 'inviteRating':
      return withRef({ type: 'inviteRating', sessionId: sessionId(o) });
    case 'rate': {
      const score = o['score'];
      const remark = o['remark'];
      field(
        typeof score === 'number' && Number.isInteger(score) && score >= 1 && score <= 5,
        'score must be 1–5',
      );
      field(
        remark === undefined || (typeof remark === 'string' && remark.length <= 500),
        'remark must be a string of at most 500 characters',
      );
      const f: ClientFrame = { type: 'rate', sessionId: sessionId(o), score: score as number };
      if (remark !== undefined && remark !== '') f.remark = remark as string;
      return withRef(f);
    }
    case 'page': {
      const url = o['url'];
      const title = o['title'];
      field(
        typeof url === 'string' && url.length <= 2048 && /^https?:\/\//i.test(url),
        'url must be an http(s) URL of at most 2048 characters',
      );
      field(
        title === undefined || (typeof title === 'string' && title.length <= 200),
        'title: at most 200 characters',
      );
      return title === undefined
        ? { type: 'page', url: url as string }
        : { type: 'page', url: url as string, title: title as string };
    }
    case 'device': {
      const f: ClientFrame = { type: 'device' };
      for (const k of ['os', 'model', 'appVersion', 'carrier'] as const) {
        const v = o[k];
        field(v === undefined || (typeof v === 'string' && v.length <= 100), `${k}: at most 100 characters`);
        if (typeof v === 'string') f[k] = v;
      }
      return f;
    }
    case 'transfer': {
      const toAgentId = o['toAgentId'];
      const toGroupId = o['toGroupId'];
      field(
        (toAgentId === undefined) !== (toGroupId === undefined),
        'transfer needs exactly one of toAgentId and toGroupId',
      );
      field(
        toAgentId === undefined || (typeof toAgentId === 'string' && ID_RE.test(toAgentId)),
        'toAgentId: bad id',
      );
      field(
        toGroupId === undefined || (typeof toGroupId === 'string' && ID_RE.test(toGroupId)),
        'toGroupId: bad id',
      );
      const f: ClientFrame = { type: 'transfer', sessionId: sessionId(o) };
      if (toAgentId !== undefined) f.toAgentId = toAgentId as string;
      if (toGroupId !== undefined) f.toGroupId = toGroupId as string;
      return withRef(f);
    }
    case 'transferAnswer': {
      const accept = o['accept'];
      field(typeof accept === 'boolean', 'accept must be true or false');
      return withRef({ type: 'transferAnswer', sessionId: sessionId(o), accept: accept as boolean });
    }
    case 'tag': {
      const tagId = o['tagId'];
      const op = o['op'] ?? 'add';
      field(typeof tagId === 'string' && ID_RE.test(tagId), 'tagId must be 1–64 letters, digits, - or _');
      field(op === 'add' || op === 'remove', 'op must be add or remove');
      return withRef({
        type: 'tag',
        sessionId: sessionId(o),
        tagId: tagId as string,
        op: op as 'add' | 'remove',
      });
    }
    case 'note': {
      const text = o['text'];
      field(
        typeof text === 'string' && text.trim().length > 0 && text.length <= 2000,
        'note text: 1–2000 characters',
      );
      return withRef({ type: 'note', sessionId: sessionId(o), text: text as string });
    }
    default:
      throw new SbError('SB_ERR_UNKNOWN_TYPE', `unknown frame type "${type.slice(0, 40)}"`);
  }
}

/** Token bucket: `rate` tokens per second, capacity `burst`. */
export class RateLimiter {
  private tokens: number;
  private last: number;
  /** Consecutive refusals; the gateway closes the socket when this passes the burst size. */
  refused = 0;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.refused = 0;
      return true;
    }
    this.refused++;
    return false;
  }
}

/**
 * The `ack` of a message, serialised: exactly `JSON.stringify` of the frame, built by hand on the
 * hot path. The session id passed validation as an id (nothing to escape); the clientMsgId is any
 * printable ASCII, so it is escaped.
 */
export function ackFrameJson(
  sessionId: string,
  clientMsgId: string,
  r: { seq: number; at: number; duplicate: boolean },
): string {
  return `{"type":"ack","sessionId":"${sessionId}","clientMsgId":${JSON.stringify(clientMsgId)},"seq":${r.seq},"at":${r.at},"duplicate":${r.duplicate}}`;
}
