/**
 * The console in a real browser: Debian Chromium driven by playwright-core against a real server
 * (port 0, temp data dir). Visitors and an agent, each in their own browser context: queue position,
 * assignment, messages both ways with delivery state, the visitor's typing preview at the agent, the
 * agent's typing indicator at the visitor, unread counts, recall, close, a network cut and a
 * server restart in the middle of a conversation, English, the embedded window on another site
 * (proactive chat, quick replies, images and files, CRM tab, transfer to a second agent, history),
 * and the admin mode. Screenshots at desktop and phone size go to
 * test-results/screenshots/.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { boot, type Booted } from '../../gateway/testing.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env['CI'])
    throw new Error('CI=true but /usr/bin/chromium is missing: browser tests must run in CI');
  console.warn(
    '\n*** SKIPPING browser tests: install Debian chromium (apt-get install chromium fonts-noto-cjk) ***\n',
  );
}

const root = fileURLToPath(new URL('../..', import.meta.url));
const shots = `${root}test-results/screenshots`;
const dist = `${root}test-results/console-dist`;
const DESKTOP = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };

/** A TCP proxy to the server whose connections can be cut (and new ones refused) to fake a network loss. */
async function cuttableProxy(
  target: number | (() => number),
): Promise<{ port: number; cut(down: boolean): void; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let down = false;
  const server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(typeof target === 'number' ? target : target(), '127.0.0.1');
    open.add(client).add(upstream);
    const drop = (): void => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('proxy: no port');
  return {
    port: addr.port,
    cut(d) {
      down = d;
      if (d) for (const s of open) s.destroy();
    },
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe.runIf(haveChromium)('console in chromium', () => {
  let env: Booted;
  let browser: Browser;
  /** Uncaught exceptions in any page fail the test that caused them. */
  const pageErrors: string[] = [];
  afterEach(() => {
    const errors = pageErrors.splice(0);
    if (errors.length) console.error('page errors:', errors);
    expect(errors).toEqual([]);
  });
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    await build({ configFile: `${root}console/vite.config.ts`, logLevel: 'warn', build: { outDir: dist } });
    env = await boot({ staticDir: dist });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await env?.stop();
  });

  async function newPage(size: { width: number; height: number }, lang: string): Promise<Page> {
    const ctx = await browser.newContext({ viewport: size, locale: lang });
    const page = await ctx.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    return page;
  }

  async function agentPage(
    size: { width: number; height: number },
    lang: string,
    email = 'agent1@demo.test',
  ): Promise<Page> {
    const page = await newPage(size, lang);
    await page.goto(`${env.url}/`);
    await page.getByLabel(/邮箱|Email/).waitFor();
    await page.screenshot({ path: `${shots}/agent-login-${lang}-${size.width}.png` });
    await page.getByLabel(/邮箱|Email/).fill(email);
    await page.getByLabel(/密码|Password/).fill('switchboard');
    await page.getByRole('button', { name: /登录|Sign in/ }).click();
    await page.locator('.topbar').waitFor();
    return page;
  }

  it('console - queue, assignment, both ways with typing indicators, unread, recall and close', async () => {
    // Two visitors arrive before any agent is online: they are offered an offline message, choose to
    // wait, and queue.
    const va = await newPage(PHONE, 'zh-CN');
    await va.goto(`${env.url}/chat.html?tenant=demo`);
    await va.getByRole('heading', { name: '客服暂时不在线' }).waitFor({ timeout: 15_000 });
    await va.screenshot({ path: `${shots}/visitor-offline-zh-CN-phone.png` });
    // A third visitor leaves a message instead: it becomes a ticket for the team.
    const vc = await newPage(DESKTOP, 'zh-CN');
    await vc.goto(`${env.url}/chat.html?tenant=demo`);
    await vc.getByLabel('联系方式（邮箱或电话）').fill('li@example.com');
    await vc.getByLabel('留言内容').fill('想咨询企业版报价，请回电');
    await vc.getByRole('button', { name: '提交留言' }).click();
    await vc.getByText('留言已收到').waitFor();
    await vc.screenshot({ path: `${shots}/visitor-offline-sent-zh-CN-desktop.png` });
    const adminTok = await (
      await fetch(`${env.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'admin@demo.test', password: 'switchboard' }),
      })
    ).json();
    const tickets = (await (
      await fetch(`${env.url}/v1/tickets`, { headers: { authorization: `Bearer ${adminTok.token}` } })
    ).json()) as { tickets: Array<{ subject: string; source?: string }> };
    expect(tickets.tickets.find((x) => x.subject.includes('企业版报价'))?.source).toBe('offline');
    await va.getByRole('button', { name: '仍然排队等待客服' }).click();
    await va.getByRole('status').filter({ hasText: '下一位就是您' }).waitFor({ timeout: 15_000 });
    const vb = await newPage(DESKTOP, 'zh-CN');
    await vb.goto(`${env.url}/chat.html?tenant=demo&entry=sales`);
    await vb.getByRole('button', { name: '仍然排队等待客服' }).click({ timeout: 15_000 });
    await vb.getByRole('status').filter({ hasText: '您前面还有 1 位' }).waitFor({ timeout: 15_000 });
    await va.screenshot({ path: `${shots}/visitor-queue-zh-CN-phone.png` });
    await vb.screenshot({ path: `${shots}/visitor-queue-zh-CN-desktop.png` });

    // An agent signs in (online): both are assigned.
    const agent = await agentPage(DESKTOP, 'zh-CN');
    await va.getByRole('status').filter({ hasText: '为您服务' }).waitFor({ timeout: 15_000 });
    await vb.getByRole('status').filter({ hasText: '为您服务' }).waitFor({ timeout: 15_000 });
    await expect.poll(() => agent.locator('.sessions li').count()).toBe(2);

    // The visitor's draft shows live at the agent: in the list, then in the open chat.
    const box = va.getByPlaceholder('请输入您的问题');
    await box.pressSequentially('我的订单', { delay: 40 });
    await agent
      .locator('.sessions li', { hasText: '我的订单' })
      .locator('button.session')
      .click({ timeout: 10_000 });
    const itemA = agent.locator('.sessions li.active');
    await expect
      .poll(() => agent.locator('.preview').textContent(), { timeout: 10_000 })
      .toContain('我的订单');
    await agent.screenshot({ path: `${shots}/agent-typing-preview-zh-CN-desktop.png` });
    await box.press('Enter');
    await agent.locator('.line.visitor .bubble', { hasText: '我的订单' }).waitFor();
    await va.locator('.line.mine', { hasText: '我的订单' }).getByText('已送达').waitFor();
    await expect.poll(() => agent.locator('.preview').count()).toBe(0);
    await expect.poll(() => itemA.locator('.wait').textContent()).toMatch(/已等待 \d+s/);

    // The agent types (the visitor sees the indicator, not the text) and answers.
    const composer = agent.getByLabel(/输入消息/);
    await composer.pressSequentially('您好，请提供订单号', { delay: 20 });
    await va.getByText('客服正在输入').waitFor({ timeout: 10_000 });
    await va.screenshot({ path: `${shots}/visitor-agent-typing-zh-CN-phone.png` });
    await composer.press('Enter');
    await va.locator('.line.agent .bubble', { hasText: '请提供订单号' }).waitFor();
    await expect.poll(() => agent.locator('.line.agent', { hasText: '请提供订单号' }).count()).toBe(1);
    await expect.poll(() => agent.getByText('发送中').count()).toBe(0);
    await expect.poll(() => itemA.locator('.wait').textContent()).toBe('已回复');
    await expect.poll(() => va.getByText('客服正在输入').count()).toBe(0);

    // Shift+Enter is a new line, not a send.
    await composer.press('Shift+Enter');
    expect(await agent.locator('.line.agent').count()).toBe(1);
    await composer.fill('');

    // The other visitor writes while the agent looks at the first: an unread badge.
    await vb.getByPlaceholder('请输入您的问题').fill('还在吗？');
    await vb.keyboard.press('Enter');
    const itemB = agent.locator('.sessions li', { hasText: '还在吗？' });
    await expect.poll(() => itemB.locator('.badge').textContent(), { timeout: 10_000 }).toMatch(/^\s*1/);
    await expect.poll(() => agent.title()).toMatch(/^\(1\)/);

    // Recall (within 2 minutes): the visitor's window replaces the text.
    await composer.fill('错误的价格：10 元');
    await composer.press('Enter');
    await va.locator('.line.agent .bubble', { hasText: '错误的价格' }).waitFor();
    await agent
      .locator('.line.agent', { hasText: '错误的价格' })
      .getByRole('button', { name: '撤回' })
      .click();
    await va.getByText('消息已撤回').waitFor();
    expect(await va.locator('.line.agent .bubble', { hasText: '错误的价格' }).count()).toBe(0);

    // A long message with a line break and an unbreakable URL wraps inside its bubble on both sides.
    await box.fill('订单号如下：');
    await box.press('Shift+Enter');
    await box.pressSequentially('https://shop.example.com/orders/2026112400012345678901234567890?ref=abcdef');
    await box.press('Enter');
    await agent.locator('.line.visitor .bubble', { hasText: 'shop.example.com' }).waitFor();
    const overflow = (p: Page): Promise<boolean> =>
      p.locator('.lines').evaluate((el) => el.scrollWidth > el.clientWidth + 1);
    expect(await overflow(agent)).toBe(false);
    expect(await overflow(va)).toBe(false);

    await agent.screenshot({ path: `${shots}/agent-workspace-zh-CN-desktop.png` });
    await va.screenshot({ path: `${shots}/visitor-chat-zh-CN-phone.png` });
    await va.setViewportSize(DESKTOP);
    await va.screenshot({ path: `${shots}/visitor-chat-zh-CN-desktop.png` });
    await va.setViewportSize(PHONE);
    await agent.setViewportSize(PHONE);
    await agent.screenshot({ path: `${shots}/agent-chat-zh-CN-phone.png` });
    await agent.getByRole('button', { name: /‹/ }).click();
    await agent.screenshot({ path: `${shots}/agent-list-zh-CN-phone.png` });
    await itemA.locator('button.session').click();
    await agent.setViewportSize(DESKTOP);

    // Closing asks first; the visitor sees the end and may start again.
    agent.once('dialog', (d) => void d.accept());
    await agent.getByRole('button', { name: '结束会话' }).click();
    await va.getByRole('status').filter({ hasText: '会话已结束' }).waitFor();
    await va.getByRole('button', { name: '重新咨询' }).waitFor();
    await agent.locator('.sessions li.closed').waitFor();
    await va.screenshot({ path: `${shots}/visitor-closed-zh-CN-phone.png` });
    await agent.getByRole('button', { name: /移出列表/ }).click();
    await expect.poll(() => agent.locator('.sessions li').count()).toBe(1);
    await agent.context().close();
    await va.context().close();
    await vb.context().close();
  }, 120_000);

  it('console - a message written while the network is down is delivered once after reconnecting', async () => {
    // The pages talk to the server through a TCP proxy that can cut every connection.
    const proxy = await cuttableProxy(Number(new URL(env.url).port));
    const base = `http://127.0.0.1:${proxy.port}`;
    try {
      const agent = await newPage(DESKTOP, 'zh-CN');
      await agent.goto(`${base}/`);
      await agent.getByLabel('邮箱').fill('agent1@demo.test');
      await agent.getByLabel('密码').fill('switchboard');
      await agent.getByRole('button', { name: '登录' }).click();
      const visitor = await newPage(PHONE, 'zh-CN');
      await visitor.goto(`${base}/chat.html?tenant=demo`);
      await visitor.getByRole('status').filter({ hasText: '为您服务' }).waitFor({ timeout: 15_000 });
      await visitor.getByPlaceholder('请输入您的问题').fill('断线前');
      await visitor.keyboard.press('Enter');
      await agent
        .locator('.sessions li', { hasText: '断线前' })
        .locator('button.session')
        .click({ timeout: 10_000 });
      await agent.locator('.line.visitor .bubble', { hasText: '断线前' }).waitFor({ timeout: 10_000 });

      proxy.cut(true);
      await visitor.getByText('连接中断，正在重连').waitFor({ timeout: 15_000 });
      await agent.getByText('连接中断，正在重连').waitFor({ timeout: 15_000 });
      await visitor.getByPlaceholder('请输入您的问题').fill('断线时写的');
      await visitor.keyboard.press('Enter');
      await visitor.locator('.line.mine', { hasText: '断线时写的' }).getByText('发送中').waitFor();
      await visitor.screenshot({ path: `${shots}/visitor-reconnecting-zh-CN-phone.png` });
      await agent.screenshot({ path: `${shots}/agent-reconnecting-zh-CN-desktop.png` });
      proxy.cut(false);

      await visitor
        .locator('.line.mine', { hasText: '断线时写的' })
        .getByText('已送达')
        .waitFor({ timeout: 30_000 });
      await agent.locator('.line.visitor .bubble', { hasText: '断线时写的' }).waitFor({ timeout: 30_000 });
      await expect.poll(() => visitor.getByText('连接中断').count()).toBe(0);
      // Exactly once on both sides, and nothing from before the cut doubled by the resume.
      expect(await agent.locator('.line.visitor', { hasText: '断线时写的' }).count()).toBe(1);
      expect(await agent.locator('.line.visitor', { hasText: '断线前' }).count()).toBe(1);
      expect(await visitor.locator('.line.mine', { hasText: '断线前' }).count()).toBe(1);
      expect(await visitor.locator('.line.system').count()).toBe(1);

      // A reload keeps the visitor (localStorage) and replays the open conversation.
      await visitor.reload();
      await visitor.locator('.line.mine', { hasText: '断线时写的' }).getByText('已送达').waitFor();
      expect(await visitor.locator('.line.mine').count()).toBe(2);
      await visitor.getByRole('status').filter({ hasText: '为您服务' }).waitFor();
      await agent.context().close();
      await visitor.context().close();
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('console - English throughout when chosen', async () => {
    const agent = await agentPage(DESKTOP, 'en', 'agent2@demo.test');
    await agent.getByRole('heading', { name: /Current sessions/ }).waitFor();
    const visitor = await newPage(PHONE, 'en');
    await visitor.goto(`${env.url}/chat.html?tenant=demo&lang=en`);
    await visitor
      .getByRole('status')
      .filter({ hasText: /is helping you|queue/ })
      .waitFor({ timeout: 15_000 });
    await visitor.getByPlaceholder('Type your question').fill('Hello');
    await visitor.keyboard.press('Enter');
    await visitor.locator('.line.mine').getByText('delivered').waitFor();
    await agent.getByLabel('Language').selectOption('zh-CN');
    await agent.getByRole('heading', { name: /当前会话/ }).waitFor();
    await agent.getByLabel('语言').selectOption('en');
    await agent.screenshot({ path: `${shots}/agent-workspace-en-desktop.png` });
    await visitor.screenshot({ path: `${shots}/visitor-chat-en-phone.png` });
  }, 60_000);

  it('console - session tags from the tree, a forced tag before closing, rating invitation', async () => {
    const adminTok = (await (
      await fetch(`${env.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'admin@demo.test', password: 'switchboard' }),
      })
    ).json()) as { token: string };
    const put = (section: string, body: unknown): Promise<Response> =>
      fetch(`${env.url}/v1/admin/config/${section}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminTok.token}` },
        body: JSON.stringify(body),
      });
    expect(
      (await put('tags', [{ tagId: 'billing', name: '账单', children: [{ tagId: 'refund', name: '退款' }] }]))
        .status,
    ).toBe(200);
    expect((await put('settings', { forceTagOnClose: true })).status).toBe(200);
    // Entry `refund` routes to the VIP group, which only the admin serves: the chat comes here.
    expect(
      (
        await put('routing', {
          groups: [{ groupId: 'vip', name: 'VIP' }],
          rules: [
            {
              id: 'refund',
              kind: 'entry',
              match: 'refund',
              targets: { mode: 'allDay', target: { kind: 'group', groupId: 'vip' } },
            },
          ],
        })
      ).status,
    ).toBe(200);
    const patched = await fetch(`${env.url}/v1/admin/members/admin`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminTok.token}` },
      body: JSON.stringify({ groups: ['vip'] }),
    });
    expect(patched.status).toBe(200);
    const agent = await agentPage(DESKTOP, 'zh-CN', 'admin@demo.test');
    agent.on('dialog', (d) => void (d.type() === 'prompt' ? d.accept('物流丢件，已联系快递') : d.accept()));
    const visitor = await newPage(PHONE, 'zh-CN');
    await visitor.goto(`${env.url}/chat.html?tenant=demo&entry=refund`);
    // Type only once the session is open (the composer sends nothing before).
    await visitor
      .getByRole('status')
      .filter({ hasText: /为您服务|排队/ })
      .waitFor({ timeout: 15_000 });
    await visitor.getByPlaceholder('请输入您的问题').fill('我要退款');
    await visitor.keyboard.press('Enter');
    await agent.locator('.sessions li').filter({ hasText: '我要退款' }).click();
    await agent.getByText('我要退款').last().waitFor();
    // Closing without a tag is refused with a clear message.
    await agent.getByRole('button', { name: '结束会话' }).click();
    await agent.getByRole('alert').filter({ hasText: '结束会话前请先添加会话标签' }).waitFor();
    // Tag from the tree (shown with its path), then rating invitation, then close.
    await agent.locator('[data-test=add-tag]').selectOption('refund');
    await agent.locator('.tags .tag').filter({ hasText: '账单 / 退款' }).waitFor();
    // An internal note; the transfer menu lists colleagues with their status and load.
    await agent.getByRole('button', { name: '添加备注' }).click();
    await agent.getByText('备注：物流丢件，已联系快递').waitFor();
    await agent.locator('[data-test=transfer]').focus();
    await agent
      .locator('[data-test=transfer] option', { hasText: /Agent 1（(在线|离线)/ })
      .waitFor({ state: 'attached' });
    // The visitor's profile: tags kept on the visitor across sessions.
    await agent.getByText('访客资料').click();
    await agent.getByLabel('添加访客标签').fill('VIP');
    await agent.getByLabel('添加访客标签').press('Enter');
    await agent.locator('.visitor-panel .tag', { hasText: 'VIP' }).waitFor();
    await agent.getByRole('button', { name: '邀请评价' }).click();
    await agent.screenshot({ path: `${shots}/agent-tags-zh-CN-desktop.png` });
    // The visitor rates (once): five stars and a remark.
    await visitor.getByRole('heading', { name: '请为本次服务评分' }).waitFor();
    await visitor.getByRole('radio', { name: '5 星' }).click();
    await visitor.getByLabel('还有什么想告诉我们的？（选填）').fill('很快就解决了');
    await visitor.screenshot({ path: `${shots}/visitor-rating-zh-CN-phone.png` });
    await visitor.getByRole('button', { name: '提交评价' }).click();
    await visitor.getByText('感谢您的评价！').waitFor();
    await agent.getByRole('button', { name: '×' }).first().click(); // dismiss the error banner
    await agent.getByRole('button', { name: '结束会话' }).click();
    await agent.getByText('会话已结束').last().waitFor();
    await agent.screenshot({ path: `${shots}/agent-closed-tagged-zh-CN-desktop.png` });
  }, 60_000);
  it('console - the chat goes on after the server restarts (same data): both sides reconnect and resume', async () => {
    // A server of its own, restarted on the same port and data directory in the middle of the chat.
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-console-restart-'));
    let srv = await boot({ staticDir: dist, dataDir });
    // The pages reach the server through a proxy, so the restarted server may take another port.
    const proxy = await cuttableProxy(() => Number(new URL(srv.url).port));
    const base = `http://127.0.0.1:${proxy.port}`;
    try {
      const agent = await newPage(DESKTOP, 'zh-CN');
      await agent.goto(`${base}/`);
      await agent.getByLabel('邮箱').fill('agent2@demo.test');
      await agent.getByLabel('密码').fill('switchboard');
      await agent.getByRole('button', { name: '登录' }).click();
      await agent.locator('.topbar').waitFor();
      const visitor = await newPage(PHONE, 'zh-CN');
      await visitor.goto(`${base}/chat.html?tenant=demo`);
      await visitor.getByRole('status').filter({ hasText: '为您服务' }).waitFor({ timeout: 15_000 });
      await visitor.getByPlaceholder('请输入您的问题').fill('重启前');
      await visitor.keyboard.press('Enter');
      await agent
        .locator('.sessions li', { hasText: '重启前' })
        .locator('button.session')
        .click({ timeout: 10_000 });
      await agent.locator('.line.visitor .bubble', { hasText: '重启前' }).waitFor();

      await srv.stop({ keepData: true });
      await visitor.getByText('连接中断，正在重连').waitFor({ timeout: 15_000 });
      await visitor.getByPlaceholder('请输入您的问题').fill('重启时写的');
      await visitor.keyboard.press('Enter');
      srv = await boot({ staticDir: dist, dataDir });

      await visitor
        .locator('.line.mine', { hasText: '重启时写的' })
        .getByText('已送达')
        .waitFor({ timeout: 30_000 });
      await agent.locator('.line.visitor .bubble', { hasText: '重启时写的' }).waitFor({ timeout: 30_000 });
      const composer = agent.getByLabel(/输入消息/);
      await composer.fill('服务已恢复');
      await composer.press('Enter');
      await visitor.locator('.line.agent .bubble', { hasText: '服务已恢复' }).waitFor({ timeout: 15_000 });
      // Nothing doubled by the resume on either side.
      expect(await agent.locator('.line.visitor', { hasText: '重启前' }).count()).toBe(1);
      expect(await agent.locator('.line.visitor', { hasText: '重启时写的' }).count()).toBe(1);
      expect(await visitor.locator('.line.mine', { hasText: '重启前' }).count()).toBe(1);
      await agent.context().close();
      await visitor.context().close();
    } finally {
      await proxy.close();
      await srv.stop();
    }
  }, 90_000);

  async function adminApi<T>(method: string, path: string, body?: unknown): Promise<T> {
    const tok = (await (
      await fetch(`${env.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'admin@demo.test', password: 'switchboard' }),
      })
    ).json()) as { token: string };
    const init: RequestInit = { method, headers: { authorization: `Bearer ${tok.token}` } };
    if (body !== undefined) {
      init.headers = { ...init.headers, 'content-type': 'application/json' };
      init.body = JSON.stringify(body);
    }
    const r = await fetch(`${env.url}${path}`, init);
    expect(r.status, `${method} ${path}`).toBe(200);
    return (await r.json()) as T;
  }

  it('console - embedded on another site: trail, proactive chat, quick replies, images, history', async () => {
    await adminApi('PUT', '/v1/admin/config/tags', [
      { tagId: 'billing', name: '账单', children: [{ tagId: 'refund', name: '退款' }] },
    ]);
    await adminApi('PUT', '/v1/admin/config/crm', {
      urlTemplate: 'https://crm.example.com/customer?visitor={visitorId}&agent={agentId}&name={visitorName}',
    });
    await adminApi('PUT', '/v1/admin/config/quickReplies', [
      { id: 'greet', category: '问候', title: '问候语', text: '您好，很高兴为您服务' },
    ]);
    // A customer's site on another origin embeds the chat with one script tag.
    const site = createHttpServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(
        `<!doctype html><html lang="zh-CN"><head><title>商品详情页</title></head><body><h1>Shop</h1>` +
          `<script src="${env.url}/embed.js" data-tenant="demo" data-lang="zh-CN" async></script></body></html>`,
      );
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    const sitePort = (site.address() as { port: number }).port;
    try {
      const agent = await agentPage(DESKTOP, 'zh-CN');
      const shopper = await newPage(DESKTOP, 'zh-CN');
      await shopper.goto(`http://127.0.0.1:${sitePort}/product/42`);
      await shopper.getByRole('button', { name: '在线客服' }).waitFor();

      // The agent sees the shopper on the site (with the page) and invites them.
      await agent.getByRole('button', { name: '访客与排队' }).click();
      const row = agent.locator('table.online tr', { hasText: '商品详情页' });
      await row.waitFor({ timeout: 15_000 });
      await agent.screenshot({ path: `${shots}/agent-visitors-zh-CN-desktop.png` });
      await row.getByRole('button', { name: '邀请会话' }).click();
      // The invitation opens the chat panel on the site; the agent is back in the chat view.
      const chat = shopper.frameLocator('iframe[title="在线客服"]');
      await chat.getByRole('status').filter({ hasText: '为您服务' }).waitFor({ timeout: 15_000 });
      await agent.locator('.composer').waitFor();

      // A team quick reply goes into the draft and out.
      await agent.getByRole('button', { name: '常用语' }).click();
      await agent.getByRole('button', { name: /问候语/ }).click();
      await expect.poll(() => agent.locator('#composer').inputValue()).toBe('您好，很高兴为您服务');
      await agent.locator('#composer').press('Enter');
      await chat.locator('.line.agent .bubble', { hasText: '很高兴为您服务' }).waitFor();

      // An image from the agent shows as an image on the site.
      const png = Buffer.from(
        'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAGUlEQVR42mNk+M9Qz0AEYBxVSF+FAAA7YwX1xBNYMwAAAABJRU5ErkJggg==',
        'base64',
      );
      await agent
        .locator('[data-test=attach]')
        .setInputFiles({ name: '发票.png', mimeType: 'image/png', buffer: png });
      const img = chat.locator('.line.agent img[alt="发票.png"]');
      await img.waitFor({ timeout: 15_000 });
      await expect.poll(() => img.evaluate((el) => (el as HTMLImageElement).naturalWidth)).toBe(16);
      // The shopper sends a file back.
      await chat
        .locator('input[type=file]')
        .setInputFiles({ name: 'order.txt', mimeType: 'text/plain', buffer: Buffer.from('order 42') });
      await agent.locator('.line.visitor .attachment', { hasText: 'order.txt' }).waitFor();
      await chat.getByPlaceholder('请输入您的问题').fill('图片收到了');
      await chat.getByPlaceholder('请输入您的问题').press('Enter');
      await agent.locator('.line.visitor .bubble', { hasText: '图片收到了' }).waitFor();
      await shopper.screenshot({ path: `${shots}/visitor-embedded-zh-CN-desktop.png` });
      // The pages visited show in the visitor profile.
      await agent.getByText('访客资料').click();
      await agent.locator('.trail', { hasText: '商品详情页' }).waitFor();
      await agent.screenshot({ path: `${shots}/agent-attachments-zh-CN-desktop.png` });

      // Keyboard: Alt+Q toggles the quick replies.
      await agent.locator('#composer').focus();
      await agent.keyboard.press('Alt+KeyQ');
      await agent.getByRole('dialog', { name: '常用语' }).waitFor();
      await agent.keyboard.press('Alt+KeyQ');
      await expect.poll(() => agent.getByRole('dialog', { name: '常用语' }).count()).toBe(0);

      // The CRM tab shows the tenant's CRM page with this chat's identifiers, URL-encoded.
      // (The CRM setting reaches a signed-in console with its next configuration load: reload.)
      await agent.reload();
      await agent.locator('.sessions li').first().waitFor();
      await agent.locator('.sessions li', { hasText: '图片收到了' }).locator('button.session').click();
      await agent.getByText('CRM').click();
      const frame = agent.locator('.crm iframe');
      await frame.waitFor();
      expect(await frame.getAttribute('src')).toMatch(
        /^https:\/\/crm\.example\.com\/customer\?visitor=v[^&]+&agent=agent1&name=Visitor%20/,
      );

      // Transfer to a colleague, who accepts; the chat leaves this workspace and goes on there.
      const agent2 = await agentPage(DESKTOP, 'zh-CN', 'agent2@demo.test');
      await agent.locator('[data-test=transfer]').focus();
      await agent
        .locator('[data-test=transfer] option', { hasText: /Agent 2（在线/ })
        .waitFor({ state: 'attached' });
      await agent.locator('[data-test=transfer]').selectOption('a:agent2');
      await agent2.getByRole('button', { name: '接受' }).click({ timeout: 15_000 });
      await agent2.locator('.sessions li', { hasText: '图片收到了' }).locator('button.session').click();
      await expect.poll(() => agent.locator('.sessions li', { hasText: '图片收到了' }).count()).toBe(0);
      await chat.getByRole('status').filter({ hasText: 'Agent 2' }).waitFor({ timeout: 15_000 });
      await agent2.locator('#composer').fill('我是 Agent 2，继续为您处理');
      await agent2.locator('#composer').press('Enter');
      await chat.locator('.line.agent .bubble', { hasText: '继续为您处理' }).waitFor();

      // Close (a tag is required by now), then find the chat in the history with its transcript.
      await agent2.locator('[data-test=add-tag]').selectOption('refund');
      agent2.once('dialog', (d) => void d.accept());
      await agent2.getByRole('button', { name: '结束会话' }).click();
      await agent2.getByText('会话已结束').last().waitFor();
      // The agent who closed it finds it in their history (agents see their own sessions).
      await agent2.getByRole('button', { name: '历史会话' }).click();
      await agent2.getByRole('button', { name: '查询' }).click();
      await agent2.locator('.history-list tbody tr').first().getByRole('button').click();
      await agent2.locator('.transcript .bubble', { hasText: '很高兴为您服务' }).waitFor();
      await agent2.locator('.transcript img[alt="发票.png"]').waitFor();
      await agent2.locator('.transcript .bubble', { hasText: '继续为您处理' }).waitFor();
      await agent2.screenshot({ path: `${shots}/agent-history-zh-CN-desktop.png` });
      await agent2.setViewportSize(PHONE);
      await agent2.screenshot({ path: `${shots}/agent-history-zh-CN-phone.png` });
      await agent2.close();
      await agent.getByRole('button', { name: '访客与排队' }).click();
      await agent.screenshot({ path: `${shots}/agent-visitors-zh-CN-phone.png` });
      await shopper.setViewportSize(PHONE);
      await shopper.screenshot({ path: `${shots}/visitor-embedded-zh-CN-phone.png` });
    } finally {
      await new Promise((r) => site.close(r));
    }
  }, 90_000);

  it('console - admin mode: routing priority by drag, holidays, members, settings, live read-only view', async () => {
    const admin = await agentPage(DESKTOP, 'zh-CN', 'admin@demo.test');
    await admin.getByRole('button', { name: '管理员模式' }).click();
    await admin.locator('[data-section=routing]').click();
    const before = (await adminApi<{ routing: { priority: string[] } }>('GET', '/v1/admin/config')).routing
      .priority;
    // Drag the first kind to the last place.
    const items = admin.locator('.priority li');
    await items.first().dragTo(items.last());
    await admin
      .locator('#new-holiday')
      .waitFor({ state: 'detached' })
      .catch(() => undefined);
    await admin.getByLabel('设置上下班时间（不设置则全天为上班时间）').check();
    await admin.locator('#new-holiday').fill('2026-10-01');
    await admin.getByRole('button', { name: '添加节假日' }).click();
    await admin.screenshot({ path: `${shots}/admin-routing-zh-CN-desktop.png`, fullPage: true });
    await admin.getByRole('button', { name: '保存' }).click();
    await admin.getByRole('status').filter({ hasText: '已保存' }).waitFor();
    const after = (
      await adminApi<{ routing: { priority: string[]; workingHours?: { holidays: string[] } } }>(
        'GET',
        '/v1/admin/config',
      )
    ).routing;
    expect(after.priority).toEqual([...before.slice(1), before[0]]);
    expect(after.workingHours?.holidays).toEqual(['2026-10-01']);

    // A new member.
    await admin.locator('[data-section=members]').click();
    await admin.getByLabel('成员 ID').first().fill('agent9');
    await admin.getByPlaceholder('名称').first().fill('小王');
    await admin.getByPlaceholder('邮箱').fill('agent9@demo.test');
    await admin.getByPlaceholder('密码').fill('agent9-password');
    await admin.getByRole('button', { name: '添加成员' }).click();
    await admin.locator('[data-member=agent9]').waitFor();
    await admin.screenshot({ path: `${shots}/admin-members-zh-CN-desktop.png`, fullPage: true });
    const members = await adminApi<Array<{ memberId: string; name: string }>>('GET', '/v1/admin/members');
    expect(members.find((m) => m.memberId === 'agent9')?.name).toBe('小王');

    // Settings: a bad value is refused with the field named; a good one is saved.
    await admin.locator('[data-section=settings]').click();
    await admin.getByLabel('访客不回复自动结束（分钟，0 为关闭）').fill('2');
    await admin.getByLabel('结束前提醒（分钟）').fill('3');
    await admin.getByRole('button', { name: '保存' }).click();
    await admin.getByRole('alert').filter({ hasText: 'warnBeforeMin' }).waitFor();
    await admin.getByLabel('结束前提醒（分钟）').fill('1');
    await admin.getByLabel('转接等待时间（秒）').fill('90');
    await admin.getByRole('button', { name: '保存' }).click();
    await admin.getByRole('status').filter({ hasText: '已保存' }).waitFor();
    expect(
      (await adminApi<{ settings: { transferTimeoutSec: number } }>('GET', '/v1/admin/config')).settings
        .transferTimeoutSec,
    ).toBe(90);

    // Live view: an agent's chat, watched read-only as it goes on.
    const visitor = await newPage(PHONE, 'zh-CN');
    await visitor.goto(`${env.url}/chat.html?tenant=demo`);
    await visitor
      .getByRole('status')
      .filter({ hasText: /为您服务|排队/ })
      .waitFor({ timeout: 15_000 });
    await visitor.getByPlaceholder('请输入您的问题').fill('第一条');
    await visitor.keyboard.press('Enter');
    await admin.locator('[data-section=live]').click();
    const vid = await visitor.evaluate(() => localStorage.getItem('sb.visitor.demo') ?? '');
    await admin
      .locator('.live-sessions .chip-btn', { hasText: `Visitor ${vid.slice(-4)}` })
      .click({ timeout: 15_000 });
    await admin.locator('.watch .transcript .bubble', { hasText: '第一条' }).waitFor();
    await visitor.getByPlaceholder('请输入您的问题').fill('第二条，实时');
    await visitor.keyboard.press('Enter');
    await admin.locator('.watch .transcript .bubble', { hasText: '第二条，实时' }).waitFor();
    await admin.screenshot({ path: `${shots}/admin-live-zh-CN-desktop.png`, fullPage: true });
    await admin.setViewportSize(PHONE);
    await admin.screenshot({ path: `${shots}/admin-live-zh-CN-phone.png` });
    await admin.setViewportSize(DESKTOP);
    // English throughout the admin mode too.
    await admin.locator('.topbar select').last().selectOption('en');
    await admin.locator('[data-section=routing]').click();
    await admin.getByRole('heading', { name: 'Routing rules' }).waitFor();
    await admin.screenshot({ path: `${shots}/admin-routing-en-desktop.png`, fullPage: true });
  }, 90_000);
});
