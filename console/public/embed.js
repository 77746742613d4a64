/*
 * Switchboard web chat: one line on any page.
 *
 *   <script src="https://desk.example.com/embed.js" data-tenant="demo" data-entry="sales" async></script>
 *
 * Attributes: data-tenant (required), data-entry (entry / skill-group parameter), data-lang
 * (zh-CN | en; default: the browser's), data-label (button text). Adds a chat button; the chat
 * window opens in a panel (desktop) or full screen (phones). The window connects at once, hidden,
 * so the visitor's pages reach the agents (browsing trail, "on the site now") and an agent can
 * start a chat (proactive invitation opens the panel). No cookies; the visitor id lives in the
 * chat window's own storage.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || window.__switchboardChat) return;
  window.__switchboardChat = true;
  var base = new URL(script.src, location.href);
  var tenant = script.getAttribute('data-tenant') || 'demo';
  var entry = script.getAttribute('data-entry') || '';
  var lang = script.getAttribute('data-lang') || navigator.language || 'zh-CN';
  var zh = lang.toLowerCase().indexOf('zh') === 0;
  var label = script.getAttribute('data-label') || (zh ? '在线客服' : 'Chat with us');
  var closeLabel = zh ? '收起聊天窗口' : 'Close chat';

  var q = new URLSearchParams({
    tenant: tenant,
    lang: zh ? 'zh-CN' : 'en',
    embed: '1',
    origin: location.origin,
  });
  if (entry) q.set('entry', entry);
  var frame = document.createElement('iframe');
  frame.src = base.origin + '/chat.html?' + q.toString();
  frame.title = label;
  frame.setAttribute('allow', 'clipboard-write');
  frame.style.cssText =
    'position:fixed;z-index:2147483646;border:0;background:#fff;display:none;' +
    'box-shadow:0 12px 40px rgba(16,42,67,.25);border-radius:12px;';

  var button = document.createElement('button');
  button.type = 'button';
  button.textContent = label;
  button.setAttribute('aria-expanded', 'false');
  button.style.cssText =
    'position:fixed;z-index:2147483647;right:20px;bottom:20px;padding:12px 20px;border:0;' +
    'border-radius:24px;background:#1a66d9;color:#fff;font:600 15px system-ui,sans-serif;' +
    'box-shadow:0 6px 20px rgba(26,102,217,.35);cursor:pointer;';

  var open = false;
  function layout() {
    var phone = window.innerWidth < 720;
    frame.style.right = phone ? '0' : '20px';
    frame.style.bottom = phone ? '0' : '80px';
    frame.style.width = phone ? '100%' : '380px';
    frame.style.height = phone ? '100%' : 'min(600px, calc(100vh - 100px))';
    frame.style.borderRadius = phone ? '0' : '12px';
    button.style.display = phone && open ? 'none' : 'block';
  }
  function setOpen(v) {
    open = v;
    frame.style.display = v ? 'block' : 'none';
    button.textContent = v ? closeLabel : label;
    button.setAttribute('aria-expanded', String(v));
    layout();
    if (v) post({ type: 'sb:open' });
  }
  function post(msg) {
    if (frame.contentWindow) frame.contentWindow.postMessage(msg, base.origin);
  }
  function page() {
    post({ type: 'sb:page', url: location.href, title: document.title });
  }

  button.addEventListener('click', function () {
    setOpen(!open);
  });
  window.addEventListener('resize', layout);
  window.addEventListener('message', function (e) {
    if (e.origin !== base.origin || e.source !== frame.contentWindow || !e.data) return;
    if (e.data.type === 'sb:invited') setOpen(true);
    if (e.data.type === 'sb:close') setOpen(false);
  });
  frame.addEventListener('load', function () {
    // The window connects after it loads; give it a moment, then report the page.
    setTimeout(page, 500);
  });
  // Single-page sites: report every route change too.
  ['pushState', 'replaceState'].forEach(function (name) {
    var orig = history[name];
    history[name] = function () {
      var r = orig.apply(this, arguments);
      setTimeout(page, 0);
      return r;
    };
  });
  window.addEventListener('popstate', page);

  function mount() {
    document.body.appendChild(frame);
    document.body.appendChild(button);
    layout();
  }
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
})();
