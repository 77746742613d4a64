/**
 * Routing rules (F4), as pure functions: which chatbot or skill group serves a new session, and
 * where a chatbot hands it to a human.
 *
 * - Three rule kinds: `channel` (web, app, wechat, weibo, callcenter), `association` (an app key,
 *   WeChat official account or Weibo account id) and `entry` (the entry parameter of a page or app
 *   button). Admins order the kinds by priority; the first kind, in that order, with an enabled
 *   rule matching the session decides. Nothing matches → the default targets (the group of
 *   ungrouped agents unless configured otherwise).
 * - Each rule targets a bot or a skill group all day, or one target in working hours and another
 *   off hours. Working hours: the tenant's IANA time zone, weekly intervals, holidays (days off) and
 *   make-up working days with their own intervals.
 * - Handoff: a bot's session goes to the bot's handoff group when it has one; else to the group of
 *   the next lower-priority matching rule that (at this hour) targets a group; else to the default
 *   group. A group chosen above a bot is never handed to a bot: the first matching kind wins.
 * - Every decision says which rule matched and why, for admins.
 *
 * Limits: 1,000 rules, 200 bots, 500 groups; ids are 1–64 letters, digits, `-` or `_`.
 */
import { SbError } from '../protos/errors.ts';
import { isValidId } from './ids.ts';

export const CHANNEL_NAMES = ['web', 'app', 'wechat', 'weibo', 'callcenter'] as const;
export type Channel = (typeof CHANNEL_NAMES)[number];
export const RULE_KINDS = ['entry', 'association', 'channel'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];
export type RouteTarget = { kind: 'bot'; botId: string } | { kind: 'group'; groupId: string };
export type RuleTargets =
  { mode: 'allDay'; target: RouteTarget } | { mode: 'byHours'; working: RouteTarget; offHours: RouteTarget };

export interface RoutingRule {
  id: string;
  kind: RuleKind;
  /** Channel name, association id or entry id, by kind. */
  match: string;
  targets: RuleTargets;
  enabled: boolean;
}

export interface Bot {
  botId: string;
  name: string;
  handoffGroupId?: string;
}

export interface SkillGroup {
  groupId: string;
  name: string;
}

export type Weekday = 0 | 1 | 2 | 3 | 4 | 5 | 6;

export interface WorkingHours {
  timeZone: string;
  /** 0 = Sunday. Several intervals per day allowed; `end` exclusive, `24:00` allowed. */
  weekly: Array<{ day: Weekday; start: string; end: string }>;
  /** Days off, YYYY-MM-DD in the tenant's time zone. */
  holidays: string[];
  /** Make-up working days with their intervals (they win over `weekly` and `holidays`). */
  workdays: Array<{ date: string; start: string; end: string }>;
}

export interface RoutingConfig {
  priority: RuleKind[];
  rules: RoutingRule[];
  defaultTargets: RuleTargets;
  bots: Bot[];
  groups: SkillGroup[];
  /** Absent: always working hours. */
  workingHours?: WorkingHours;
}

export interface RoutingContext {
  channel: Channel;
  associationId?: string;
  entry?: string;
}

export interface RoutingDecision {
  target: RouteTarget;
  /** `default` for the default targets. */
  ruleId: string;
  ruleKind: RuleKind | 'default';
  hours: 'allDay' | 'working' | 'offHours';
  reason: string;
}

export const DEFAULT_GROUP = 'ungrouped';
export const ROUTING_LIMITS = { rules: 1000, bots: 200, groups: 500 } as const;

export function defaultRoutingConfig(): RoutingConfig {
  return {
    priority: ['entry', 'association', 'channel'],
    rules: [],
    defaultTargets: { mode: 'allDay', target: { kind: 'group', groupId: DEFAULT_GROUP } },
    bots: [],
    groups: [],
  };
}

// ---- working hours --------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, Weekday> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Date, weekday and minute of the day at `now` in `timeZone`. */
export function localTime(timeZone: string, now: number): { date: string; day: Weekday; minute: number } {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      weekday: 'short',
    });
    formatters.set(timeZone, f);
  }
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(new Date(now))) p[part.type] = part.value;
  return {
    date: `${p['year']}-${p['month']}-${p['day']}`,
    day: WEEKDAYS[p['weekday']!]!,
    minute: Number(p['hour']) * 60 + Number(p['minute']),
  };
}

