/**
 * Agent actor: one per agent. Knows the agent's status, its open sessions, the transfers offered
 * to it and the sockets it is connected with, and tells the tenant's dispatcher whenever its
 * availability changes (status, sockets, cap, groups, sessions).
 */
import type { Actor, ActorContext, ActorId, EndpointId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import type { AgentStatus, SessionSummary } from '../protos/ws-v1.ts';
import { agentStream, OwnedStream } from './domain-events.ts';
import { dispatchKey, endpointKey, forgetNode, splitKey } from './ids.ts';
import {
  KINDS,
  type AgentConnectResult,
  type AgentMsg,
  type ConnectionMsg,
  type DispatchMsg,
} from './messages.ts';
import { effectiveCap, readTenantConfig } from './tenant-config.ts';

/** After the last socket of an agent closes, wait this long before taking it out of assignment (page reloads). */
export const OFFLINE_GRACE_MS = 15_000;

interface AgentState {
  status: AgentStatus;
  name: string;
  maxConcurrent: number;
  groups: string[];
  sessions: Record<string, SessionSummary>;
  /** Transfers offered to this agent, waiting for an answer. */
  offers: Record<string, { session: SessionSummary; fromAgentId: string; expiresAt: number }>;
}

export class AgentActor implements Actor {
  private st: AgentState = {
    status: 'offline',
    name: '',
    maxConcurrent: 0,
    groups: [],
    sessions: {},
    offers: {},
  };
  private readonly endpoints = new Map<string, EndpointId>();
  /** The offline grace timer is running (in-memory: a moving activation hands it on, see onDeactivate). */
  private graceRunning = false;
  private readonly tenantId: string;
  private readonly agentId: string;
  private readonly events: OwnedStream;

  constructor(id: ActorId) {
    const k = splitKey(id.key);
    this.tenantId = k.tenantId;
    this.agentId = k.id;
    this.events = new OwnedStream(this.tenantId, agentStream(this.agentId));
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const saved = await ctx.loadState<Partial<AgentState>>();
    if (saved) this.st = { ...this.st, ...saved };
    // A fresh activation knows no socket yet. Connected ones register within moments (a connect
    // cancels this); if none does, the agent is offline after the grace, as after a disconnect —
    // also when the previous activation's grace was running when its shard moved.
    this.startGrace(ctx);
  }

  /** Starts the offline grace: without a socket when it ends, the agent is announced offline. */
  private startGrace(ctx: ActorContext): void {
    this.graceRunning = true;
    ctx.setTimer('offlineGrace', OFFLINE_GRACE_MS, { t: 'offlineGrace' });
  }

  private push(ctx: ActorContext, m: ConnectionMsg): void {
    for (const ep of this.endpoints.values()) ctx.tell(ep, m);
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as AgentMsg;
    switch (msg.t) {
      case 'connect': {
        if (msg.caller.tenantId !== this.tenantId || msg.caller.id !== this.agentId) {
          throw new SbError('SB_ERR_FORBIDDEN');
        }
        this.endpoints.set(endpointKey(msg.endpoint), msg.endpoint);
        ctx.cancelTimer('offlineGrace');
        this.graceRunning = false;
        this.st.name = msg.caller.name;
        this.st.maxConcurrent = msg.maxConcurrent;
        this.st.groups = msg.groups;
        if (this.st.status === 'offline') await this.changeStatus('online', ctx);
        await ctx.saveState(this.st);
        await this.announce(ctx);
        // Offers still open are shown again to the new socket.
        const now = ctx.clock.now();
        for (const o of Object.values(this.st.offers)) {
          if (o.expiresAt <= now) continue;
          ctx.tell(msg.endpoint, {
            t: 'frame',
            frame: {
              type: 'transferOffer',
              session: o.session,
              fromAgentId: o.fromAgentId,
              expiresAt: o.expiresAt,
            },
          } satisfies ConnectionMsg);
        }
        return {
          status: this.st.status,
          sessions: Object.values(this.st.sessions),
        } satisfies AgentConnectResult;
      }
      case 'disconnect':
        this.endpoints.delete(endpointKey(msg.endpoint));
        if (this.endpoints.size === 0) this.startGrace(ctx);
        return undefined;
      case 'announce':
        await this.announce(ctx);
        return undefined;
      case 'wake':
        return undefined;
      case 'offlineGrace':
        this.graceRunning = false;
        if (this.endpoints.size === 0) await this.announce(ctx);
        return undefined;
      case 'setStatus': {
        if (msg.caller.tenantId !== this.tenantId || msg.caller.id !== this.agentId) {
          throw new SbError('SB_ERR_FORBIDDEN');
        }
        await this.changeStatus(msg.status, ctx);
        await ctx.saveState(this.st);
        await this.announce(ctx);
        this.push(ctx, { t: 'frame', frame: { type: 'status', status: msg.status } });
        return msg.status;
      }
      case 'profile': {
        this.st.name = msg.name;
        this.st.maxConcurrent = msg.maxConcurrent;
        this.st.groups = msg.groups;
        await ctx.saveState(this.st);
        await this.events.append(ctx, {
          kind: 'agent_profile',
          maxConcurrent: msg.maxConcurrent,
          groups: msg.groups,
        });
        await this.announce(ctx);
        return undefined;
      }
      case 'created':
        await this.events.append(ctx, { kind: 'agent_created', name: msg.name, role: msg.role });
        return undefined;
      case 'deleted': {
        await this.events.append(ctx, { kind: 'agent_deleted' });
        if (this.st.status !== 'offline') await this.changeStatus('offline', ctx);
        this.st.maxConcurrent = 0;
        await ctx.saveState(this.st);
        await this.announce(ctx);
        for (const ep of this.endpoints.values())
          ctx.tell(ep, { t: 'close', code: 4001, reason: 'SB_ERR_UNAUTHENTICATED' } satisfies ConnectionMsg);
        return undefined;
      }
      case 'sessionAssigned': {
        this.st.sessions[msg.session.sessionId] = msg.session;
        delete this.st.offers[msg.session.sessionId];
        await ctx.saveState(this.st);
        this.push(ctx, { t: 'assigned', session: msg.session });
        return undefined;
      }
      case 'sessionClosed':
      case 'sessionReleased': {
        if (!(msg.sessionId in this.st.sessions)) return undefined;
        delete this.st.sessions[msg.sessionId];
        await ctx.saveState(this.st);
        if (msg.t === 'sessionReleased') {
          this.push(ctx, {
            t: 'frame',
            frame: { type: 'released', sessionId: msg.sessionId, reason: 'transferred' },
          });
        }
        // The dispatcher's count follows this agent's own list.
        await this.announce(ctx);
        return undefined;
      }
      case 'transferOffer': {
        this.st.offers[msg.session.sessionId] = {
          session: msg.session,
          fromAgentId: msg.fromAgentId,
          expiresAt: msg.expiresAt,
        };
        await ctx.saveState(this.st);
        this.push(ctx, {
          t: 'frame',
          frame: {
            type: 'transferOffer',
            session: msg.session,
            fromAgentId: msg.fromAgentId,
            expiresAt: msg.expiresAt,
          },
        });
        return undefined;
      }
      case 'transferWithdrawn': {
        if (!(msg.sessionId in this.st.offers)) return undefined;
        delete this.st.offers[msg.sessionId];
        await ctx.saveState(this.st);
        return undefined;
      }
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `agent: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  /** The agent's sockets on a node that is gone are closed: as if they had disconnected. */
  onEndpointsGone(node: string, ctx: ActorContext): void {
    if (forgetNode(this.endpoints, node, (ep) => ep) && this.endpoints.size === 0) this.startGrace(ctx);
  }

  onDeactivate(ctx: ActorContext): void {
    // A grace in progress must end somewhere: the next activation (here or on the node that serves
    // the shard now) starts its own.
    if (this.graceRunning && this.endpoints.size === 0)
      try {
        ctx.tell(ctx.self, { t: 'wake' } satisfies AgentMsg);
      } catch {
        // The process is shutting down.
      }
    for (const ep of this.endpoints.values()) ctx.tell(ep, { t: 'reset' } satisfies ConnectionMsg);
    this.endpoints.clear();
  }

  private async changeStatus(status: AgentStatus, ctx: ActorContext): Promise<void> {
    const previous = this.st.status;
    if (previous === status) return;
    this.st.status = status;
    await this.events.append(ctx, { kind: 'agent_status', status, previous });
  }

  private async announce(ctx: ActorContext): Promise<void> {
    const { config } = await readTenantConfig(ctx.stores.state, this.tenantId, ctx.clock.now());
    const m: DispatchMsg = {
      t: 'agentState',
      agentId: this.agentId,
      name: this.st.name,
      status: this.st.status,
      connected: this.endpoints.size > 0,
      maxConcurrent: effectiveCap(this.st.maxConcurrent, config.settings),
      groups: this.st.groups,
      activeSessions: Object.keys(this.st.sessions),
    };
    ctx.tell({ kind: KINDS.dispatch, key: dispatchKey(this.tenantId) }, m);
  }
}
