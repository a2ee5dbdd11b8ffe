// The emulated channel, drawn like Slack draws it. State arrives as
// Server-Sent Events from /page/events (the emulator's record of the
// channel: every message with its current blocks, thread replies, edits);
// buttons and the slash-command box POST to /page/click and /page/command,
// which act as the page's user through the emulator, so the app receives
// them over Socket Mode exactly as it would from Slack.
"use strict";

(function () {
  let state = null;
  const pending = new Set(); // buttons clicked and waiting for the app's ack

  const $ = (id) => document.getElementById(id);

  // ---- text --------------------------------------------------------------

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  // Slack escapes &, < and > in message text; undo that before HTML-escaping.
  function unent(s) {
    return String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }
  function userName(id) {
    return (state && state.users && state.users[id]) || id;
  }

  // special renders what Slack writes between < and >: mentions, channel
  // links, dates, links.
  function special(inner) {
    const bar = inner.indexOf("|");
    const head = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? inner.slice(bar + 1) : "";
    if (head.startsWith("@")) {
      return '<span class="mention">@' + esc(unent(label || userName(head.slice(1)))) + "</span>";
    }
    if (head.startsWith("#")) {
      return '<span class="mention">#' + esc(unent(label || head.slice(1))) + "</span>";
    }
    if (head.startsWith("!subteam^")) {
      return '<span class="mention">' + esc(unent(label || "@" + head.slice(9))) + "</span>";
    }
    if (head.startsWith("!date^")) {
      const secs = Number(head.split("^")[1]);
      if (Number.isFinite(secs)) {
        return esc(new Date(secs * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }));
      }
      return esc(unent(label));
    }
    if (head.startsWith("!")) {
      return '<span class="mention">@' + esc(unent(label || head.slice(1))) + "</span>";
    }
    const url = unent(head);
    if (/^(https?:|mailto:)/i.test(url)) {
      return '<a href="' + esc(url) + '" target="_blank" rel="noopener">' + esc(unent(label || head)) + "</a>";
    }
    return esc(unent(inner));
  }

  // mrkdwn turns Slack's mrkdwn into HTML: ```blocks```, `code`, *bold*,
  // _italic_, ~strike~, <specials>, newlines. Code and specials are set aside
  // as placeholders first, so emphasis may span them ("*after `x`.*") and
  // nothing inside them is formatted.
  function mrkdwn(src) {
    const slots = [];
    const hold = (html) => "\u0001" + (slots.push(html) - 1) + "\u0002";
    let s = String(src);
    s = s.replace(/\n?```([\s\S]*?)```\n?/g, (_, c) => hold("<pre>" + esc(unent(c.replace(/^\n/, ""))) + "</pre>"));
    s = s.replace(/`([^`\n]+)`/g, (_, c) => hold("<code>" + esc(unent(c)) + "</code>"));
    s = s.replace(/<([^<>\n]+)>/g, (_, inner) => hold(special(inner)));
    s = esc(unent(s));
    const before = "(^|[\\s(\\u0002\"'])";
    const after = "(?=$|[\\s.,:;!?)\\u0001\"'])";
    for (const [mark, tag] of [["\\*", "b"], ["_", "i"], ["~", "s"]]) {
      const re = new RegExp(before + mark + "(?=\\S)([^\\n]*?\\S)" + mark + after, "g");
      s = s.replace(re, "$1<" + tag + ">$2</" + tag + ">");
    }
    s = s.replace(/\n/g, "<br>");
    return s.replace(/\u0001(\d+)\u0002/g, (_, i) => slots[Number(i)]);
  }

  function textObject(t) {
    if (!t) return "";
    if (t.type === "mrkdwn") return '<span class="mrkdwn">' + mrkdwn(t.text || "") + "</span>";
    return esc(t.text || "").replace(/\n/g, "<br>");
  }

  // ---- blocks ------------------------------------------------------------

  function el(tag, cls, html) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (html !== undefined) n.innerHTML = html;
    return n;
  }

  function button(msg, blockID, b) {
    const btn = el("button", "btn" + (b.style === "primary" ? " primary" : b.style === "danger" ? " danger" : ""), esc((b.text && b.text.text) || "button"));
    btn.type = "button";
    btn.dataset.actionId = b.action_id || "";
    btn.dataset.blockId = blockID || "";
    btn.dataset.ts = msg.ts;
    const key = msg.ts + "|" + blockID + "|" + b.action_id;
    if (pending.has(key)) btn.disabled = true;
    btn.addEventListener("click", () => press(msg, blockID, b, key));
    return btn;
  }

  function renderBlocks(msg, blocks) {
    const wrap = el("div", "blocks");
    for (const b of blocks) {
      switch (b.type) {
        case "header":
          wrap.appendChild(el("div", "b-header", textObject(b.text)));
          break;
        case "section": {
          const sec = el("div", "b-section");
          sec.dataset.blockId = b.block_id || "";
          const body = el("div", "b-body");
          if (b.text) body.appendChild(el("div", "b-text", textObject(b.text)));
          if (b.fields && b.fields.length) {
            const f = el("div", "b-fields");
            for (const field of b.fields) f.appendChild(el("div", "b-field", textObject(field)));
            body.appendChild(f);
          }
          sec.appendChild(body);
          if (b.accessory) {
            const acc = el("div", "b-accessory");
            if (b.accessory.type === "button") acc.appendChild(button(msg, b.block_id, b.accessory));
            else if (b.accessory.type === "image") acc.innerHTML = '<img src="' + esc(b.accessory.image_url) + '" alt="' + esc(b.accessory.alt_text || "") + '" width="72">';
            sec.appendChild(acc);
          }
          wrap.appendChild(sec);
          break;
        }
        case "context": {
          const c = el("div", "b-context");
          for (const e of b.elements || []) {
            if (e.type === "image") c.appendChild(el("img", "", "")).setAttribute("alt", e.alt_text || "");
            else c.appendChild(el("span", "", textObject(e)));
          }
          wrap.appendChild(c);
          break;
        }
        case "divider":
          wrap.appendChild(el("hr", "b-divider"));
          break;
        case "actions": {
          const a = el("div", "b-actions");
          a.dataset.blockId = b.block_id || "";
          for (const e of b.elements || []) {
            if (e.type === "button") a.appendChild(button(msg, b.block_id, e));
            else a.appendChild(el("span", "b-unknown", "[" + esc(e.type) + "]"));
          }
          wrap.appendChild(a);
          break;
        }
        default:
          wrap.appendChild(el("div", "b-unknown", "[" + esc(b.type) + " block]"));
      }
    }
    return wrap;
  }

  function clock(ts) {
    const d = new Date(parseFloat(ts) * 1000);
    return d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  }

  function avatar(userID, small) {
    const isBot = state && userID === state.team.bot_user_id;
    const name = userName(userID);
    const a = el("div", "avatar" + (small ? " small" : ""), esc(isBot ? "pf" : name.slice(0, 2)));
    if (!isBot) {
      let h = 0;
      for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 360;
      a.style.background = "hsl(" + h + ", 45%, 45%)";
    }
    return a;
  }

  function content(msg) {
    let blocks = msg.blocks;
    if (blocks && blocks.length) return renderBlocks(msg, blocks);
    return el("div", "blocks", '<div class="mrkdwn">' + mrkdwn(msg.text || "") + "</div>");
  }

  function meta(author, msg) {
    const m = el("div", "meta");
    const isBot = author === state.team.bot_user_id;
    m.appendChild(el("span", "who", esc(isBot ? state.team.bot_name : userName(author))));
    if (isBot) m.appendChild(el("span", "app-tag", "APP"));
    m.appendChild(el("span", "time", esc(clock(msg.ts))));
    return m;
  }

  function renderMessage(msg, replies) {
    const row = el("div", "msg");
    row.dataset.ts = msg.ts;
    row.appendChild(avatar(msg.user));
    const body = el("div", "body");
    body.appendChild(meta(msg.user, msg));
    body.appendChild(content(msg));
    if (msg.edits > 0) body.appendChild(el("span", "edited", "(edited)"));
    row.appendChild(body);
    if (replies.length) {
      const th = el("div", "thread");
      th.dataset.threadTs = msg.ts;
      th.appendChild(el("div", "thread-head", replies.length + (replies.length === 1 ? " reply" : " replies")));
      for (const r of replies) {
        const rr = el("div", "reply");
        rr.dataset.ts = r.ts;
        rr.appendChild(avatar(r.user, true));
        const rb = el("div", "body");
        rb.appendChild(meta(r.user, r));
        rb.appendChild(content(r));
        if (r.edits > 0) rb.appendChild(el("span", "edited", "(edited)"));
        rr.appendChild(rb);
        th.appendChild(rr);
      }
      row.appendChild(th);
    }
    return row;
  }

  function renderEphemeral(m) {
    const row = el("div", "msg ephemeral");
    row.dataset.ts = m.ts;
    row.appendChild(avatar(state.team.bot_user_id));
    const body = el("div", "body");
    body.appendChild(meta(state.team.bot_user_id, m));
    body.appendChild(el("div", "ephemeral-note", "Only visible to you"));
    body.appendChild(content(m));
    row.appendChild(body);
    return row;
  }

  function render() {
    if (!state) return;
    document.title = state.title;
    $("team").textContent = state.team.domain || state.team.id;
    const chans = $("channels");
    chans.innerHTML = "";
    for (const c of state.channels || []) {
      const li = el("li", c.id === state.channel.id ? "active" : "", "# " + esc(c.name));
      chans.appendChild(li);
    }
    $("me").innerHTML = state.as
      ? '<span class="dot"></span>' + esc(state.as_name || state.as) + '<span class="role">buttons and commands act as this user</span>'
      : "<i>read-only</i>";
    $("channel-name").textContent = "# " + state.channel.name;
    const conn = $("conn");
    conn.dataset.state = state.connections > 0 ? "up" : "down";
    conn.textContent = state.connections > 0 ? state.team.bot_name + " connected (Socket Mode)" : state.team.bot_name + " not connected";

    const roots = [];
    const replies = {};
    for (const m of state.channel.messages) {
      if (m.deleted) continue;
      if (m.thread_ts && m.thread_ts !== m.ts) (replies[m.thread_ts] = replies[m.thread_ts] || []).push(m);
      else roots.push({ kind: "msg", ts: m.ts, m });
    }
    for (const e of state.ephemerals) roots.push({ kind: "eph", ts: e.ts, m: e });
    roots.sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));

    const list = $("messages");
    list.innerHTML = "";
    if (!roots.length) {
      list.appendChild(el("div", "empty", "Waiting for the bot's first message…"));
    }
    for (const r of roots) {
      list.appendChild(r.kind === "msg" ? renderMessage(r.m, replies[r.ts] || []) : renderEphemeral(r.m));
    }
    $("panel").hidden = !state.panel;
  }

  // ---- actions -----------------------------------------------------------

  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  // confirm shows Block Kit's confirmation dialog; resolves true on confirm.
  function confirm(c) {
    return new Promise((resolve) => {
      $("modal-title").textContent = (c.title && c.title.text) || "Are you sure?";
      $("modal-text").innerHTML = textObject(c.text);
      const ok = $("modal-confirm");
      const deny = $("modal-deny");
      ok.textContent = (c.confirm && c.confirm.text) || "Yes";
      deny.textContent = (c.deny && c.deny.text) || "Cancel";
      ok.className = "btn " + (c.style === "danger" ? "danger" : "primary");
      const back = $("modal-back");
      back.hidden = false;
      const done = (v) => {
        back.hidden = true;
        ok.onclick = deny.onclick = null;
        document.onkeydown = null;
        resolve(v);
      };
      ok.onclick = () => done(true);
      deny.onclick = () => done(false);
      document.onkeydown = (ev) => { if (ev.key === "Escape") done(false); };
      ok.focus();
    });
  }

  async function post(path, body) {
    try {
      const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      return await r.json();
    } catch (err) {
      return { ok: false, error: String(err) };
    }
  }

  async function press(msg, blockID, b, key) {
    if (pending.has(key)) return;
    if (b.confirm && !(await confirm(b.confirm))) return;
    pending.add(key);
    render();
    const r = await post("page/click", { ts: msg.ts, action_id: b.action_id, block_id: blockID || "" });
    pending.delete(key);
    render();
    if (!r.ok) toast("Slack would say: " + r.error);
    if (b.url) window.open(b.url, "_blank", "noopener");
  }

  $("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("composer-input");
    const text = input.value.trim();
    if (!text) return;
    $("composer-send").disabled = true;
    const r = await post("page/command", { text });
    $("composer-send").disabled = false;
    if (r.ok) input.value = "";
    else toast(r.error);
  });

  // ---- live state --------------------------------------------------------

  function connect() {
    const es = new EventSource("page/events");
    es.addEventListener("state", (ev) => {
      state = JSON.parse(ev.data);
      render();
    });
    es.onerror = () => {
      const conn = $("conn");
      conn.dataset.state = "down";
      conn.textContent = "emulator unreachable, retrying…";
    };
  }

  async function panelLoop() {
    for (;;) {
      if (state && state.panel) {
        try {
          const r = await fetch("page/panel", { cache: "no-store" });
          const p = await r.json();
          $("panel-title").textContent = p.title || "Status";
          const ul = $("panel-lines");
          ul.innerHTML = "";
          for (const l of p.lines || []) {
            const li = el("li", "", esc(l.text) + (l.detail ? '<span class="detail">' + esc(l.detail) + "</span>" : ""));
            li.dataset.tone = l.tone || "";
            ul.appendChild(li);
          }
          const pe = $("panel-error");
          pe.hidden = !p.error;
          pe.textContent = p.error || "";
        } catch (err) {
          const pe = $("panel-error");
          pe.hidden = false;
          pe.textContent = "status unavailable: " + err;
        }
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  connect();
  panelLoop();
})();