function minutes(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

function within(minute: number, start: string, end: string): boolean {
  return minute >= minutes(start) && minute < minutes(end);
}

export function isWorkingTime(wh: WorkingHours | undefined, now: number): boolean {
  if (!wh) return true;
  const t = localTime(wh.timeZone, now);
  const makeUp = wh.workdays.filter((w) => w.date === t.date);
  if (makeUp.length > 0) return makeUp.some((w) => within(t.minute, w.start, w.end));
  if (wh.holidays.includes(t.date)) return false;
  return wh.weekly.some((w) => w.day === t.day && within(t.minute, w.start, w.end));
}

// ---- decisions ------------------------------------------------------------------------------------

function describe(t: RouteTarget): string {
  return t.kind === 'bot' ? `chatbot ${t.botId}` : `skill group ${t.groupId}`;
}

function resolve(
  targets: RuleTargets,
  working: boolean,
): { target: RouteTarget; hours: RoutingDecision['hours'] } {
  if (targets.mode === 'allDay') return { target: targets.target, hours: 'allDay' };
  return working
    ? { target: targets.working, hours: 'working' }
    : { target: targets.offHours, hours: 'offHours' };
}

function matches(r: RoutingRule, ctx: RoutingContext): boolean {
  if (!r.enabled) return false;
  switch (r.kind) {
    case 'channel':
      return r.match === ctx.channel;
    case 'association':
      return ctx.associationId !== undefined && r.match === ctx.associationId;
    case 'entry':
      return ctx.entry !== undefined && r.match === ctx.entry;
  }
}

function subject(kind: RuleKind, ctx: RoutingContext): string {
  return kind === 'channel'
    ? `channel ${ctx.channel}`
    : kind === 'association'
      ? `association ${ctx.associationId}`
      : `entry ${ctx.entry}`;
}

function hoursText(h: RoutingDecision['hours']): string {
  return h === 'allDay' ? 'all day' : h === 'working' ? 'working hours' : 'off hours';
}

/** The bot or group that serves a new session, with the rule that decided and why. */
export function route(cfg: RoutingConfig, ctx: RoutingContext, now: number): RoutingDecision {
  const working = isWorkingTime(cfg.workingHours, now);
  const skipped: string[] = [];
  for (const kind of cfg.priority) {
    const rule = cfg.rules.find((r) => r.kind === kind && matches(r, ctx));
    if (!rule) {
      skipped.push(kind);
      continue;
    }
    const { target, hours } = resolve(rule.targets, working);
    return {
      target,
      ruleId: rule.id,
      ruleKind: kind,
      hours,
      reason:
        `${kind} rule "${rule.id}" matched ${subject(kind, ctx)}` +
        (skipped.length ? ` (no ${skipped.join(' or ')} rule matched first)` : '') +
        `; ${hoursText(hours)} → ${describe(target)}`,
    };
  }
  const { target, hours } = resolve(cfg.defaultTargets, working);
  return {
    target,
    ruleId: 'default',
    ruleKind: 'default',
    hours,
    reason: `no entry, association or channel rule matched; default rule, ${hoursText(hours)} → ${describe(target)}`,
  };
}

/** Chatbot → human: always a group. */
export function handoff(
  cfg: RoutingConfig,
  ctx: RoutingContext,
  botDecision: RoutingDecision,
  now: number,
): RoutingDecision {
  const botId = botDecision.target.kind === 'bot' ? botDecision.target.botId : undefined;
  const bot = cfg.bots.find((b) => b.botId === botId);
  const working = isWorkingTime(cfg.workingHours, now);
  const hours: RoutingDecision['hours'] = working ? 'working' : 'offHours';
  if (bot?.handoffGroupId !== undefined) {
    return {
      target: { kind: 'group', groupId: bot.handoffGroupId },
      ruleId: botDecision.ruleId,
      ruleKind: botDecision.ruleKind,
      hours,
      reason: `chatbot ${bot.botId} hands over to its configured skill group ${bot.handoffGroupId}`,
    };
  }
  const from =
    botDecision.ruleKind === 'default' ? cfg.priority.length : cfg.priority.indexOf(botDecision.ruleKind) + 1;
  for (const kind of cfg.priority.slice(from)) {
    const rule = cfg.rules.find((r) => r.kind === kind && matches(r, ctx));
    if (!rule) continue;
    const t = resolve(rule.targets, working);
    if (t.target.kind !== 'group') continue;
    return {
      target: t.target,
      ruleId: rule.id,
      ruleKind: kind,
      hours: t.hours,
      reason: `chatbot ${botId ?? '?'} has no handoff group; next lower-priority ${kind} rule "${rule.id}" → ${describe(t.target)}`,
    };
  }
  const d = resolve(cfg.defaultTargets, working);
  const groupId = d.target.kind === 'group' ? d.target.groupId : DEFAULT_GROUP;
  return {
    target: { kind: 'group', groupId },
    ruleId: 'default',
    ruleKind: 'default',
    hours: d.hours,
    reason: `chatbot ${botId ?? '?'} has no handoff group and no lower-priority rule names a group; default → skill group ${groupId}`,
  };
}

// ---- validation -------------------------------------------------------------------------------------

function bad(path: string, problem: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', `${path}: ${problem}`);
}

function obj(v: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad(path, 'must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`${path}.${k}`, 'unknown field');
  return o;
}

function arr(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) bad(path, 'must be an array');
  if (v.length > max) bad(path, `at most ${max} entries`);
  return v;
}

function id(v: unknown, path: string): string {
  if (!isValidId(v)) bad(path, 'must be 1–64 letters, digits, - or _');
  return v;
}

function name(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.trim() === '' || v.length > 100) bad(path, 'must be 1–100 characters');
  return v;
}

