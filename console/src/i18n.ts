/**
 * UI text in zh-CN and English. zh-CN is the schema: the English table must have exactly its keys
 * (a missing key is a type error), and `t()` only accepts keys that exist (a typo is a type error).
 */
import { ref, watch } from 'vue';

const zhCN = {
  appName: '客服工作台',
  login: {
    title: '客服登录',
    email: '邮箱',
    password: '密码',
    submit: '登录',
    busy: '正在登录…',
    failed: '邮箱或密码不正确',
    network: '无法连接服务器，请稍后再试',
    expired: '登录已失效，请重新登录',
    replaced: '您已在其他窗口登录，此窗口已断开',
  },
  status: {
    label: '在线状态',
    online: '在线',
    busy: '忙碌',
    away: '离开',
    invisible: '隐身',
    offline: '离线',
  },
  sessions: {
    current: '当前会话',
    empty: '暂无会话。状态为“在线”时，新访客会自动分配给您。',
    waiting: '已等待 {t}',
    replied: '已回复',
    unread: '{n} 条未读',
    dismiss: '移出列表',
    ended: '已结束',
  },
  chat: {
    placeholder: '输入消息，Enter 发送，Shift+Enter 换行',
    send: '发送',
    close: '结束会话',
    closeConfirm: '确定结束与该访客的会话吗？',
    preview: '访客正在输入：',
    pick: '从左侧选择一个会话',
    closed: '会话已结束',
    assigned: '会话已分配给 {name}',
    pending: '发送中',
    sent: '已送达',
    failed: '发送失败',
    recalled: '消息已撤回',
    recall: '撤回',
    you: '我',
    visitor: '访客',
    messages: '消息记录',
    tags: '会话标签',
    addTag: '添加标签…',
    removeTag: '移除标签 {name}',
    inviteRating: '邀请评价',
    transfer: '转接到…',
    transferGroup: '技能组：{name}',
    groups: '技能组',
    agents: '客服',
    transferAgent: '{name}（{status}，{active}/{max}）',
    note: '添加备注',
    notePrompt: '备注内容（访客看不到）',
    noteLine: '备注：{text}',
    profile: '访客资料',
    visitorTags: '访客标签',
    addVisitorTag: '添加访客标签',
    trail: '浏览轨迹',
    pastSessions: '历史会话 {n} 次',
    none: '无',
    offer: '{from} 想把与 {visitor} 的会话转接给您',
    accept: '接受',
    decline: '拒绝',
    sensitive: '敏感词提醒：{text}',
    error: {
      SB_ERR_TAG_REQUIRED: '结束会话前请先添加会话标签',
      SB_ERR_TRANSFER_PENDING: '该会话已有待处理的转接',
      SB_ERR_AGENT_UNAVAILABLE: '对方不在线或已达到接待上限',
      SB_ERR_SENSITIVE_WORD: '消息包含敏感词，未发送',
      SB_ERR_ALREADY_RATED: '该会话已评价',
      other: '操作失败：{code}',
    },
  },
  conn: {
    connecting: '正在连接…',
    reconnecting: '连接中断，正在重连…',
    retryNow: '立即重连',
    closed: '连接已关闭',
  },
  visitor: {
    title: '在线客服',
    queue: '排队中，您前面还有 {n} 位',
    queueNext: '排队中，下一位就是您',
    connecting: '正在为您接通客服…',
    assigned: '客服 {name} 为您服务',
    closed: '会话已结束，感谢您的咨询',
    newChat: '重新咨询',
    placeholder: '请输入您的问题',
    agentTyping: '客服正在输入',
    unavailable: '暂时无法连接客服，请稍后再试',
    retry: '重试',
    agent: '客服',
    rate: {
      title: '请为本次服务评分',
      star: '{n} 星',
      remark: '还有什么想告诉我们的？（选填）',
      submit: '提交评价',
      thanks: '感谢您的评价！',
    },
  },
  logout: '退出',
  language: '语言',
};

export type Messages = typeof zhCN;
type Schema<T> = { [K in keyof T]: T[K] extends string ? string : Schema<T[K]> };
/** Every dotted path to a string in the schema: `'chat.send' | 'status.online' | …`. */
type Leaves<T, P extends string = ''> = {
  [K in keyof T & string]: T[K] extends string ? `${P}${K}` : Leaves<T[K], `${P}${K}.`>;
}[keyof T & string];
export type MessageKey = Leaves<Messages>;

