/**
 * UI text in zh-CN and English. zh-CN is the schema: the English table must have exactly its keys
 * (a missing key is a type error).
 */
import { ref } from 'vue';

const zhCN = {
  appName: '客服工作台',
  login: { title: '客服登录', email: '邮箱', password: '密码', submit: '登录', failed: '邮箱或密码不正确' },
  status: {
    online: '空闲',
    busy: '忙碌',
    away: '离开',
    invisible: '隐身',
    offline: '离线',
    label: '在线状态',
  },
  sessions: { current: '当前会话', empty: '暂无会话', waiting: '等待', unread: '未读' },
  chat: {
    placeholder: '输入消息，Enter 发送，Shift+Enter 换行',
    send: '发送',
    close: '结束会话',
    typing: '正在输入…',
    preview: '访客正在输入：',
    pick: '从左侧选择一个会话',
    closed: '会话已结束',
    pending: '发送中',
    recalled: '消息已撤回',
    recall: '撤回',
  },
  conn: { reconnecting: '连接中断，正在重连…', closed: '连接已关闭' },
  visitor: {
    title: '在线客服',
    queue: '排队中，您前面还有 {n} 位',
    connecting: '正在为您接通客服…',
    assigned: '客服 {name} 为您服务',
    closed: '会话已结束，感谢您的咨询',
    newChat: '重新咨询',
    placeholder: '请输入您的问题',
    agentTyping: '客服正在输入…',
  },
  logout: '退出',
  language: '语言',
};

export type Messages = typeof zhCN;
type Schema<T> = { [K in keyof T]: T[K] extends string ? string : Schema<T[K]> };

const en: Schema<Messages> = {
  appName: 'Agent workspace',
  login: {
    title: 'Agent sign-in',
    email: 'Email',
    password: 'Password',
    submit: 'Sign in',
    failed: 'Wrong email or password',
  },
  status: {
    online: 'Online',
    busy: 'Busy',
    away: 'Away',
    invisible: 'Invisible',
    offline: 'Offline',
    label: 'Status',
  },
  sessions: { current: 'Current sessions', empty: 'No sessions', waiting: 'waiting', unread: 'unread' },
  chat: {
    placeholder: 'Type a message — Enter sends, Shift+Enter for a new line',
    send: 'Send',
    close: 'Close session',
    typing: 'typing…',
    preview: 'Visitor is typing: ',
    pick: 'Pick a session on the left',
    closed: 'Session closed',
    pending: 'sending',
    recalled: 'Message recalled',
    recall: 'Recall',
  },
  conn: { reconnecting: 'Connection lost, reconnecting…', closed: 'Connection closed' },
  visitor: {
    title: 'Customer service',
    queue: 'You are in the queue: {n} ahead of you',
    connecting: 'Connecting you to an agent…',
    assigned: '{name} is helping you',
    closed: 'The conversation has ended. Thank you!',
    newChat: 'Start a new chat',
    placeholder: 'Type your question',
    agentTyping: 'Agent is typing…',
  },
  logout: 'Sign out',
  language: 'Language',
};

export type Locale = 'zh-CN' | 'en';
const tables: Record<Locale, Schema<Messages>> = { 'zh-CN': zhCN, en };

export const locale = ref<Locale>('zh-CN');

export function pickLocale(preferred: string | null | undefined): Locale {
  if (preferred === 'en' || preferred?.startsWith('en')) return 'en';
  return 'zh-CN';
}

/** Looks up a dotted key (`chat.send`) and fills `{name}` placeholders. */
export function t(key: string, vars: Record<string, string | number> = {}): string {
  let v: unknown = tables[locale.value];
  for (const part of key.split('.')) v = (v as Record<string, unknown> | undefined)?.[part];
  const s = typeof v === 'string' ? v : key;
  return s.replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? ''));
}
