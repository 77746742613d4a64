/**
 * The console in a real browser: Debian Chromium driven by playwright-core against a real server.
 * A visitor (one browser context) and an agent (another) chat both ways; the typing preview shows;
 * screenshots of each screen at desktop and phone size go to test-results/screenshots/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
const DESKTOP = { width: 1366, height: 800 };
const PHONE = { width: 390, height: 844 };

describe.runIf(haveChromium)('console in chromium', () => {
  let env: Booted;
  let browser: Browser;
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    await build({
      configFile: `${root}console/vite.config.ts`,
      logLevel: 'warn',
      build: { outDir: `${root}test-results/console-dist` },
    });
    env = await boot({ staticDir: `${root}test-results/console-dist` });
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

  async function agentPage(size: { width: number; height: number }, lang: string): Promise<Page> {
    const ctx = await browser.newContext({ viewport: size, locale: lang });
    const page = await ctx.newPage();
    await page.goto(`${env.url}/`);
    await page.screenshot({ path: `${shots}/agent-login-${lang}-${size.width}.png` });
    await page.getByLabel(/邮箱|Email/).fill('agent1@demo.test');
    await page.getByLabel(/密码|Password/).fill('switchboard');
    await page.getByRole('button', { name: /登录|Sign in/ }).click();
    await page.locator('header').waitFor();
    return page;
  }

  it('console - visitor and agent chat both ways with a live typing preview', async () => {
    const agent = await agentPage(DESKTOP, 'zh-CN');
    const vctx = await browser.newContext({ viewport: PHONE, locale: 'zh-CN' });
    const visitor = await vctx.newPage();
    await visitor.goto(`${env.url}/chat.html?tenant=demo`);
    await visitor.getByText(/为您服务/).waitFor({ timeout: 15_000 });
    await agent.locator('.sessions li button').first().waitFor();

    await visitor.getByPlaceholder('请输入您的问题').pressSequentially('我的订单', { delay: 30 });
    await expect
      .poll(() => agent.locator('.preview').textContent(), { timeout: 10_000 })
      .toContain('我的订单');
    await visitor.keyboard.press('Enter');
    await agent.locator('.line.visitor .bubble', { hasText: '我的订单' }).waitFor();

    await agent.getByLabel(/输入消息/).fill('您好，请提供订单号');
    await agent.keyboard.press('Enter');
    await visitor.locator('.line.agent .bubble', { hasText: '请提供订单号' }).waitFor();
    // Both sides show the message once, acknowledged.
    await expect
      .poll(() => agent.locator('.line.agent .bubble', { hasText: '请提供订单号' }).count())
      .toBe(1);
    await expect.poll(() => agent.getByText('发送中').count()).toBe(0);

    // Recall (within 2 minutes): the visitor's window replaces the text.
    await agent.getByLabel(/输入消息/).fill('错误的价格：10 元');
    await agent.keyboard.press('Enter');
    await visitor.locator('.line.agent .bubble', { hasText: '错误的价格' }).waitFor();
    await agent
      .locator('.line.agent', { hasText: '错误的价格' })
      .getByRole('button', { name: '撤回' })
      .click();
    await visitor.getByText('消息已撤回').waitFor();
    expect(await visitor.locator('.line.agent .bubble', { hasText: '错误的价格' }).count()).toBe(0);

    await agent.screenshot({ path: `${shots}/agent-workspace-zh-CN-desktop.png` });
    await visitor.screenshot({ path: `${shots}/visitor-chat-zh-CN-phone.png` });
    await visitor.setViewportSize(DESKTOP);
    await visitor.screenshot({ path: `${shots}/visitor-chat-zh-CN-desktop.png` });
    await agent.setViewportSize(PHONE);
    await agent.screenshot({ path: `${shots}/agent-workspace-zh-CN-phone.png` });

    await agent.setViewportSize(DESKTOP);
    await agent.getByRole('button', { name: '结束会话' }).click();
    await visitor.getByText('会话已结束').first().waitFor();
    await visitor.screenshot({ path: `${shots}/visitor-closed-zh-CN-desktop.png` });
  }, 90_000);

  it('console - English throughout when chosen', async () => {
    const agent = await agentPage(DESKTOP, 'en');
    await agent.getByText('Current sessions').waitFor();
    await agent.screenshot({ path: `${shots}/agent-workspace-en-desktop.png` });
    const vctx = await browser.newContext({ viewport: PHONE });
    const visitor = await vctx.newPage();
    await visitor.goto(`${env.url}/chat.html?tenant=demo&lang=en`);
    await visitor
      .getByText(/is helping you|Connecting|queue/)
      .first()
      .waitFor({ timeout: 15_000 });
    await visitor.screenshot({ path: `${shots}/visitor-chat-en-phone.png` });
  }, 60_000);
});
