/**
 * Agent actor: one per agent. Knows the agent's status, its open sessions and the sockets it is
 * connected with, and tells the tenant's dispatcher whenever its availability changes.
 */
import type { Actor, ActorContext, ActorId, EndpointId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import type { AgentStatus, SessionSummary } from '../protos/ws-v1.ts';
import { dispatchKey, splitKey } from './ids.ts';
import {
  KINDS,
  type AgentConnectResult,
  type AgentMsg,
  type ConnectionMsg,
  type DispatchMsg,
} from './messages.ts';

/** After the last socket of an agent closes, wait this long before taking it out of assignment (page reloads). */
export const OFFLINE_GRACE_MS = 15_000;

interface AgentState {
  status: AgentStatus;
  name: string;
  maxConcurrent: number;
  sessions: Record<string, SessionSummary>;
}

export class AgentActor implements Actor {
  private st: AgentState = { status: 'offline', name: '', maxConcurrent: 0, sessions: {} };
  private readonly endpoints = new Map<string, EndpointId>();
  private readonly tenantId: string;
  private readonly agentId: string;

  constructor(id: ActorId) {
    const k = splitKey(id.key);
    this.tenantId = k.tenantId;
    this.agentId = k.id;
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const saved = await ctx.loadState<AgentState>();
    if (saved) this.st = saved;
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as AgentMsg;
    switch (msg.t) {
      case 'connect': {
        if (msg.caller.tenantId !== this.tenantId || msg.caller.id !== this.agentId) {
          throw new SbError('SB_ERR_FORBIDDEN');
        }
        this.endpoints.set(`${msg.endpoint.thread}/${msg.endpoint.name}`, msg.endpoint);
        ctx.cancelTimer('offlineGrace');
        this.st.name = msg.caller.name;
        this.st.maxConcurrent = msg.maxConcurrent;
        if (this.st.status === 'offline') this.st.status = 'online';
        await ctx.saveState(this.st);
        this.announce(ctx);
        return {
          status: this.st.status,
          sessions: Object.values(this.st.sessions),
        } satisfies AgentConnectResult;
      }
      case 'disconnect':
        this.endpoints.delete(`${msg.endpoint.thread}/${msg.endpoint.name}`);
        if (this.endpoints.size === 0) ctx.setTimer('offlineGrace', OFFLINE_GRACE_MS, { t: 'offlineGrace' });
        return undefined;
      case 'offlineGrace':
        if (this.endpoints.size === 0) this.announce(ctx);
        return undefined;
      case 'setStatus': {
        if (msg.caller.tenantId !== this.tenantId || msg.caller.id !== this.agentId) {
          throw new SbError('SB_ERR_FORBIDDEN');
        }
        this.st.status = msg.status;
        await ctx.saveState(this.st);
        this.announce(ctx);
        for (const ep of this.endpoints.values()) {
          ctx.tell(ep, { t: 'frame', frame: { type: 'status', status: msg.status } } satisfies ConnectionMsg);
        }
        return msg.status;
      }
      case 'sessionAssigned': {
        this.st.sessions[msg.session.sessionId] = msg.session;
        await ctx.saveState(this.st);
        for (const ep of this.endpoints.values()) {
          ctx.tell(ep, { t: 'assigned', session: msg.session } satisfies ConnectionMsg);
        }
        return undefined;
      }
      case 'sessionClosed': {
        if (!(msg.sessionId in this.st.sessions)) return undefined;
        delete this.st.sessions[msg.sessionId];
        await ctx.saveState(this.st);
        return undefined;
      }
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `agent: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  onDeactivate(ctx: ActorContext): void {
    for (const ep of this.endpoints.values()) ctx.tell(ep, { t: 'agentReset' } satisfies ConnectionMsg);
    this.endpoints.clear();
  }

  private announce(ctx: ActorContext): void {
    const m: DispatchMsg = {
      t: 'agentState',
      agentId: this.agentId,
      name: this.st.name,
      status: this.st.status,
      connected: this.endpoints.size > 0,
      maxConcurrent: this.st.maxConcurrent,
      activeSessions: Object.keys(this.st.sessions),
    };
    ctx.tell({ kind: KINDS.dispatch, key: dispatchKey(this.tenantId) }, m);
  }
}
