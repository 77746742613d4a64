import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../engine/store/types.ts';
import type { SessionEventBody } from '../protos/ws-v1.ts';
import { foldSession } from './facts.ts';
import { drillDown, parseReportSpec, runReport, type ReportSpec } from './report.ts';

const T0 = Date.parse('2026-12-01T10:00:00Z');

function stream(sessionId: string, steps: Array<[number, SessionEventBody]>): StoredEvent[] {
  return steps.map(([s, body], i) => ({
    tenant: 't',
    stream: sessionId,
    seq: i + 1,
    at: T0 + s * 1000,
    body: body as unknown as StoredEvent['body'],
  }));
}

const msg = (from: 'visitor' | 'agent' | 'system', senderId: string = from): SessionEventBody => ({
  kind: 'message',
  from,
  senderId,
  text: 'x',
});

const served = stream('s1', [
  [0, { kind: 'created', visitorId: 'v1', channel: 'web', associationId: 'shop' }],
  [0, { kind: 'queued', group: 'g' }],
  [30, { kind: 'assigned', agentId: 'a1', agentName: 'A' }],
  [35, msg('visitor')],
  [40, msg('visitor')],
  [50, msg('agent')],
  [60, msg('agent')],
  [100, msg('visitor')],
  [130, msg('agent')],
  [200, { kind: 'rated', score: 4 }],
  [210, { kind: 'closed', by: 'agent', reason: '' }],
]);

describe('session facts', () => {
  it('analytics - folds queue, first response, pooled responses, duration and rating from the events', () => {
    const f = foldSession('s1', served, ['vip'])!;
    expect(f).toMatchObject({
      sessionId: 's1',
      visitorId: 'v1',
      channel: 'web',
      associationId: 'shop',
      agentId: 'a1',
      visitorTags: ['vip'],
      type: 'inbound',
      valid: true,
      createdAt: T0,
      acceptedAt: T0 + 30_000,
      closedAt: T0 + 210_000,
      queueCount: 1,
      queueMs: 30_000,
      messages: 6,
      durationMs: 180_000,
      firstResponseMs: 20_000,
      // 50 − 35 (the first unanswered visitor message), then 130 − 100.
      responses: 2,
      responseSumMs: 45_000,
      responseMaxMs: 30_000,
      satisfaction: 4,
      lastSeq: 11,
    });
  });

  it('analytics - a session no agent accepted: queue time up to the close, invalid without an answer', () => {
    const f = foldSession(
      's2',
      stream('s2', [
        [0, { kind: 'created', visitorId: 'v2', channel: 'app' }],
        [1, { kind: 'queued', group: 'g' }],
        [5, msg('visitor')],
        [61, { kind: 'closed', by: 'visitor', reason: '' }],
      ]),
    )!;
    expect(f).toMatchObject({
      type: 'unaccepted',
      valid: false,
      queueCount: 1,
      queueMs: 60_000,
      messages: 1,
    });
    expect(f.acceptedAt).toBeUndefined();
    expect(f.firstResponseMs).toBeUndefined();
    expect(f.durationMs).toBeUndefined();
  });

  it('analytics - a transfer back to the queue adds a queue episode; proactive sessions are typed so', () => {
    const f = foldSession(
      's3',
      stream('s3', [
        [0, { kind: 'created', visitorId: 'v3', channel: 'web', proactive: true }],
        [0, { kind: 'assigned', agentId: 'a1', agentName: 'A' }],
        [10, { kind: 'transferred', fromAgentId: 'a1', toGroupId: 'g2' }],
        [10, { kind: 'queued', group: 'g2', priority: 1 }],
        [25, { kind: 'assigned', agentId: 'a2', agentName: 'B' }],
        [30, { kind: 'closed', by: 'agent', reason: '' }],
      ]),
    )!;
    expect(f).toMatchObject({
      type: 'proactive',
      agentId: 'a2',
      queueCount: 1,
      queueMs: 15_000,
      acceptedAt: T0,
    });
  });

  it('analytics - a stream without its close is not a finished session', () => {
    expect(foldSession('s4', served.slice(0, 5))).toBeUndefined();
  });

  it('analytics - chatbot answers make a bot-only session valid', () => {
    const f = foldSession(
      's5',
      stream('s5', [
        [0, { kind: 'created', visitorId: 'v5', channel: 'web' }],
        [1, msg('visitor')],
        [2, msg('system', 'bot:b1')],
        [9, { kind: 'closed', by: 'visitor', reason: '' }],
      ]),
    )!;
    expect(f).toMatchObject({ type: 'unaccepted', valid: true, messages: 1 });
  });
});