const HHMM = /^(([01]\d|2[0-3]):[0-5]\d|24:00)$/;
const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

function interval(o: Record<string, unknown>, path: string): { start: string; end: string } {
  const start = o['start'];
  const end = o['end'];
  if (typeof start !== 'string' || !HHMM.test(start) || start === '24:00')
    bad(`${path}.start`, 'must be HH:MM');
  if (typeof end !== 'string' || !HHMM.test(end)) bad(`${path}.end`, 'must be HH:MM (24:00 allowed)');
  if (minutes(end) <= minutes(start)) bad(`${path}.end`, 'must be after start');
  return { start, end };
}

function validateHours(v: unknown): WorkingHours {
  const o = obj(v, 'routing.workingHours', ['timeZone', 'weekly', 'holidays', 'workdays']);
  const tz = o['timeZone'];
  if (typeof tz !== 'string') bad('routing.workingHours.timeZone', 'must be an IANA time zone');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    bad('routing.workingHours.timeZone', `unknown time zone ${tz}`);
  }
  const weekly = arr(o['weekly'] ?? [], 'routing.workingHours.weekly', 100).map((raw, i) => {
    const p = `routing.workingHours.weekly[${i}]`;
    const w = obj(raw, p, ['day', 'start', 'end']);
    const day = w['day'];
    if (typeof day !== 'number' || !Number.isInteger(day) || day < 0 || day > 6)
      bad(`${p}.day`, 'must be 0 (Sunday)–6');
    return { day: day as Weekday, ...interval(w, p) };
  });
  const holidays = arr(o['holidays'] ?? [], 'routing.workingHours.holidays', 1000).map((d, i) => {
    if (typeof d !== 'string' || !DATE.test(d))
      bad(`routing.workingHours.holidays[${i}]`, 'must be YYYY-MM-DD');
    return d;
  });
  const workdays = arr(o['workdays'] ?? [], 'routing.workingHours.workdays', 1000).map((raw, i) => {
    const p = `routing.workingHours.workdays[${i}]`;
    const w = obj(raw, p, ['date', 'start', 'end']);
    if (typeof w['date'] !== 'string' || !DATE.test(w['date'])) bad(`${p}.date`, 'must be YYYY-MM-DD');
    return { date: w['date'], ...interval(w, p) };
  });
  return { timeZone: tz, weekly, holidays, workdays };
}

