/**
 * The admin API's configuration as the console edits it (wire format of docs/ADMIN-API.md; the
 * server validates every field and answers SB_ERR_INVALID_FIELD with the field path).
 */
export type RuleKind = 'entry' | 'association' | 'channel';
export type RouteTarget = { kind: 'bot'; botId: string } | { kind: 'group'; groupId: string };
export type RuleTargets =
  { mode: 'allDay'; target: RouteTarget } | { mode: 'byHours'; working: RouteTarget; offHours: RouteTarget };

export interface RoutingRule {
  id: string;
  kind: RuleKind;
  match: string;
  targets: RuleTargets;
  enabled: boolean;
}

export interface WorkingHours {
  timeZone: string;
  weekly: Array<{ day: number; start: string; end: string }>;
  holidays: string[];
  workdays: Array<{ date: string; start: string; end: string }>;
}

export interface RoutingConfig {
  priority: RuleKind[];
  rules: RoutingRule[];
  defaultTargets: RuleTargets;
  bots: Array<{ botId: string; name: string; handoffGroupId?: string }>;
  groups: Array<{ groupId: string; name: string }>;
  workingHours?: WorkingHours;
}

export interface TenantSettings {
  upgraded: boolean;
  autoCloseInactiveMin: number;
  visitorNoReply: { afterMin: number; warnBeforeMin: number; warning: string };
  forceTagOnClose: boolean;
  transferTimeoutSec: number;
  typingThrottleMs: number;
}

export interface Association {
  associationId: string;
  channel: string;
  name: string;
  secret?: string;
}

export interface TagNode {
  tagId: string;
  name: string;
  children?: TagNode[];
}

export interface QuickReply {
  id: string;
  category?: string;
  title: string;
  text: string;
}

export interface DeskConfig {
  version: number;
  updatedAt: number;
  routing: RoutingConfig;
  settings: TenantSettings;
  associations: Association[];
  tags: TagNode[];
  sensitive: { mode: 'block' | 'remind'; words: string[]; reminder?: string };
  quickReplies: QuickReply[];
}

export interface Member {
  memberId: string;
  email: string;
  name: string;
  role: 'agent' | 'admin';
  maxConcurrent: number;
  groups?: string[];
}

export type SaveSection = (section: string, value: unknown) => Promise<boolean>;

/** Tag tree ↔ indented text (two spaces per level, `id: name` or just `name`). */
export function tagsToText(nodes: TagNode[], depth = 0): string {
  return nodes
    .map(
      (n) =>
        `${'  '.repeat(depth)}${n.tagId}: ${n.name}\n${n.children ? tagsToText(n.children, depth + 1) : ''}`,
    )
    .join('');
}

export function textToTags(text: string): TagNode[] {
  const root: TagNode[] = [];
  const stack: Array<{ depth: number; node: TagNode }> = [];
  let auto = 0;
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue;
    const depth = Math.floor((raw.length - raw.trimStart().length) / 2);
    const line = raw.trim();
    const m = /^([A-Za-z0-9_-]{1,64}):\s*(.+)$/.exec(line);
    const node: TagNode = m
      ? { tagId: m[1]!, name: m[2]!.trim() }
      : { tagId: `t${Date.now().toString(36)}${auto++}`, name: line };
    while (stack.length && stack[stack.length - 1]!.depth >= depth) stack.pop();
    const parent = stack[stack.length - 1]?.node;
    if (parent) (parent.children ??= []).push(node);
    else root.push(node);
    stack.push({ depth, node });
  }
  return root;
}

/** A plain deep copy of configuration data (works on Vue's reactive proxies, unlike structuredClone). */
export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