describe('reports', () => {
  const now = Date.parse('2026-12-03T12:00:00Z');
  const facts = [
    foldSession('s1', served, ['vip', 'new'])!,
    foldSession(
      's6',
      stream('s6', [
        [0, { kind: 'created', visitorId: 'v1', channel: 'app' }],
        [86_400, { kind: 'assigned', agentId: 'a2', agentName: 'B' }],
        [86_410, msg('visitor')],
        [86_420, msg('agent')],
        [86_500, { kind: 'closed', by: 'agent', reason: '' }],
      ]),
    )!,
  ];
  const rows = (spec: ReportSpec) =>
    runReport(spec, [
      ...facts.map((fact) => ({ basis: 'created' as const, fact })),
      ...facts.map((fact) => ({ basis: 'accepted' as const, fact })),
    ]);

  it('analytics - groups by two dimensions; a visitor with two tags is in both groups; totals are not double counted', () => {
    const spec = parseReportSpec(
      {
        from: '2026-12-01',
        to: '2026-12-03',
        metrics: 'sessions,response_avg,unique_visitors',
        dimensions: 'visitor_tag',
      },
      now,
    );
    const r = rows(spec);
    expect(r.rows.map((x) => x.key)).toEqual([[''], ['new'], ['vip']]);
    expect(r.rows.find((x) => x.key[0] === 'vip')!.values).toEqual({
      sessions: 1,
      response_avg: 22_500,
      unique_visitors: 1,
    });
    // Pooled: (15 s + 30 s + 10 s) / 3 responses.
    expect(r.totals.values).toEqual({ sessions: 2, response_avg: 18_333.33, unique_visitors: 1 });
    expect(r.totals.sessions).toEqual({ created: 2, accepted: 2 });
  });

  it('analytics - the basis decides the day a session counts on', () => {
    const spec = parseReportSpec(
      { from: '2026-12-01', to: '2026-12-02', metrics: 'queue_count,sessions', dimensions: 'time' },
      now,
    );
    const r = rows(spec);
    // s6 was created on the 1st and accepted on the 2nd.
    expect(r.rows).toEqual([
      { key: ['2026-12-01'], values: { queue_count: 1, sessions: 1 }, sessions: { created: 2, accepted: 1 } },
      { key: ['2026-12-02'], values: { queue_count: 0, sessions: 1 }, sessions: { created: 0, accepted: 1 } },
    ]);
  });

  it('analytics - averages with nothing to average are null, not zero', () => {
    const spec = parseReportSpec(
      { from: '2026-12-01', to: '2026-12-03', metrics: 'satisfaction_avg', dimensions: 'agent' },
      now,
    );
    expect(rows(spec).rows.map((x) => x.values['satisfaction_avg'])).toEqual([4, null]);
  });

  it('analytics - drill-down lists the sessions behind a row', () => {
    const spec = parseReportSpec(
      { from: '2026-12-01', to: '2026-12-03', metrics: 'sessions', dimensions: 'channel,validity' },
      now,
    );
    const all = [...facts.map((fact) => ({ basis: 'accepted' as const, fact }))];
    expect(drillDown(spec, ['app', 'valid'], 'accepted', all, 10).map((f) => f.sessionId)).toEqual(['s6']);
    expect(drillDown(spec, ['web', 'invalid'], 'accepted', all, 10)).toEqual([]);
  });

  it('analytics - limits and bad specs are typed errors', () => {
    const bad = (raw: Record<string, unknown>) => {
      try {
        parseReportSpec(raw, now);
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return 'accepted';
    };
    expect(bad({ metrics: 'sessions' })).toBe('accepted');
    expect(bad({ metrics: '' })).toBe('SB_ERR_INVALID_FIELD');
    expect(bad({ metrics: 'nope' })).toBe('SB_ERR_INVALID_FIELD');
    expect(bad({ metrics: 'sessions', dimensions: 'agent,channel,time' })).toBe('SB_ERR_INVALID_FIELD');
    expect(bad({ metrics: 'sessions', from: '2026-01-01', to: '2026-12-01' })).toBe('SB_ERR_INVALID_FIELD');
    expect(bad({ metrics: 'sessions', from: '2026-12-02', to: '2026-12-01' })).toBe('SB_ERR_INVALID_FIELD');
    expect(bad({ metrics: 'sessions', granularity: 'year' })).toBe('SB_ERR_INVALID_FIELD');
    const eleven = Array(11)
      .fill('sessions')
      .map((m: string, i) => (i === 0 ? m : `${m}${i}`));
    expect(bad({ metrics: eleven.join(',') })).toBe('SB_ERR_INVALID_FIELD');
  });
});
