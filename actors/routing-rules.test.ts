import { describe, expect, it } from 'vitest';
import { SbError } from '../protos/errors.ts';
import {
  handoff,
  isWorkingTime,
  localTime,
  route,
  validateRoutingConfig,
  type RoutingConfig,
  type RoutingContext,
  type RuleKind,
  type WorkingHours,
} from './routing-rules.ts';

const HOURS: WorkingHours = {
  timeZone: 'Asia/Shanghai',
  weekly: [1, 2, 3, 4, 5].flatMap((day) => [
    { day: day as 1, start: '09:00', end: '12:00' },
    { day: day as 1, start: '13:00', end: '18:00' },
  ]),
  holidays: ['2026-11-30'],
  workdays: [{ date: '2026-11-28', start: '09:00', end: '18:00' }],
};

// Instants (Asia/Shanghai is UTC+8, no DST) and whether they are working time.
const TIMES = {
  mondayMorning: { at: Date.parse('2026-11-23T02:00:00Z'), working: true }, // Mon 10:00
  mondayLunch: { at: Date.parse('2026-11-23T04:30:00Z'), working: false }, // Mon 12:30, between intervals
  mondayEvening: { at: Date.parse('2026-11-23T12:00:00Z'), working: false }, // Mon 20:00
  holidayMonday: { at: Date.parse('2026-11-30T02:00:00Z'), working: false }, // listed holiday
  makeUpSaturday: { at: Date.parse('2026-11-28T02:00:00Z'), working: true }, // listed make-up day
  plainSaturday: { at: Date.parse('2026-11-21T02:00:00Z'), working: false },
} as const;

const PERMUTATIONS: RuleKind[][] = [
  ['entry', 'association', 'channel'],
  ['entry', 'channel', 'association'],
  ['association', 'entry', 'channel'],
  ['association', 'channel', 'entry'],
  ['channel', 'entry', 'association'],
  ['channel', 'association', 'entry'],
];

/** Each kind's rule: its own group in working hours, its own bot off hours. */
function matrixConfig(priority: RuleKind[]): RoutingConfig {
  return validateRoutingConfig({
    priority,
    rules: [
      { id: 'r-entry', kind: 'entry', match: 'buy', enabled: true, targets: byHours('entry') },
      {
        id: 'r-association',
        kind: 'association',
        match: 'app-1',
        enabled: true,
        targets: byHours('association'),
      },
      { id: 'r-channel', kind: 'channel', match: 'app', enabled: true, targets: byHours('channel') },
      // A disabled rule that would match everything never decides.
      { id: 'r-off', kind: 'channel', match: 'web', enabled: false, targets: byHours('channel') },
    ],
    defaultTargets: { mode: 'allDay', target: { kind: 'group', groupId: 'ungrouped' } },
    bots: ['entry', 'association', 'channel'].map((k) => ({ botId: `${k}-bot`, name: `${k} bot` })),
    groups: ['entry', 'association', 'channel'].map((k) => ({ groupId: `${k}-day`, name: k })),
    workingHours: HOURS,
  });
}

function byHours(kind: string): unknown {
  return {
    mode: 'byHours',
    working: { kind: 'group', groupId: `${kind}-day` },
    offHours: { kind: 'bot', botId: `${kind}-bot` },
  };
}

describe('routing rule matrix', () => {
  // Which kinds match: every subset of the three.
  const subsets: Array<Set<RuleKind>> = [];
  for (let m = 0; m < 8; m++) {
    const s = new Set<RuleKind>();
    if (m & 1) s.add('entry');
    if (m & 2) s.add('association');
    if (m & 4) s.add('channel');
    subsets.push(s);
  }
  const cases: Array<[string, RuleKind[], Set<RuleKind>, keyof typeof TIMES]> = [];
  for (const p of PERMUTATIONS)
    for (const s of subsets)
      for (const t of Object.keys(TIMES) as Array<keyof typeof TIMES>)
        cases.push([`${p.join('>')} | matching {${[...s].join(',')}} | ${t}`, p, s, t]);

  it.each(cases)('%s', (_name, priority, matching, time) => {
    const cfg = matrixConfig(priority);
    const ctx: RoutingContext = { channel: matching.has('channel') ? 'app' : 'wechat' };
    if (matching.has('entry')) ctx.entry = 'buy';
    else ctx.entry = 'other';
    if (matching.has('association')) ctx.associationId = 'app-1';
    const { at, working } = TIMES[time];
    const d = route(cfg, ctx, at);
    // Reference model: the first kind in priority order that matches; else the default.
    const winner = priority.find((k) => matching.has(k));
    if (!winner) {
      expect(d).toMatchObject({ ruleId: 'default', ruleKind: 'default', hours: 'allDay' });
      expect(d.target).toEqual({ kind: 'group', groupId: 'ungrouped' });
      return;
    }
    expect(d.ruleKind).toBe(winner);
    expect(d.ruleId).toBe(`r-${winner}`);
    expect(d.hours).toBe(working ? 'working' : 'offHours');
    expect(d.target).toEqual(
      working ? { kind: 'group', groupId: `${winner}-day` } : { kind: 'bot', botId: `${winner}-bot` },
    );
    expect(d.reason).toContain(`r-${winner}`);
  });
});