export function validateRoutingConfig(input: unknown): RoutingConfig {
  const o = obj(input, 'routing', ['priority', 'rules', 'defaultTargets', 'bots', 'groups', 'workingHours']);
  const groups = arr(o['groups'] ?? [], 'routing.groups', ROUTING_LIMITS.groups).map((raw, i) => {
    const g = obj(raw, `routing.groups[${i}]`, ['groupId', 'name']);
    return {
      groupId: id(g['groupId'], `routing.groups[${i}].groupId`),
      name: name(g['name'], `routing.groups[${i}].name`),
    };
  });
  const groupIds = new Set<string>([DEFAULT_GROUP]);
  groups.forEach((g, i) => {
    if (groupIds.has(g.groupId)) bad(`routing.groups[${i}].groupId`, `duplicate or reserved id ${g.groupId}`);
    groupIds.add(g.groupId);
  });
  const checkGroup = (g: string, path: string): void => {
    if (!groupIds.has(g)) bad(path, `unknown skill group ${g}`);
  };
  const bots = arr(o['bots'] ?? [], 'routing.bots', ROUTING_LIMITS.bots).map((raw, i) => {
    const p = `routing.bots[${i}]`;
    const b = obj(raw, p, ['botId', 'name', 'handoffGroupId']);
    const bot: Bot = { botId: id(b['botId'], `${p}.botId`), name: name(b['name'], `${p}.name`) };
    if (b['handoffGroupId'] !== undefined) {
      bot.handoffGroupId = id(b['handoffGroupId'], `${p}.handoffGroupId`);
      checkGroup(bot.handoffGroupId, `${p}.handoffGroupId`);
    }
    return bot;
  });
  const botIds = new Set<string>();
  bots.forEach((b, i) => {
    if (botIds.has(b.botId)) bad(`routing.bots[${i}].botId`, 'duplicate');
    botIds.add(b.botId);
  });
  const target = (v: unknown, path: string): RouteTarget => {
    const t = obj(v, path, ['kind', 'botId', 'groupId']);
    if (t['kind'] === 'bot') {
      if (t['groupId'] !== undefined) bad(`${path}.groupId`, 'not allowed for a bot target');
      const b = id(t['botId'], `${path}.botId`);
      if (!botIds.has(b)) bad(`${path}.botId`, `unknown chatbot ${b}`);
      return { kind: 'bot', botId: b };
    }
    if (t['kind'] === 'group') {
      if (t['botId'] !== undefined) bad(`${path}.botId`, 'not allowed for a group target');
      const g = id(t['groupId'], `${path}.groupId`);
      checkGroup(g, `${path}.groupId`);
      return { kind: 'group', groupId: g };
    }
    return bad(`${path}.kind`, 'must be bot or group');
  };
  const targets = (v: unknown, path: string): RuleTargets => {
    const t = obj(v, path, ['mode', 'target', 'working', 'offHours']);
    if (t['mode'] === 'allDay') {
      if (t['working'] !== undefined || t['offHours'] !== undefined) bad(path, 'allDay takes only target');
      return { mode: 'allDay', target: target(t['target'], `${path}.target`) };
    }
    if (t['mode'] === 'byHours') {
      if (t['target'] !== undefined) bad(`${path}.target`, 'byHours takes working and offHours');
      return {
        mode: 'byHours',
        working: target(t['working'], `${path}.working`),
        offHours: target(t['offHours'], `${path}.offHours`),
      };
    }
    return bad(`${path}.mode`, 'must be allDay or byHours');
  };
  const priority = arr(o['priority'] ?? [...RULE_KINDS], 'routing.priority', 3);
  if (
    priority.length !== 3 ||
    new Set(priority).size !== 3 ||
    !priority.every((k) => (RULE_KINDS as readonly unknown[]).includes(k))
  )
    bad('routing.priority', 'must order entry, association and channel, each once');
  const ruleIds = new Set<string>();
  const rules = arr(o['rules'] ?? [], 'routing.rules', ROUTING_LIMITS.rules).map((raw, i) => {
    const p = `routing.rules[${i}]`;
    const r = obj(raw, p, ['id', 'kind', 'match', 'targets', 'enabled']);
    const rid = id(r['id'], `${p}.id`);
    if (ruleIds.has(rid) || rid === 'default') bad(`${p}.id`, `duplicate or reserved id ${rid}`);
    ruleIds.add(rid);
    const kind = r['kind'];
    if (!(RULE_KINDS as readonly unknown[]).includes(kind))
      bad(`${p}.kind`, 'must be entry, association or channel');
    const match = r['match'];
    if (kind === 'channel') {
      if (!(CHANNEL_NAMES as readonly unknown[]).includes(match))
        bad(`${p}.match`, `must be one of ${CHANNEL_NAMES.join(', ')}`);
    } else id(match, `${p}.match`);
    const enabled = r['enabled'] ?? true;
    if (typeof enabled !== 'boolean') bad(`${p}.enabled`, 'must be true or false');
    return {
      id: rid,
      kind: kind as RuleKind,
      match: match as string,
      targets: targets(r['targets'], `${p}.targets`),
      enabled,
    };
  });
  const cfg: RoutingConfig = {
    priority: priority as RuleKind[],
    rules,
    defaultTargets:
      o['defaultTargets'] === undefined
        ? defaultRoutingConfig().defaultTargets
        : targets(o['defaultTargets'], 'routing.defaultTargets'),
    bots,
    groups,
  };
  if (o['workingHours'] !== undefined) cfg.workingHours = validateHours(o['workingHours']);
  return cfg;
}
