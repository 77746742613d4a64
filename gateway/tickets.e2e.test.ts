/**
 * Tickets (F25): created from a session with its transcript, the status workflow, comments,
 * visibility (agents their own, admins all), webhook events, and mirroring to an external system.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionFrame } from '../protos/ws-v1.ts';
import type { ExternalTicketSystem, Ticket } from '../actors/tickets.ts';
import { api, boot, login, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

class FakeTickets implements ExternalTicketSystem {
  created: string[] = [];
  updates: Array<{ id: string; status: string }> = [];
  async create(t: Ticket): Promise<string> {
    this.created.push(t.ticketId);
    return `EXT-${this.created.length}`;
  }
  async update(t: Ticket): Promise<void> {
    this.updates.push({ id: t.externalId ?? '?', status: t.status });
  }
}

describe('tickets', () => {
  it('from a session, through the workflow, visible to the right people, mirrored and pushed', async () => {
    const ext = new FakeTickets();
    // A webhook receiver for ticket events.
    const got: string[] = [];
    const receiver = createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        got.push((JSON.parse(b) as { kind: string }).kind);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      env = await boot(
        {
          webhooks: {
            allowLoopbackHttp: true,
            baseDelayMs: 20,
            maxDelayMs: 200,
            maxAttempts: 40,
            timeoutMs: 500,
          },
        },
        {
          ticketSystem: ext,
        },
      );
      const admin = await login(env.url, 'admin@demo.test');
      await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, {
        subscriptions: [
          {
            id: 'tix',
            url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/`,
            events: ['ticket.created', 'ticket.changed', 'ticket.commented'],
            secret: 'ticket-secret-0123456789',
          },
        ],
      });
      const a1 = await login(env.url, 'agent1@demo.test');
      const a2 = await login(env.url, 'agent2@demo.test');
      const agent = await TestClient.connect(env.wsUrl, 'agent', a1.token);
      clients.push(agent);
      const vt = await visitorToken(env.url);
      const v = await TestClient.connect(env.wsUrl, 'visitor', vt.token);
      clients.push(v);
      v.send({ type: 'open', ref: 'o' });
      const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
      await agent.next((f) => f.type === 'assigned');
      v.send({ type: 'send', sessionId: sid, clientMsgId: 'm1', text: 'my parcel never arrived' });
      await v.next((f) => f.type === 'ack');

      // Another agent may not file a ticket from a session that is not theirs.
      expect(
        (await api(env.url, 'POST', '/v1/tickets', a2.token, { subject: 'x', sessionId: sid })).status,
      ).toBe(403);
      const created = await api<Ticket>(env.url, 'POST', '/v1/tickets', a1.token, {
        subject: 'Lost parcel',
        description: 'Check with the carrier',
        priority: 'high',
        sessionId: sid,
      });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const t = created.body;
      expect(t).toMatchObject({ status: 'open', priority: 'high', createdBy: 'agent1', sessionId: sid });
      expect(t.transcript!.map((x) => x.text)).toEqual(['my parcel never arrived']);

      // Workflow: open → pending → solved → open (reopen) → closed; closed is final.
      const patch = (body: unknown, tok = a1.token) =>
        api<Ticket & { error?: { code: string } }>(env!.url, 'PATCH', `/v1/tickets/${t.ticketId}`, tok, body);
      expect((await patch({ status: 'pending' })).body.status).toBe('pending');
      expect((await patch({ status: 'solved' })).body.status).toBe('solved');
      expect((await patch({ status: 'pending' })).status).toBe(409);
      expect((await patch({ status: 'open' })).body.status).toBe('open');
      expect((await patch({ status: 'weird' })).status).toBe(400);
      const c = await api<Ticket>(env.url, 'POST', `/v1/tickets/${t.ticketId}/comments`, a1.token, {
        text: 'Carrier says Tuesday',
      });
      expect(c.body.comments.map((x) => x.text)).toEqual(['Carrier says Tuesday']);
      // agent2 sees nothing until assigned, then can work on it.
      expect((await api(env.url, 'GET', `/v1/tickets/${t.ticketId}`, a2.token)).status).toBe(403);
      expect(
        (await api<{ tickets: unknown[] }>(env.url, 'GET', '/v1/tickets', a2.token)).body.tickets,
      ).toEqual([]);
      expect((await patch({ assigneeId: 'agent2' })).body.assigneeId).toBe('agent2');
      expect(
        (
          await api<{ tickets: Array<{ ticketId: string }> }>(env.url, 'GET', '/v1/tickets', a2.token)
        ).body.tickets.map((x) => x.ticketId),
      ).toEqual([t.ticketId]);
      // Reassigned back: agent2's list no longer shows it.
      expect((await patch({ assigneeId: 'admin' }, a2.token)).body.assigneeId).toBe('admin');
      expect(
        (await api<{ tickets: unknown[] }>(env.url, 'GET', '/v1/tickets', a2.token)).body.tickets,
      ).toEqual([]);
      expect((await patch({ assigneeId: 'agent2' })).body.assigneeId).toBe('agent2');
      expect((await patch({ status: 'closed' }, a2.token)).body.status).toBe('closed');
      expect((await patch({ status: 'open' })).status).toBe(409);
      expect(
        (await api(env.url, 'POST', `/v1/tickets/${t.ticketId}/comments`, a1.token, { text: 'late' })).status,
      ).toBe(409);
      // Admins see all.
      expect(
        (await api<{ tickets: unknown[] }>(env.url, 'GET', '/v1/tickets', admin.token)).body.tickets,
      ).toHaveLength(1);

      // Mirrored to the external system, and pushed as webhooks in order.
      for (let i = 0; i < 100 && (got.length < 9 || ext.updates.length < 8); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(ext.created).toEqual([t.ticketId]);
      expect(ext.updates.at(-1)).toEqual({ id: 'EXT-1', status: 'closed' });
      expect(got[0]).toBe('ticket.created');
      expect(got.filter((k) => k === 'ticket.commented')).toHaveLength(1);
      expect(got.filter((k) => k === 'ticket.changed')).toHaveLength(7);
    } finally {
      receiver.closeAllConnections();
      receiver.close();
    }
  });
});
