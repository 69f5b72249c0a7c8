/*
 * Web chat widget of the contact centre (vanilla JavaScript, no dependency).
 *
 * Embed:  <script src="https://CONTACT-CENTRE/static/chat/widget.js" data-widget="KEY"
 *                 data-lang="fr" defer></script>
 *
 * The widget lives in a shadow root (the host page's styles do not leak in), talks to
 * /ws/chat/KEY/ over a WebSocket, and keeps its signed visitor token in sessionStorage
 * (data-storage="local" for localStorage) so a reload continues the conversation.
 * Every text comes from the server, translated (config.strings).
 *
 * A message the citizen sends is never lost with the connection: it is shown at once, marked
 * "sending", kept (with its client id, also in storage) until the server's echo names that id,
 * and sent again with the same id after a reconnection, a "not sent" answer (database
 * unavailable), or 10 s without an echo. The server stores one message per client id and
 * answers a repeat with the stored one, so nothing is written twice.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.dataset.widget) { return; }
  var KEY = script.dataset.widget;
  var SRC = new URL(script.src, document.baseURI);
  var BASE = SRC.origin;
  var CSS = SRC.href.replace(/widget(\.[0-9a-f]+)?\.js(\?.*)?$/, "widget.css");
  var LANG = (script.dataset.lang || document.documentElement.lang || "fr").slice(0, 2).toLowerCase();
  var STORE_TOKEN = "ccw:" + KEY + ":token";
  var STORE_OPEN = "ccw:" + KEY + ":open";
  var STORE_OUTBOX = "ccw:" + KEY + ":outbox";
  var AGENT_TYPING_MS = 6000;
  var ACK_TIMEOUT_MS = 10000;  // no echo after this long on an open socket: sent again

  function storage() {
    try {
      var s = script.dataset.storage === "local" ? window.localStorage : window.sessionStorage;
      s.getItem("ccw");
      return s;
    } catch (e) { return null; }
  }
  var store = storage();
  function load(name) { return store ? store.getItem(name) : null; }
  function save(name, value) {
    if (!store) { return; }
    try { if (value === null) { store.removeItem(name); } else { store.setItem(name, value); } } catch (e) { /* full */ }
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) { return; }
      if (name === "text") { node.textContent = value; } else if (name === "class") { node.className = value; } else { node.setAttribute(name, value === true ? "" : value); }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }
  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (_m, name) { return values[name] !== undefined ? values[name] : ""; });
  }
  function newId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  var config = null;
  var S = {};        // the interface strings
  var ui = {};       // elements
  var ws = null;
  var state = "closed-socket";  // prechat | bot | waiting | chatting | ended
  var agent = "";
  var seen = {};
  var retry = 0;
  var reconnectTimer = null;
  var typingSentAt = 0;
  var typingStopTimer = null;
  var agentTypingTimer = null;
  var unavailable = false;
  var userOpened = false;
  var keepFocus = false;  // the citizen acted in the window: the next rendering puts focus back
  var welcomed = false;   // the current socket got its welcome: the conversation is bound
  var outbox = [];        // the citizen's messages not acknowledged yet: {id, text, at, sentAt, retryAt, tries}
  var unsent = {};        // client id -> its element in the log, until acknowledged
  var outboxTimer = null;

  function active() { return ui.root.activeElement; }
  function focusInPanel() { var a = active(); return !!a && ui.panel.contains(a); }

  function build() {
    var host = el("div", { id: "ccw-host-" + KEY });
    document.body.appendChild(host);
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    ui.root = host.shadowRoot ? root : document;
    root.appendChild(el("link", { rel: "stylesheet", href: CSS }));

    ui.launcher = el("button", { type: "button", class: "ccw-launcher", "aria-expanded": "false", "aria-controls": "ccw-panel" }, [
      el("span", { class: "ccw-launcher-icon", "aria-hidden": "true", text: "\uD83D\uDCAC" }),
      el("span", { text: S.launcher }),
      ui.badge = el("span", { class: "ccw-badge", hidden: true, text: S.new_message })
    ]);
    ui.title = el("h2", { id: "ccw-title", class: "ccw-title", text: config.title || S.title });
    ui.close = el("button", { type: "button", class: "ccw-close", "aria-label": S.close, title: S.close }, [
      el("span", { "aria-hidden": "true", text: "\u2212" })
    ]);
    ui.status = el("p", { class: "ccw-status", role: "status", "aria-live": "polite" });
    ui.alert = el("p", { class: "ccw-alert", role: "alert" });

    // Pre-chat form: name and topic.
    ui.name = el("input", { id: "ccw-name", name: "name", type: "text", autocomplete: "name", maxlength: "100", required: true, "aria-required": "true", "aria-describedby": "ccw-name-error" });
    ui.nameError = el("p", { id: "ccw-name-error", class: "ccw-field-error", hidden: true, text: S.required });
    var fields = [
      el("p", { class: "ccw-intro", text: S.prechat_intro }),
      el("div", { class: "ccw-field" }, [el("label", { for: "ccw-name", text: S.name_label }), ui.name, ui.nameError])
    ];
    if (config.topics.length) {
      ui.topic = el("select", { id: "ccw-topic", name: "topic", required: true, "aria-required": "true", "aria-describedby": "ccw-topic-error" },
        [el("option", { value: "", text: "\u2014" })].concat(config.topics.map(function (t) { return el("option", { value: String(t.id), text: t.label }); })));
      ui.topicError = el("p", { id: "ccw-topic-error", class: "ccw-field-error", hidden: true, text: S.required });
      fields.push(el("div", { class: "ccw-field" }, [el("label", { for: "ccw-topic", text: S.topic_label }), ui.topic, ui.topicError]));
    }
    fields.push(el("button", { type: "submit", class: "ccw-primary", text: S.start }));
    ui.prechat = el("form", { class: "ccw-prechat", novalidate: true }, fields);

    ui.log = el("div", { class: "ccw-log", role: "log", "aria-live": "polite", "aria-label": S.log_label, tabindex: "0" });
    ui.choicesLabel = el("p", { id: "ccw-choices-label", class: "ccw-visually-hidden", text: S.choices_label });
    ui.choices = el("div", { class: "ccw-choices", role: "group", "aria-labelledby": "ccw-choices-label", hidden: true });
    ui.typing = el("p", { class: "ccw-typing", hidden: true });

    ui.input = el("textarea", { id: "ccw-input", name: "message", rows: "2", maxlength: String(config.max_length || 2000) });
    ui.composer = el("form", { class: "ccw-composer", novalidate: true }, [
      el("label", { for: "ccw-input", class: "ccw-visually-hidden", text: S.message_label }),
      ui.input,
      el("button", { type: "submit", class: "ccw-primary", text: S.send })
    ]);

    ui.newChat = el("button", { type: "button", class: "ccw-primary", text: S.new });
    ui.surveyBox = el("div", { class: "ccw-survey-box" });
    ui.followBox = el("p", { class: "ccw-follow", hidden: true });
    ui.ended = el("div", { class: "ccw-ended", hidden: true }, [el("p", { text: S.ended }), ui.followBox, ui.surveyBox, ui.newChat]);

    ui.email = el("input", { id: "ccw-email", name: "email", type: "email", autocomplete: "email", required: true, "aria-required": "true" });
    ui.transcriptForm = el("form", { class: "ccw-transcript-form", novalidate: true, hidden: true }, [
      el("label", { for: "ccw-email", text: S.email_label }), ui.email,
      el("button", { type: "submit", class: "ccw-secondary", text: S.transcript_send })
    ]);
    ui.transcriptToggle = el("button", { type: "button", class: "ccw-link", "aria-expanded": "false", text: S.transcript });
    ui.end = el("button", { type: "button", class: "ccw-link", text: S.end });
    ui.footer = el("div", { class: "ccw-footer", hidden: true }, [ui.transcriptToggle, ui.end, ui.transcriptForm]);

    ui.panel = el("section", { id: "ccw-panel", class: "ccw-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "ccw-title", hidden: true }, [
      el("div", { class: "ccw-header" }, [ui.title, ui.close]),
      ui.prechat, ui.log, ui.choicesLabel, ui.choices, ui.typing, ui.status, ui.alert, ui.composer, ui.ended, ui.footer
    ]);
    root.appendChild(el("div", { class: "ccw", lang: config.language }, [ui.panel, ui.launcher]));

    ui.launcher.addEventListener("click", function () { if (ui.panel.hidden) { userOpened = true; open(true); } else { close(); } });
    ui.close.addEventListener("click", close);
    ui.panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { e.preventDefault(); close(); } });
    ui.prechat.addEventListener("submit", submitPrechat);
    ui.composer.addEventListener("submit", function (e) { e.preventDefault(); sendMessage(); });
    ui.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
    });
    ui.input.addEventListener("input", citizenTyping);
    ui.newChat.addEventListener("click", function () { forgetOutbox(); ui.log.textContent = ""; ui.surveyBox.textContent = ""; ui.followBox.textContent = ""; ui.followBox.hidden = true; setState("prechat"); focusFirst(); });
    ui.end.addEventListener("click", function () { send({ type: "end" }); });
    ui.transcriptToggle.addEventListener("click", function () {
      var show = ui.transcriptForm.hidden;
      ui.transcriptForm.hidden = !show;
      ui.transcriptToggle.setAttribute("aria-expanded", String(show));
      if (show) { ui.email.focus(); }
    });
    ui.transcriptForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var email = ui.email.value.trim();
      if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) { showAlert(S.error_email); ui.email.setAttribute("aria-invalid", "true"); ui.email.focus(); return; }
      ui.email.removeAttribute("aria-invalid");
      send({ type: "transcript", email: email });
    });
  }

  // --- Opening and closing ---------------------------------------------------------------
  function open(moveFocus) {
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    ui.badge.hidden = true;
    save(STORE_OPEN, "1");
    if (!ws && !unavailable) { connect(); }
    if (moveFocus) { focusFirst(); }
  }
  function close() {
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    save(STORE_OPEN, null);
    ui.launcher.focus();
  }
  function focusFirst() {
    if (ui.panel.hidden) { return; }
    var target = null;
    if (state === "prechat") { target = ui.name; } else if (state === "bot") { target = ui.choices.querySelector("button"); } else if (state === "waiting" || state === "chatting") { target = ui.input; } else if (state === "ended") { target = ui.surveyBox.querySelector("input[name=ccw-score]") || ui.newChat; }
    (target || ui.close).focus();
  }

  // --- Rendering -------------------------------------------------------------------------
  function setState(next) {
    var before = state;
    state = next;
    var talking = next === "waiting" || next === "chatting";
    ui.prechat.hidden = next !== "prechat";
    ui.log.hidden = next === "prechat";
    ui.choices.hidden = next !== "bot" || !ui.choices.firstChild;
    ui.composer.hidden = !talking;
    ui.ended.hidden = next !== "ended";
    ui.footer.hidden = !(talking || next === "ended");
    ui.end.hidden = !talking;
    ui.transcriptToggle.hidden = !(config.transcripts && ui.transcriptsAllowed !== false);
    if (!ui.transcriptToggle.hidden) { ui.transcriptForm.hidden = ui.transcriptToggle.getAttribute("aria-expanded") !== "true"; } else { ui.transcriptForm.hidden = true; }
    if (next !== "waiting") { ui.status.textContent = ""; }
    if (next !== "chatting") { hideAgentTyping(); }
    if (next === "waiting" && before !== "waiting") { ui.status.textContent = S.waiting; }
    if (next === "prechat") { ui.log.textContent = ""; seen = {}; unsent = {}; }
  }

  // The time a message was written, in the visitor's language (<time datetime> for machines).
  function timeOf(at) {
    var when = at ? new Date(at) : new Date();
    if (isNaN(when.getTime())) { when = new Date(); }
    var shown;
    try { shown = when.toLocaleTimeString(config.language, { hour: "2-digit", minute: "2-digit" }); } catch (e) { shown = String(when.getHours()).padStart(2, "0") + ":" + String(when.getMinutes()).padStart(2, "0"); }
    return el("time", { class: "ccw-time", datetime: when.toISOString(), text: shown });
  }

  function entryElement(entry) {
    var who = entry.kind === "citizen" ? S.you : entry.kind === "bot" ? S.bot : entry.kind === "system" ? "" : (entry.author || S.agent);
    var meta = el("p", { class: "ccw-meta" }, [
      who ? el("span", { class: "ccw-who", text: who }) : null,
      el("span", { class: "ccw-visually-hidden", text: (who ? ", " : "") + S.sent_at + " " }),
      timeOf(entry.at)
    ]);
    return el("div", { class: "ccw-msg ccw-msg--" + entry.kind }, [
      meta,
      el("p", { class: "ccw-text", text: entry.text })
    ]);
  }

  function addEntry(entry) {
    if (entry.client_id && acknowledged(entry)) { return; }
    if (seen[entry.id]) { return; }
    seen[entry.id] = true;
    var item = entryElement(entry);
    ui.log.appendChild(item);
    ui.log.scrollTop = ui.log.scrollHeight;
    if (entry.kind === "agent") {
      hideAgentTyping();
      if (ui.panel.hidden) { ui.badge.hidden = false; }
    }
  }
  function systemLine(text) { addEntry({ id: "s" + newId(), kind: "system", text: text }); }

  function renderAsk(ask) {
    var hadFocus = keepFocus || focusInPanel();
    ui.choices.textContent = "";
    if (!ask) { ui.choices.hidden = true; return; }
    ask.options.forEach(function (option) {
      var button = el("button", { type: "button", class: "ccw-choice", "data-key": option.key, text: option.label });
      button.addEventListener("click", function () {
        Array.prototype.forEach.call(ui.choices.querySelectorAll("button"), function (b) { b.disabled = true; });
        keepFocus = true;
        send({ type: "choose", key: option.key, node: ask.node });
      });
      ui.choices.appendChild(button);
    });
    ui.choices.hidden = state !== "bot";
    if (hadFocus && state === "bot") { keepFocus = false; focusFirst(); }
  }

  function renderQueue(frame) {
    var parts = [];
    if (frame.position === 1) { parts.push(S.position_next); } else if (frame.position) { parts.push(fill(S.position, { n: frame.position })); }
    if (typeof frame.wait_seconds === "number") {
      var minutes = Math.ceil(frame.wait_seconds / 60);
      parts.push(frame.wait_seconds < 60 ? S.wait_less_minute : minutes === 1 ? S.wait_one_minute : fill(S.wait_minutes, { n: minutes }));
    }
    ui.status.textContent = parts.length ? parts.join(" ") : S.waiting;
  }

  function showAlert(text) {
    ui.alert.textContent = "";
    window.setTimeout(function () { ui.alert.textContent = text; }, 50);
  }

  function showAgentTyping(name) {
    var who = name || agent;
    ui.typing.textContent = who ? fill(S.agent_typing, { name: who }) : S.agent_typing_anonymous;
    ui.typing.hidden = false;
    window.clearTimeout(agentTypingTimer);
    agentTypingTimer = window.setTimeout(hideAgentTyping, AGENT_TYPING_MS);
  }
  function hideAgentTyping() { window.clearTimeout(agentTypingTimer); ui.typing.hidden = true; }

  // --- "Follow my request" (publicquality/): the link to the request's public page -----------
  function renderFollow(frame) {
    if (!frame.path || !frame.text) { return; }
    ui.followBox.textContent = "";
    ui.followBox.appendChild(el("a", { href: BASE + frame.path, target: "_blank", rel: "noopener noreferrer", text: frame.text }));
    ui.followBox.hidden = false;
  }

  // --- The satisfaction survey (surveys/): 1 to 5 and a comment, once the chat has ended ---
  function renderSurvey(survey) {
    if (!survey || !survey.path) { return; }
    var T = survey.strings || {};
    var hadFocus = keepFocus || focusInPanel();
    ui.surveyBox.textContent = "";
    var scores = [1, 2, 3, 4, 5].map(function (n) {
      var input = el("input", { type: "radio", name: "ccw-score", id: "ccw-score-" + n, value: String(n), "aria-describedby": "ccw-survey-error" });
      return el("label", { class: "ccw-score", for: "ccw-score-" + n }, [
        input,
        el("span", { "aria-hidden": "true", text: String(n) }),
        el("span", { class: "ccw-visually-hidden", text: T.scores ? T.scores[n - 1] : String(n) })
      ]);
    });
    var error = el("p", { id: "ccw-survey-error", class: "ccw-field-error", hidden: true, text: T.required });
    var comment = el("textarea", { id: "ccw-survey-comment", name: "comment", rows: "2", maxlength: "2000" });
    var form = el("form", { class: "ccw-survey", novalidate: true }, [
      el("fieldset", {}, [
        el("legend", { text: survey.question }),
        el("div", { class: "ccw-scores" }, scores),
        el("p", { class: "ccw-scale", "aria-hidden": "true" }, [
          el("span", { text: T.scores ? T.scores[0] : "" }),
          el("span", { text: T.scores ? T.scores[4] : "" })
        ]),
        error
      ]),
      el("label", { for: "ccw-survey-comment", text: T.comment_label }),
      comment,
      el("button", { type: "submit", class: "ccw-secondary", text: T.send })
    ]);
    var done = function (text) {
      ui.surveyBox.textContent = "";
      var note = el("p", { class: "ccw-survey-done", role: "status", tabindex: "-1", text: text });
      ui.surveyBox.appendChild(note);
      note.focus();
    };
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var chosen = form.querySelector("input[name=ccw-score]:checked");
      error.hidden = !!chosen;
      if (!chosen) {
        form.querySelector("fieldset").setAttribute("aria-invalid", "true");
        form.querySelector("input[name=ccw-score]").focus();
        return;
      }
      var button = form.querySelector("button");
      button.disabled = true;
      var body = new URLSearchParams({ score: chosen.value, comment: comment.value.trim() });
      fetch(BASE + survey.path, { method: "POST", body: body, credentials: "omit" })
        .then(function (r) { return r.json().catch(function () { return { ok: false }; }); })
        .then(function (data) {
          if (data.ok) { done(T.thanks); } else if (data.error === "already_answered") { done(T.already); } else if (data.error === "expired") { done(T.expired); } else { button.disabled = false; showAlert(T.error); }
        })
        .catch(function () { button.disabled = false; showAlert(T.error); });
    });
    ui.surveyBox.appendChild(form);
    if (hadFocus && state === "ended") { keepFocus = false; focusFirst(); }
  }

  // --- Actions of the citizen ------------------------------------------------------------
  function submitPrechat(e) {
    e.preventDefault();
    var ok = true;
    var name = ui.name.value.trim();
    ui.nameError.hidden = !!name;
    if (name) { ui.name.removeAttribute("aria-invalid"); } else { ui.name.setAttribute("aria-invalid", "true"); ok = false; }
    var topic = null;
    if (ui.topic) {
      topic = ui.topic.value;
      ui.topicError.hidden = !!topic;
      if (topic) { ui.topic.removeAttribute("aria-invalid"); } else { ui.topic.setAttribute("aria-invalid", "true"); ok = false; }
    }
    if (!ok) { (name ? ui.topic : ui.name).focus(); return; }
    send({ type: "start", name: name, topic: topic });
  }

  function sendMessage() {
    var text = ui.input.value.trim();
    if (!text) { return; }
    var message = { id: newId(), text: text, at: new Date().toISOString(), sentAt: 0, retryAt: 0, tries: 0 };
    outbox.push(message);
    saveOutbox();
    transmit(message);
    ui.input.value = "";
    typingSentAt = 0;
    window.clearTimeout(typingStopTimer);
  }

  function citizenTyping() {
    if (state !== "chatting") { return; }
    var now = Date.now();
    if (now - typingSentAt > 2000) { send({ type: "typing", typing: true }); typingSentAt = now; }
    window.clearTimeout(typingStopTimer);
    typingStopTimer = window.setTimeout(function () { send({ type: "typing", typing: false }); typingSentAt = 0; }, 3000);
  }

  // --- The citizen's unacknowledged messages ------------------------------------------------
  function saveOutbox() {
    save(STORE_OUTBOX, outbox.length ? JSON.stringify(outbox.map(function (m) { return { id: m.id, text: m.text, at: m.at }; })) : null);
  }
  function loadOutbox() {
    var kept;
    try { kept = JSON.parse(load(STORE_OUTBOX) || "[]"); } catch (e) { kept = []; }
    if (!Array.isArray(kept)) { return []; }
    return kept.filter(function (m) { return m && typeof m.id === "string" && typeof m.text === "string"; })
      .map(function (m) { return { id: m.id, text: m.text, at: m.at, sentAt: 0, retryAt: 0, tries: 0 }; });
  }
  function forgetOutbox() { outbox = []; unsent = {}; saveOutbox(); }
  function outboxItem(id) {
    for (var i = 0; i < outbox.length; i++) { if (outbox[i].id === id) { return outbox[i]; } }
    return null;
  }

  // The message in the log, with a line saying where it is (in words: "sending", "not sent
  // yet", "not sent: why"), until the server acknowledges it.
  function showUnsent(message, line, failed) {
    var item = unsent[message.id];
    if (!item) {
      item = entryElement({ kind: "citizen", text: message.text, at: message.at });
      item.appendChild(el("p", { class: "ccw-delivery" }));
      ui.log.appendChild(item);
      ui.log.scrollTop = ui.log.scrollHeight;
      unsent[message.id] = item;
    }
    item.className = "ccw-msg ccw-msg--citizen " + (failed ? "ccw-msg--failed" : "ccw-msg--unsent");
    item.querySelector(".ccw-delivery").textContent = line;
  }

  // The server's entry for one of our messages: it is stored. Returns true when the message
  // was already in the log (then marked sent in place, where the citizen wrote it).
  function acknowledged(entry) {
    var before = outbox.length;
    outbox = outbox.filter(function (m) { return m.id !== entry.client_id; });
    if (outbox.length !== before) { saveOutbox(); }
    var item = unsent[entry.client_id];
    if (!item) { return false; }
    delete unsent[entry.client_id];
    if (item.classList.contains("ccw-msg--failed")) { return false; }
    seen[entry.id] = true;
    item.className = "ccw-msg ccw-msg--citizen";
    var line = item.querySelector(".ccw-delivery");
    if (line) { line.parentNode.removeChild(line); }
    var stamp = item.querySelector("time.ccw-time");
    if (stamp) { stamp.parentNode.replaceChild(timeOf(entry.at), stamp); }
    return true;
  }

  function transmit(message) {
    if (ws && ws.readyState === 1 && welcomed) {
      ws.send(JSON.stringify({ type: "message", text: message.text, id: message.id }));
      message.sentAt = Date.now();
      message.retryAt = 0;
      showUnsent(message, S.sending);
    } else {
      message.sentAt = 0;
      showUnsent(message, S.not_sent_yet);
      if (!ws && !unavailable) { connect(); }
    }
    if (!outboxTimer) { outboxTimer = window.setInterval(outboxTick, 1000); }
  }
  function outboxTick() {
    if (!outbox.length) { window.clearInterval(outboxTimer); outboxTimer = null; return; }
    if (!(ws && ws.readyState === 1 && welcomed)) { return; }
    var now = Date.now();
    outbox.forEach(function (m) {
      if ((m.retryAt && now >= m.retryAt) || (m.sentAt && now - m.sentAt > ACK_TIMEOUT_MS)) { transmit(m); }
    });
  }
  // After a welcome: every message still unacknowledged goes again, in the order written.
  function flushOutbox() { outbox.forEach(transmit); }
  function notSentYet() { outbox.forEach(function (m) { m.sentAt = 0; showUnsent(m, S.not_sent_yet); }); }

  // The server answered about one of our messages.
  function messageRefused(message, frame) {
    if (frame.code === "not_sent" || frame.code === "rate_limited") {  // not stored: later
      message.tries += 1;
      message.sentAt = 0;
      message.retryAt = Date.now() + (frame.retry_after ? frame.retry_after * 1000 : Math.min(10000, 2000 * Math.pow(2, message.tries - 1)));
      showUnsent(message, S.not_sent_yet);
      if (frame.code === "rate_limited") { showAlert(S.error_rate_limited); }
      return;
    }
    // Refused for good (too long, the conversation is over): said under it, never retried;
    // the text goes back into the box when the citizen can still write.
    outbox = outbox.filter(function (m) { return m.id !== message.id; });
    saveOutbox();
    showUnsent(message, fill(S.not_sent, { reason: S["error_" + frame.code] || S.error_generic }), true);
    if (!ui.composer.hidden && !ui.input.value) { ui.input.value = message.text; }
    showAlert(S["error_" + frame.code] || S.error_generic);
  }

  // --- The socket ------------------------------------------------------------------------
  var pending = [];  // frames the citizen sent while the socket was (re)connecting
  function send(frame) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return; }
    if (frame.type !== "typing" && frame.type !== "hello") {
      pending.push(frame);
      if (!ws && !unavailable) { connect(); }
    }
  }

  function connect() {
    window.clearTimeout(reconnectTimer);
    var url = BASE.replace(/^http/, "ws") + config.socket_path;
    ws = new WebSocket(url);
    welcomed = false;
    ws.onopen = function () {
      send({ type: "hello", token: load(STORE_TOKEN), lang: config.language });
      pending.splice(0).forEach(send);
    };
    ws.onmessage = function (e) {
      var frame;
      try { frame = JSON.parse(e.data); } catch (err) { return; }
      handle(frame);
    };
    ws.onclose = function (e) {
      ws = null;
      welcomed = false;
      if (e.code === 4401) { pending = []; forgetOutbox(); save(STORE_TOKEN, null); setState("prechat"); connect(); return; }
      notSentYet();
      if (e.code === 4403 || e.code === 4404) { unavailable = true; showAlert(S.error_unavailable); return; }
      ui.status.textContent = S.reconnecting;
      // 1013: the server could not read the conversation (database restarting): soon again.
      var delay = e.code === 4429 ? 30000 : Math.min(e.code === 1013 ? 5000 : 30000, 1000 * Math.pow(2, retry++));
      reconnectTimer = window.setTimeout(connect, delay);
    };
  }

  function handle(frame) {
    switch (frame.type) {
      case "welcome":
        retry = 0;
        if (frame.token) { save(STORE_TOKEN, frame.token); }
        if (frame.state === "prechat") {
          forgetOutbox();
          if (state !== "prechat") { setState("prechat"); if (focusInPanel()) { focusFirst(); } }
          return;
        }
        welcomed = true;
        var first = state === "prechat" || state === "closed-socket";
        if (ui.status.textContent === S.reconnecting) { ui.status.textContent = ""; }
        ui.transcriptsAllowed = frame.transcripts;
        agent = frame.agent || "";
        (frame.entries || []).forEach(addEntry);
        renderAsk(frame.ask);
        setState(frame.state);
        if (frame.survey && !ui.surveyBox.firstChild) { renderSurvey(frame.survey); }
        if (frame.queue) { renderQueue(frame.queue); }
        if (first && userOpened) { focusFirst(); }
        flushOutbox();  // after its entries: those they acknowledge are not sent again
        return;
      case "entry":
        addEntry(frame.entry);
        return;
      case "ask":
        renderAsk(frame.ask);
        return;
      case "state":
        if (frame.state === "chatting" && state !== "chatting") {
          agent = frame.agent || "";
          systemLine(agent ? fill(S.agent_joined, { name: agent }) : S.agent_joined_anonymous);
        }
        if (frame.state !== state) {
          var hadFocus = keepFocus || focusInPanel();
          keepFocus = false;
          setState(frame.state);
          var now = active();
          if (hadFocus && (frame.state === "ended" || !focusInPanel() || (now && (now.disabled || now.offsetParent === null)))) { focusFirst(); }
        }
        return;
      case "queue":
        if (state === "waiting") { renderQueue(frame); }
        return;
      case "survey":
        renderSurvey(frame.survey);
        return;
      case "follow":
        renderFollow(frame);
        return;
      case "typing":
        if (frame.typing) { showAgentTyping(frame.name); } else { hideAgentTyping(); }
        return;
      case "transcript":
        ui.status.textContent = fill(S.transcript_sent, { email: frame.email || "" });
        ui.transcriptForm.hidden = true;
        ui.transcriptToggle.setAttribute("aria-expanded", "false");
        ui.transcriptToggle.focus();
        return;
      case "error":
        var refused = frame.id ? outboxItem(frame.id) : null;
        if (refused) { messageRefused(refused, frame); return; }
        showAlert(S["error_" + frame.code] || S.error_generic);
        Array.prototype.forEach.call(ui.choices.querySelectorAll("button"), function (b) { b.disabled = false; });
        return;
      default:
        return;
    }
  }

  // --- Start -----------------------------------------------------------------------------
  function start() {
    var url = BASE + "/chat/widget/" + encodeURIComponent(KEY) + "/config.json?lang=" + encodeURIComponent(LANG);
    fetch(url, { credentials: "omit" })
      .then(function (r) { if (!r.ok) { throw new Error("config " + r.status); } return r.json(); })
      .then(function (data) {
        config = data;
        S = data.strings;
        build();
        setState("prechat");
        // What a reload interrupted is sent once the conversation is back (none without one).
        if (load(STORE_TOKEN)) { outbox = loadOutbox(); } else { forgetOutbox(); }
        // Continuity: a conversation in progress reconnects at once, its window as it was.
        if (load(STORE_TOKEN)) {
          if (load(STORE_OPEN)) { open(false); } else { connect(); }
        }
      })
      .catch(function (err) { if (window.console) { window.console.warn("chat widget unavailable:", err); } });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