describe('chatbot handoff', () => {
  const base = {
    priority: ['entry', 'association', 'channel'],
    bots: [
      { botId: 'faq', name: 'FAQ', handoffGroupId: 'care' },
      { botId: 'plain', name: 'Plain' },
    ],
    groups: [
      { groupId: 'care', name: 'Care' },
      { groupId: 'sales', name: 'Sales' },
      { groupId: 'night', name: 'Night' },
    ],
  };
  const ctx: RoutingContext = { channel: 'web', entry: 'help', associationId: 'site' };
  const now = Date.parse('2026-11-23T02:00:00Z');

  it('goes to the bot’s configured group', () => {
    const cfg = validateRoutingConfig({
      ...base,
      rules: [
        {
          id: 'e',
          kind: 'entry',
          match: 'help',
          targets: { mode: 'allDay', target: { kind: 'bot', botId: 'faq' } },
        },
        {
          id: 'c',
          kind: 'channel',
          match: 'web',
          targets: { mode: 'allDay', target: { kind: 'group', groupId: 'sales' } },
        },
      ],
    });
    const bot = route(cfg, ctx, now);
    expect(bot.target).toEqual({ kind: 'bot', botId: 'faq' });
    expect(handoff(cfg, ctx, bot, now).target).toEqual({ kind: 'group', groupId: 'care' });
  });

  it('without a handoff group, goes to the next lower-priority rule that names a group', () => {
    const cfg = validateRoutingConfig({
      ...base,
      rules: [
        {
          id: 'e',
          kind: 'entry',
          match: 'help',
          targets: { mode: 'allDay', target: { kind: 'bot', botId: 'plain' } },
        },
        // Lower rule that is a bot too is skipped.
        {
          id: 'a',
          kind: 'association',
          match: 'site',
          targets: { mode: 'allDay', target: { kind: 'bot', botId: 'faq' } },
        },
        {
          id: 'c',
          kind: 'channel',
          match: 'web',
          targets: { mode: 'allDay', target: { kind: 'group', groupId: 'sales' } },
        },
      ],
    });
    const d = handoff(cfg, ctx, route(cfg, ctx, now), now);
    expect(d).toMatchObject({
      target: { kind: 'group', groupId: 'sales' },
      ruleId: 'c',
      ruleKind: 'channel',
    });
  });

  it('uses the hour’s target of the lower rule, and falls back to the default group', () => {
    const cfg = validateRoutingConfig({
      ...base,
      workingHours: HOURS,
      rules: [
        {
          id: 'e',
          kind: 'entry',
          match: 'help',
          targets: { mode: 'allDay', target: { kind: 'bot', botId: 'plain' } },
        },
        {
          id: 'c',
          kind: 'channel',
          match: 'web',
          targets: {
            mode: 'byHours',
            working: { kind: 'group', groupId: 'sales' },
            offHours: { kind: 'bot', botId: 'faq' },
          },
        },
      ],
      defaultTargets: { mode: 'allDay', target: { kind: 'group', groupId: 'night' } },
    });
    const day = TIMES.mondayMorning.at;
    const night = TIMES.mondayEvening.at;
    expect(handoff(cfg, ctx, route(cfg, ctx, day), day).target).toEqual({ kind: 'group', groupId: 'sales' });
    expect(handoff(cfg, ctx, route(cfg, ctx, night), night)).toMatchObject({
      target: { kind: 'group', groupId: 'night' },
      ruleId: 'default',
    });
  });

  it('a group chosen above a bot is never handed to the bot', () => {
    const cfg = validateRoutingConfig({
      ...base,
      rules: [
        {
          id: 'e',
          kind: 'entry',
          match: 'help',
          targets: { mode: 'allDay', target: { kind: 'group', groupId: 'sales' } },
        },
        {
          id: 'c',
          kind: 'channel',
          match: 'web',
          targets: { mode: 'allDay', target: { kind: 'bot', botId: 'faq' } },
        },
      ],
    });
    expect(route(cfg, ctx, now)).toMatchObject({ target: { kind: 'group', groupId: 'sales' }, ruleId: 'e' });
  });
});