const en: Schema<Messages> = {
  appName: 'Agent workspace',
  login: {
    title: 'Agent sign-in',
    email: 'Email',
    password: 'Password',
    submit: 'Sign in',
    busy: 'Signing in…',
    failed: 'Wrong email or password',
    network: 'Cannot reach the server; try again later',
    expired: 'Your sign-in expired; please sign in again',
    replaced: 'You signed in in another window; this one was disconnected',
  },
  status: {
    label: 'Status',
    online: 'Online',
    busy: 'Busy',
    away: 'Away',
    invisible: 'Invisible',
    offline: 'Offline',
  },
  sessions: {
    current: 'Current sessions',
    empty: 'No sessions. While you are online, new visitors are assigned to you.',
    waiting: 'waiting {t}',
    replied: 'replied',
    unread: '{n} unread',
    dismiss: 'Remove from list',
    ended: 'ended',
  },
  chat: {
    placeholder: 'Type a message — Enter sends, Shift+Enter adds a line',
    send: 'Send',
    close: 'Close session',
    closeConfirm: 'Close the session with this visitor?',
    preview: 'Visitor is typing: ',
    pick: 'Pick a session on the left',
    closed: 'Session closed',
    assigned: 'Session assigned to {name}',
    pending: 'sending',
    sent: 'delivered',
    failed: 'not sent',
    recalled: 'Message recalled',
    recall: 'Recall',
    you: 'Me',
    visitor: 'Visitor',
    messages: 'Messages',
    tags: 'Session tags',
    addTag: 'Add a tag…',
    removeTag: 'Remove tag {name}',
    inviteRating: 'Invite rating',
    transfer: 'Transfer to…',
    transferGroup: 'Skill group: {name}',
    groups: 'Skill groups',
    agents: 'Agents',
    transferAgent: '{name} ({status}, {active}/{max})',
    note: 'Add note',
    notePrompt: 'Note (the visitor does not see it)',
    noteLine: 'Note: {text}',
    profile: 'Visitor profile',
    visitorTags: 'Visitor tags',
    addVisitorTag: 'Add a visitor tag',
    trail: 'Pages visited',
    pastSessions: '{n} sessions so far',
    none: 'none',
    offer: '{from} wants to transfer the chat with {visitor} to you',
    accept: 'Accept',
    decline: 'Decline',
    sensitive: 'Sensitive word reminder: {text}',
    error: {
      SB_ERR_TAG_REQUIRED: 'Add a session tag before closing',
      SB_ERR_TRANSFER_PENDING: 'A transfer of this session is already waiting',
      SB_ERR_AGENT_UNAVAILABLE: 'That agent is offline or at capacity',
      SB_ERR_SENSITIVE_WORD: 'The message contains a sensitive word and was not sent',
      SB_ERR_ALREADY_RATED: 'This session has been rated already',
      other: 'That did not work: {code}',
    },
  },
  conn: {
    connecting: 'Connecting…',
    reconnecting: 'Connection lost, reconnecting…',
    retryNow: 'Retry now',
    closed: 'Connection closed',
  },
  visitor: {
    title: 'Customer service',
    queue: 'You are in the queue: {n} ahead of you',
    queueNext: 'You are in the queue: you are next',
    connecting: 'Connecting you to an agent…',
    assigned: '{name} is helping you',
    closed: 'The conversation has ended. Thank you!',
    newChat: 'Start a new chat',
    placeholder: 'Type your question',
    agentTyping: 'Agent is typing',
    unavailable: 'Customer service cannot be reached right now; please try again later',
    retry: 'Try again',
    agent: 'Agent',
    rate: {
      title: 'How did we do?',
      star: '{n} stars',
      remark: 'Anything else you want to tell us? (optional)',
      submit: 'Send rating',
      thanks: 'Thank you for your rating!',
    },
  },
  logout: 'Sign out',
  language: 'Language',
};

export const LOCALES = ['zh-CN', 'en'] as const;
export type Locale = (typeof LOCALES)[number];
const tables: Record<Locale, Schema<Messages>> = { 'zh-CN': zhCN, en };

export const locale = ref<Locale>('zh-CN');
watch(
  locale,
  (l) => {
    if (typeof document !== 'undefined') document.documentElement.lang = l;
  },
  { immediate: true },
);

/** Chinese for any `zh…` preference, English for anything else given, Chinese when nothing is. */
export function pickLocale(preferred: string | null | undefined): Locale {
  if (!preferred) return 'zh-CN';
  return preferred.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

/** Looks up a key (`chat.send`) in the current locale and fills `{name}` placeholders. */
export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  let v: unknown = tables[locale.value];
  for (const part of key.split('.')) v = (v as Record<string, unknown>)[part];
  const s = typeof v === 'string' ? v : key;
  return s.replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? ''));
}

/** A short duration: `45s`, `12m`, `3h`. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** Clock time of a server timestamp in the current locale. */
export function clockTime(at: number): string {
  return new Date(at).toLocaleTimeString(locale.value, { hour: '2-digit', minute: '2-digit' });
}