describe('working hours', () => {
  it('follows intervals, holidays and make-up days in the tenant’s zone', () => {
    for (const [name, t] of Object.entries(TIMES)) expect(isWorkingTime(HOURS, t.at), name).toBe(t.working);
    expect(isWorkingTime(undefined, 0)).toBe(true);
    expect(localTime('Asia/Shanghai', TIMES.mondayMorning.at)).toEqual({
      date: '2026-11-23',
      day: 1,
      minute: 600,
    });
  });

  it('handles daylight saving time and 24:00', () => {
    const ny: WorkingHours = {
      timeZone: 'America/New_York',
      weekly: [{ day: 0, start: '09:00', end: '24:00' }],
      holidays: [],
      workdays: [],
    };
    // 13:30Z is 08:30 EST before the change and 09:30 EDT after it (2026-03-08).
    expect(isWorkingTime(ny, Date.parse('2026-03-01T13:30:00Z'))).toBe(false);
    expect(isWorkingTime(ny, Date.parse('2026-03-08T13:30:00Z'))).toBe(true);
    // 23:59 local on Sunday is inside an interval ending at 24:00; Monday 00:00 is not.
    expect(isWorkingTime(ny, Date.parse('2026-03-09T03:59:00Z'))).toBe(true);
    expect(isWorkingTime(ny, Date.parse('2026-03-09T04:00:00Z'))).toBe(false);
  });
});

describe('validateRoutingConfig', () => {
  const ok = { groups: [{ groupId: 'g', name: 'G' }], bots: [{ botId: 'b', name: 'B' }] };
  const rule = (over: Record<string, unknown>): unknown => ({
    ...ok,
    rules: [
      {
        id: 'r',
        kind: 'entry',
        match: 'x',
        targets: { mode: 'allDay', target: { kind: 'group', groupId: 'g' } },
        ...over,
      },
    ],
  });
  it.each([
    ['unknown top-level field', { ...ok, extra: 1 }, 'routing.extra'],
    ['priority not a permutation', { ...ok, priority: ['entry', 'entry', 'channel'] }, 'routing.priority'],
    ['bad group id', { groups: [{ groupId: 'a b', name: 'x' }] }, 'routing.groups[0].groupId'],
    ['reserved group id', { groups: [{ groupId: 'ungrouped', name: 'x' }] }, 'routing.groups[0].groupId'],
    [
      'unknown group in a rule',
      rule({ targets: { mode: 'allDay', target: { kind: 'group', groupId: 'nope' } } }),
      'groupId',
    ],
    [
      'unknown bot in a rule',
      rule({ targets: { mode: 'allDay', target: { kind: 'bot', botId: 'nope' } } }),
      'botId',
    ],
    ['bad channel', rule({ kind: 'channel', match: 'fax' }), 'routing.rules[0].match'],
    ['bad mode', rule({ targets: { mode: 'sometimes' } }), 'routing.rules[0].targets.mode'],
    ['unknown rule field', rule({ color: 'red' }), 'routing.rules[0].color'],
    [
      'bad handoff group',
      { ...ok, bots: [{ botId: 'b', name: 'B', handoffGroupId: 'nope' }] },
      'handoffGroupId',
    ],
    ['bad time zone', { ...ok, workingHours: { timeZone: 'Mars/Base', weekly: [] } }, 'timeZone'],
    [
      'bad time',
      { ...ok, workingHours: { timeZone: 'UTC', weekly: [{ day: 1, start: '9:00', end: '17:00' }] } },
      'start',
    ],
    [
      'end before start',
      { ...ok, workingHours: { timeZone: 'UTC', weekly: [{ day: 1, start: '17:00', end: '09:00' }] } },
      'end',
    ],
    ['bad holiday', { ...ok, workingHours: { timeZone: 'UTC', holidays: ['2026-13-01'] } }, 'holidays[0]'],
    ['too many rules', { ...ok, rules: Array.from({ length: 1001 }, () => ({})) }, 'routing.rules'],
  ])('%s', (_name, input, path) => {
    let err: unknown;
    try {
      validateRoutingConfig(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SbError);
    expect((err as SbError).code).toBe('SB_ERR_INVALID_FIELD');
    expect((err as SbError).message).toContain(path);
  });

  it('accepts a full configuration and fills defaults', () => {
    const cfg = validateRoutingConfig({ ...ok, rules: [] });
    expect(cfg.priority).toEqual(['entry', 'association', 'channel']);
    expect(cfg.defaultTargets).toEqual({ mode: 'allDay', target: { kind: 'group', groupId: 'ungrouped' } });
  });
});
