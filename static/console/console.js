/* The agent console: renders the state, keeps it live over the WebSocket, and posts the
   agent's actions. No framework, no build step. */
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root) { return; }
  var state = JSON.parse(document.getElementById("console-snapshot").textContent);
  var config = JSON.parse(document.getElementById("console-config").textContent);
  var t = JSON.parse(document.getElementById("console-i18n").textContent);
  var csrf = (document.querySelector("#state-form [name=csrfmiddlewaretoken]") || {}).value;
  var seen = new Set();
  var socket = null, retry = 0, heartbeatTimer = null, typingSent = 0;
  var selectedTab = null, pendingFocus = null, knownOffers = new Set(Object.keys(state.offers));
  var panelVersions = {};
  var announcer = document.getElementById("announcer");
  var statusAnnouncer = document.getElementById("status-announcer");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function announce(text, urgent) {
    var region = urgent ? announcer : statusAnnouncer;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }
  function pref(name) { return window.localStorage.getItem("cc." + name) !== "off"; }
  function post(url, data, passive) {
    var headers = { "X-CSRFToken": csrf, "Accept": "application/json" };
    if (passive) { headers["X-Console-Passive"] = "1"; }
    return fetch(url, { method: "POST", body: data, headers: headers, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/accounts/login/?idle=1"; }
        return r.json().catch(function () { return { ok: r.ok }; });
      });
  }
  // The agent's most frequent actions (answering an offer, closing) go over the console's
  // socket while it is open: no request through the whole middleware chain each. The server
  // answers with what the endpoint would have ({ok, message, ...}); any other action, or any
  // action while the socket is down, is a POST to the same endpoint.
  var SOCKET_ACTIONS = [
    [/^\/console\/offers\/(\d+)\/(accept|decline)\/$/, "offer_id"],
    [/^\/console\/interactions\/(\d+)\/(close)\/$/, "interaction_id"]
  ];
  var pendingAnswers = {}, nextRef = 1;
  function act(url, data) {
    var path = new URL(url, window.location.href).pathname;
    for (var i = 0; i < SOCKET_ACTIONS.length; i++) {
      var match = path.match(SOCKET_ACTIONS[i][0]);
      if (!match || !socket || socket.readyState !== 1) { continue; }
      var ref = nextRef++;
      var message = { type: "action", ref: ref, action: match[2] };
      message[SOCKET_ACTIONS[i][1]] = parseInt(match[1], 10);
      ["code", "notes"].forEach(function (name) {
        if (data && data.has(name)) { message[name] = String(data.get(name)); }
      });
      return new Promise(function (resolve, reject) {
        // No answer (the socket dropped, the server is stalled): the caller re-reads the truth.
        var timer = window.setTimeout(function () { failAnswer(ref); }, 15000);
        pendingAnswers[ref] = { resolve: resolve, reject: reject, timer: timer };
        socket.send(JSON.stringify(message));
      });
    }
    return post(url, data);
  }
  function failAnswer(ref) {
    var pending = pendingAnswers[ref];
    if (!pending) { return; }
    delete pendingAnswers[ref];
    window.clearTimeout(pending.timer);
    pending.reject(new Error("no answer"));
  }
  function getHtml(url) {
    return fetch(url, { headers: { "X-Console-Passive": "1" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); });
  }

  // The channel's pictogram (decorative: the channel is always written beside it).
  function channelIcon(channel) {
    var icons = document.getElementById("channel-icons");
    var icon = icons && icons.content.querySelector('[data-channel-icon="' + channel + '"]');
    return icon ? icon.cloneNode(true) : el("span", { "class": "channel-icon", "aria-hidden": "true" });
  }

  /* ---------------------------------------------------------------- presence */
  function renderAgent() {
    var a = state.agent;
    var key = a.state === "paused" ? "paused:" + a.pause_reason : a.state;
    var label = config.labels[key] || config.labels[a.state] || a.state;
    if (a.state === "offline" && a.pause_reason) {
      // Taken offline by the system (e.g. "connection lost"): say why.
      label += " – " + (config.labels["offline:" + a.pause_reason] || a.pause_reason);
    }
    var badge = document.getElementById("state-label");
    badge.textContent = a.state === "paused" ? t.paused + " – " + label : label;
    badge.className = "state-badge state-" + a.state;
    var select = document.getElementById("state-select");
    // Not over the agent's own choice, not sent yet (the select focused, or picked and then
    // Tab to the button): a live event in between would put the current state back, and the
    // button would send that instead of the choice.
    if (document.activeElement !== select && !select.hasAttribute("data-chosen")) {
      // Never blank: a state the agent cannot pick (wrap-up, "missed", set by a supervisor,
      // connection lost) shows as its disabled option; one the page does not know gets one.
      var value = a.state === "paused" || (a.state === "offline" && a.pause_reason)
        ? a.state + ":" + a.pause_reason : a.state;
      select.value = value;
      if (select.value !== value) {
        var extra = el("option", { value: value, disabled: "" }, badge.textContent);
        select.appendChild(extra);
        select.value = value;
      }
    }
    document.querySelectorAll("[data-channel-toggle]").forEach(function (box) {
      box.checked = a.channels.indexOf(box.value) >= 0;
    });
  }
  function tickTimer() {
    var since = Date.parse(state.agent.state_since);
    var s = Math.max(0, Math.floor((Date.now() - since) / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    document.getElementById("state-timer").textContent =
      (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
  }

  /* ---------------------------------------------------------------- offers */
  function citizenOf(summary) { return summary.citizen || t.unknown_citizen; }
  function secondsLeft(offer) { return Math.max(0, Math.round((Date.parse(offer.expires_at) - Date.now()) / 1000)); }
  function sortedOffers() {
    return Object.keys(state.offers).map(function (k) { return state.offers[k]; })
      .filter(function (o) { return secondsLeft(o) > 0; })
      .sort(function (a, b) { return a.offer_id - b.offer_id; });
  }
  function renderOffers() {
    var list = document.getElementById("offer-list");
    var offers = sortedOffers();
    var keep = new Set(offers.map(function (o) { return "offer-" + o.offer_id; }));
    Array.prototype.slice.call(list.children).forEach(function (li) {
      if (!keep.has(li.id)) {
        var hadFocus = li.contains(document.activeElement);
        li.remove();
        if (hadFocus) { document.getElementById("offers-title").setAttribute("tabindex", "-1"); document.getElementById("offers-title").focus(); }
      }
    });
    offers.forEach(function (o) {
      if (document.getElementById("offer-" + o.offer_id)) { return; }
      var s = o.interaction;
      var li = el("li", { id: "offer-" + o.offer_id, "class": "offer-card channel-" + o.channel, "aria-labelledby": "offer-title-" + o.offer_id });
      var h3 = el("h3", { id: "offer-title-" + o.offer_id });
      h3.appendChild(channelIcon(o.channel));
      h3.appendChild(document.createTextNode((config.channelLabels[o.channel] || o.channel) + " – " + citizenOf(s)));
      li.appendChild(h3);
      var dl = el("dl");
      var rows = [[t.queue, s.queue || "—"], [t.subject, s.subject || "—"]];
      if (s.transfer) {  // transferred by a colleague: who, and the note they left for us
        rows.push([t.transferred_by, s.transfer.by || "—"]);
        if (s.transfer.note) { rows.push([t.transfer_note, s.transfer.note]); }
      }
      rows.forEach(function (row) {
        dl.appendChild(el("dt", {}, row[0])); dl.appendChild(el("dd", row[0] === t.transfer_note ? { "class": "transfer-note" } : {}, row[1]));
      });
      li.appendChild(dl);
      li.appendChild(el("p", { "class": "countdown", "data-countdown": o.offer_id }, ""));
      var actions = el("p", { "class": "offer-actions" });
      var accept = el("button", { type: "button", "class": "primary", "data-accept": o.offer_id }, t.accept);
      var decline = el("button", { type: "button", "data-decline": o.offer_id }, t.decline);
      actions.appendChild(accept); actions.appendChild(decline);
      li.appendChild(actions);
      list.appendChild(li);
      if (!knownOffers.has(String(o.offer_id))) {
        knownOffers.add(String(o.offer_id));
        showFeedback("offers-feedback", "", true);  // the answer to an earlier offer is old news
        announce(t.new_offer + " : " + (config.channelLabels[o.channel] || o.channel) + ", " + citizenOf(s) + ", " + (s.queue || "") +
          (s.transfer ? ". " + t.transferred_by + " " + (s.transfer.by || "") + (s.transfer.note ? ". " + t.transfer_note + " : " + s.transfer.note : "") : ""), true);
        cue();
        notifyDesktop(t.new_offer, (config.channelLabels[o.channel] || o.channel) + " – " + citizenOf(s), "offer-" + o.offer_id);
      }
    });
    document.getElementById("offer-count").textContent = "(" + offers.length + ")";
    document.getElementById("no-offers").hidden = offers.length > 0;
    updateTitle();
    tickOffers();
  }
  function tickOffers() {
    var expired = false;
    document.querySelectorAll("[data-countdown]").forEach(function (p) {
      var offer = state.offers[p.getAttribute("data-countdown")];
      var left = offer ? secondsLeft(offer) : 0;
      if (left <= 0) { expired = true; return; }
      p.textContent = left + " " + t.seconds_left;
    });
    if (expired) { renderOffers(); announce(t.offer_gone, false); }
  }
  function cue() {
    root.classList.remove("flash"); void root.offsetWidth; root.classList.add("flash");
    if (!pref("sound")) { return; }
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.18);
    } catch (e) { /* no audio: the visual cue and the announcement remain */ }
  }
  function answerOffer(id, verb) {
    var offer = state.offers[String(id)];
    return act("/console/offers/" + id + "/" + verb + "/", new FormData()).then(function (res) {
      announce(res.message || (res.ok ? "" : t.error), !res.ok);
      showFeedback("offers-feedback", res.message || (res.ok ? "" : t.error), res.ok);
      if (!res.ok) { resync(); return; }  // the offer may still be pending: ask, never assume
      if (verb === "accept") { pendingFocus = res.interaction_id; }
      if (verb === "decline") { delete state.offers[String(id)]; renderOffers(); }
      if (offer && verb === "accept") { renderWork(); }
    }).catch(function () { announce(t.error, true); showFeedback("offers-feedback", t.error, false); resync(); });
  }

  /* ---------------------------------------------------------------- re-reading the truth */
  // After any failed action the console fetches its state again instead of assuming what the
  // failure did. Events that arrive meanwhile are applied again onto the fresh state (applying
  // an event it already reflects changes nothing).
  var resyncing = null;
  function resync() {
    if (resyncing) { return; }
    resyncing = [];
    fetch("/console/snapshot/", { headers: { "Accept": "application/json", "X-Console-Passive": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/accounts/login/?idle=1"; }
        if (!r.ok) { throw new Error(r.status); }
        return r.json();
      })
      .then(function (fresh) {
        var during = resyncing;
        state = fresh;
        during.forEach(function (message) { window.ConsoleState.applyEvent(state, message); });
        renderAll();
      })
      .catch(function () { /* the next event or reconnection brings the truth */ })
      .finally(function () { resyncing = null; });
  }

  /* ---------------------------------------------------------------- alerts */
  function showAlert(text) {
    var box = document.getElementById("console-alerts");
    if (!box) { announce(text, true); return; }
    var item = el("p", { "class": "console-alert" });
    item.appendChild(el("span", {}, text));
    var close = el("button", { type: "button", "class": "link", "data-dismiss-alert": "" }, t.dismiss);
    item.appendChild(close);
    box.appendChild(item);
    cue();
  }
  function markChatEnded(interactionId) {
    var id = String(interactionId);
    var notice = document.getElementById("chat-ended-" + id);
    if (notice) { notice.hidden = false; }
    var panel = document.getElementById("panel-" + id);
    if (panel) {
      panel.querySelectorAll("form[data-reply] fieldset").forEach(function (f) { f.disabled = true; });
    }
    var s = state.interactions[id];
    announce(t.chat_ended + (s ? " (" + tabLabel(s) + ")" : ""), true);
  }

  /* ---------------------------------------------------------------- delivery states */
  // message.status: an outbound message's state changed (sending, retrying with the reason,
  // sent, delivered, failed). The thread is re-read (the server words the state and offers
  // "send again" / "send on the other channel" after a failure); the live reason is kept for
  // the messages whose reason the server does not store (e-mail). A failure is announced.
  var liveDelivery = {};
  var FAILED = ["failed", "undelivered", "refused"];
  function deliveryChanged(p) {
    if (typeof p.message_id !== "number") { return; }
    liveDelivery[p.message_id] = p;
    var id = String(p.interaction_id);
    if (document.getElementById("thread-" + id)) { refreshThread(id); }
    var s = state.interactions[id];
    var where = s ? " (" + tabLabel(s) + ")" : "";
    if (FAILED.indexOf(p.status) >= 0) {
      showAlert(t.message_failed + where + (p.reason ? " : " + p.reason : ""));
    } else if (p.reason) {
      announce(t.message_retrying + where + " : " + p.reason, false);
    }
  }
  function showLiveDelivery(container) {
    container.querySelectorAll("[data-delivery]").forEach(function (line) {
      var live = liveDelivery[line.getAttribute("data-message")];
      if (!live || live.status !== line.getAttribute("data-delivery") || !live.reason) { return; }
      var reason = line.querySelector(".delivery-reason");
      if (reason && !reason.textContent) { reason.textContent = " – " + live.reason; }
      if (line.classList.contains("delivery-pending")) {
        line.querySelector(".delivery-label").textContent = t.not_sent_yet;
      }
    });
  }

  /* ---------------------------------------------------------------- unread, title, notifications */
  // Citizen messages that arrived in a tab the agent is not looking at (another tab selected, or
  // the browser tab in the background): a count on the tab, in its accessible name, and in the
  // page title with the offers, so a background browser tab shows there is work.
  var unread = {};
  function unreadTotal() {
    return Object.keys(unread).reduce(function (n, k) { return n + unread[k]; }, 0);
  }
  function decorateTab(tab, id) {
    var old = tab.querySelector(".unread");
    if (old) { old.remove(); }
    var n = unread[id] || 0;
    if (n > 0) {
      var badge = el("span", { class: "unread" }, String(n));
      badge.appendChild(el("span", { class: "visually-hidden" }, " " + (n === 1 ? t.unread_one : t.unread_many)));
      (tab.querySelector(".conv-line") || tab).appendChild(badge);
    }
  }
  function renderUnread() {
    document.querySelectorAll("#tabs [role=tab]").forEach(function (tab) { decorateTab(tab, tab.getAttribute("data-id")); });
    updateTitle();
  }
  // The "My work" button of the narrow layout counts what waits there: offers and unread messages.
  function renderWorkCount() {
    var n = sortedOffers().length + unreadTotal();
    var count = document.getElementById("view-work-count");
    if (count) { count.textContent = n ? "(" + n + ")" : ""; }
  }
  function updateTitle() {
    renderWorkCount();
    var n = sortedOffers().length + unreadTotal();
    document.title = (n ? "(" + n + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && selectedTab && unread[selectedTab]) { delete unread[selectedTab]; renderUnread(); }
  });
  // Desktop notifications: off until the agent turns them on (the browser then asks for its
  // permission, from that click); shown only while the console is not the visible tab.
  function notifyOn() { return window.localStorage.getItem("cc.notify") === "on"; }
  function notifyDesktop(title, body, tag) {
    if (!document.hidden || !notifyOn() || !("Notification" in window) || Notification.permission !== "granted") { return; }
    try {
      var note = new Notification(title, { body: body, tag: tag });
      note.onclick = function () { window.focus(); note.close(); };
    } catch (e) { /* some browsers only notify from a service worker: the title still counts */ }
  }
  function setNotify(on) {
    var box = document.getElementById("pref-notify");
    if (!on) { window.localStorage.setItem("cc.notify", "off"); box.checked = false; return; }
    if (!("Notification" in window)) {
      box.checked = false; announce(t.notify_unsupported, false); return;
    }
    Promise.resolve(Notification.permission === "granted" ? "granted" : Notification.requestPermission())
      .then(function (answer) {
        var granted = answer === "granted";
        window.localStorage.setItem("cc.notify", granted ? "on" : "off");
        box.checked = granted;
        announce(granted ? t.notify_on : t.notify_refused, !granted);
      });
  }

  /* ---------------------------------------------------------------- interactions as tabs */
  function sortedWork() {
    return Object.keys(state.interactions).map(function (k) { return state.interactions[k]; })
      .sort(function (a, b) { return a.id - b.id; });
  }
  function tabLabel(s) {
    return (config.channelLabels[s.channel] || s.channel) + " – " + citizenOf(s) +
      (s.status === "wrap_up" ? " (" + t.in_wrap_up + ")" : "");
  }
  // One conversation in the list: the channel (pictogram, and its name for screen readers), the
  // citizen, how long they have waited for an answer (live), and the unread count.
  function fillTab(tab, s) {
    var key = s.channel + "|" + citizenOf(s) + "|" + s.status + "|" + (s.subject || "");
    if (tab.getAttribute("data-key") === key) { return; }
    tab.setAttribute("data-key", key);
    tab.textContent = "";
    var line = el("span", { "class": "conv-line" });
    line.appendChild(channelIcon(s.channel));
    line.appendChild(el("span", { "class": "visually-hidden" }, (config.channelLabels[s.channel] || s.channel) + " – "));
    line.appendChild(el("span", { "class": "conv-citizen" }, citizenOf(s)));
    tab.appendChild(line);
    var meta = el("span", { "class": "conv-meta" });
    if (s.subject) { meta.appendChild(el("span", { "class": "conv-subject" }, s.subject)); }
    if (s.status === "wrap_up") { meta.appendChild(el("span", { "class": "conv-state" }, " (" + t.in_wrap_up + ")")); }
    meta.appendChild(el("span", { "class": "conv-wait", "data-wait": String(s.id) }));
    tab.appendChild(meta);
    tickWaiting();
  }
  // Since when the citizen waits: their oldest message after the last answer a person gave
  // (automatic acknowledgements do not count), read from the thread the console holds.
  var waitSince = {};
  function readWaiting(id) {
    var box = document.getElementById("thread-" + id);
    if (!box) { return; }
    var since = null;
    box.querySelectorAll(".msg-inbound, .msg-outbound:not(.msg-auto)").forEach(function (li) {
      if (li.classList.contains("msg-outbound")) { since = null; return; }
      var time = li.querySelector("time[datetime]");
      if (since === null && time) { since = Date.parse(time.getAttribute("datetime")); }
    });
    waitSince[id] = since;
    tickWaiting();
  }
  function duration(seconds) {
    if (seconds < 60) { return seconds + " " + t.seconds_short; }
    var m = Math.floor(seconds / 60);
    if (m < 60) { return m + " " + t.minutes_short; }
    var h = Math.floor(m / 60);
    if (h < 24) { return h + " " + t.hours_short + " " + String(m % 60).padStart(2, "0"); }
    return Math.floor(h / 24) + " " + t.days_short;
  }
  function tickWaiting() {
    document.querySelectorAll("[data-wait]").forEach(function (span) {
      var id = span.getAttribute("data-wait"), since = waitSince[id];
      var text = "";
      if (typeof since === "number") {
        text = " · " + t.waiting + " " + duration(Math.max(0, Math.floor((Date.now() - since) / 1000)));
      } else if (since === null) {
        text = " · " + t.answered;
      }
      span.classList.toggle("waiting", typeof since === "number");
      if (span.textContent !== text) { span.textContent = text; }
    });
  }
  var focusAfterClose = false;  // the tab that had the focus closed: the next one gets it
  function renderWork() {
    var tabs = document.getElementById("tabs"), panels = document.getElementById("panels");
    var work = sortedWork();
    var ids = new Set(work.map(function (s) { return String(s.id); }));
    Array.prototype.slice.call(tabs.children).forEach(function (tab) {
      var id = tab.getAttribute("data-id");
      if (!ids.has(id)) {
        // (a button disabled while its form posts drops the focus to the page: that counts too)
        var lost = document.activeElement === document.body || document.activeElement === null;
        var hadFocus = tab === document.activeElement || (lost && selectedTab === id) ||
          (document.getElementById("panel-" + id) || tab).contains(document.activeElement);
        tab.remove();
        var panel = document.getElementById("panel-" + id); if (panel) { panel.remove(); }
        delete panelVersions[id];
        delete unread[id];
        delete waitSince[id];
        if (selectedTab === id) { selectedTab = null; }
        if (hadFocus) { focusAfterClose = true; }
      }
    });
    work.forEach(function (s) {
      var id = String(s.id);
      var tab = tabs.querySelector('[data-id="' + id + '"]');
      if (!tab) {
        tab = el("button", { type: "button", role: "tab", id: "tab-" + id, "data-id": id, "aria-controls": "panel-" + id, "aria-selected": "false", tabindex: "-1", "class": "conv-item" });
        tabs.appendChild(tab);
        var panel = el("div", { role: "tabpanel", id: "panel-" + id, "aria-labelledby": "tab-" + id, tabindex: "0", hidden: "" });
        panels.appendChild(panel);
      }
      fillTab(tab, s);
      decorateTab(tab, id);
      var version = s.status + ":" + s.last_message_id;
      var previous = panelVersions[id];
      if (previous === undefined) {
        loadPanel(id);
      } else if (previous.split(":")[0] !== s.status) {
        loadPanel(id);
      } else if (previous !== version) {
        refreshThread(id);
      }
      panelVersions[id] = version;
    });
    if (pendingFocus && ids.has(String(pendingFocus))) {
      selectTab(String(pendingFocus), true); openConversation(String(pendingFocus)); pendingFocus = null;
    }
    else if (!selectedTab && work.length) { selectTab(String(work[0].id), focusAfterClose); }
    else if (focusAfterClose) {  // nothing left to work on: the heading of the (empty) list
      document.getElementById("work-title").setAttribute("tabindex", "-1");
      document.getElementById("work-title").focus();
    }
    focusAfterClose = false;
    document.getElementById("work-count").textContent = "(" + work.length + ")";
    document.getElementById("no-work").hidden = work.length > 0;
    document.getElementById("no-panel").hidden = !!selectedTab;
  }
  function selectTab(id, focus) {
    selectedTab = id;
    // In the narrow layout the list is shown to move the focus onto it.
    if (focus && isNarrow() && root.getAttribute("data-view") !== "work") { setView("work"); }
    if (!document.hidden && unread[id]) { delete unread[id]; renderUnread(); }
    document.querySelectorAll("#tabs [role=tab]").forEach(function (tab) {
      var on = tab.getAttribute("data-id") === id;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.setAttribute("tabindex", on ? "0" : "-1");
      var panel = document.getElementById("panel-" + tab.getAttribute("data-id"));
      if (panel) { panel.hidden = !on; }
      if (on && focus) { tab.focus(); }
    });
    document.getElementById("no-panel").hidden = !!selectedTab;
  }
  /* ---------------------------------------------------------------- narrow layout */
  // Under 64rem (a small window, or 200 % zoom) one column shows at a time; the view-switch
  // buttons choose it, and opening a conversation from the list shows it.
  var narrow = window.matchMedia("(max-width: 63.99rem)");
  function isNarrow() { return narrow.matches; }
  function setView(view) {
    root.setAttribute("data-view", view);
    document.querySelectorAll(".view-switch [data-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-view") === view ? "true" : "false");
    });
  }
  function openConversation(id) {
    if (!isNarrow()) { return; }
    setView("conversation");
    var panel = document.getElementById("panel-" + id);
    if (!panel) { return; }
    var composer = panel.querySelector("[data-composer]:not(:disabled)");
    (composer || panel).focus();
  }
  function loadPanel(id) {
    var panel = document.getElementById("panel-" + id);
    if (!panel) { return; }
    getHtml("/console/interactions/" + id + "/").then(function (html) {
      var lost = document.activeElement === document.body || document.activeElement === null;
      var hadFocus = panel.contains(document.activeElement) || (lost && refocus === id);
      if (refocus === id) { refocus = null; }
      panel.innerHTML = html;
      showLiveDelivery(panel);
      wirePanel(panel);
      readWaiting(id);
      if (lastFeedback[id]) { actionFeedback(id, lastFeedback[id][0], lastFeedback[id][1]); }
      if (hadFocus) {  // re-rendered (its state changed): the focus goes to the next step
        var next = panel.querySelector("[data-composer]:not(:disabled)") ||
          panel.querySelector('[data-open-dialog^="wrap-dialog"]') || panel;
        next.focus();
      }
    }).catch(function () { /* not ours any more: the next event removes the tab */ });
  }
  function refreshCitizen(id) {
    // Only the citizen panel: a reply being typed in the composer stays as it is.
    var aside = document.getElementById("citizen-" + id);
    var record = aside && aside.querySelector(".citizen");
    if (!record) { return loadPanel(id); }
    var wasOpen = !!aside.querySelector("details.citizen-edit[open]");
    getHtml("/console/citizens/" + record.getAttribute("data-contact") + "/").then(function (html) {
      var active = document.activeElement;
      // The button pressed was disabled while posting (focus fell to the page) and may be
      // gone (an identity removed): the focus comes back to the panel, not to the top.
      var focusHere = !active || active === document.body || aside.contains(active);
      aside.innerHTML = html;
      var details = aside.querySelector("details.citizen-edit");
      if (details && wasOpen) { details.open = true; }
      if (focusHere && details) { details.querySelector("summary").focus(); }
    }).catch(function () { loadPanel(id); });
  }
  function refreshThread(id, focus) {
    var box = document.getElementById("thread-" + id);
    if (!box) { return loadPanel(id); }
    getHtml("/console/interactions/" + id + "/thread/").then(function (html) {
      var before = box.querySelectorAll(".msg-inbound").length;
      box.innerHTML = html;
      showLiveDelivery(box);
      readWaiting(String(id));
      box.scrollTop = box.scrollHeight;
      if (focus === true) { box.focus(); }  // the button pressed was re-rendered
      var after = box.querySelectorAll(".msg-inbound").length;
      if (after > before) {
        var s = state.interactions[id];
        announce(t.new_message + " " + (s ? tabLabel(s) : ""), false);
        if (String(id) !== selectedTab || document.hidden) {
          unread[id] = (unread[id] || 0) + (after - before);
          renderUnread();
          notifyDesktop(t.new_message_short, s ? tabLabel(s) : "", "message-" + id);
        }
      }
    }).catch(function () {});
  }

  /* ---------------------------------------------------------------- composer */
  var GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM_EXT = "^{}\\[~]|€";
  function smsCount(text) {
    var units = 0, gsm = true;
    for (var i = 0; i < text.length; i++) {
      var c = text[i];
      if (c === "\u00a0" || c === "\u202f") { c = " "; }  // sent as ordinary spaces (providers/base.py)
      if (GSM.indexOf(c) >= 0) { units += 1; } else if (GSM_EXT.indexOf(c) >= 0) { units += 2; } else { gsm = false; break; }
    }
    if (!gsm) { units = text.length; }
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var segments = units === 0 ? 0 : (units <= single ? 1 : Math.ceil(units / multi));
    return { chars: text.length, segments: segments, encoding: gsm ? "GSM-7" : "UCS-2" };
  }
  window.ConsoleSms = { count: smsCount };
  function updateCounter(area) {
    var counter = area.form.querySelector("[data-counter]");
    if (!counter) { return; }
    if (area.getAttribute("data-channel") === "sms") {
      var c = smsCount(area.value);
      counter.textContent = c.chars + " " + t.segments + " " + c.segments + " (" + c.encoding + ")";
    } else {
      counter.textContent = area.value.length ? String(area.value.length) : "";
    }
  }
  function wirePanel(panel) {
    panel.querySelectorAll("[data-composer]").forEach(function (area) {
      area.addEventListener("input", function () {
        updateCounter(area);
        if (area.getAttribute("data-channel") === "chat" && socket && socket.readyState === 1 && Date.now() - typingSent > 3000) {
          typingSent = Date.now();
          socket.send(JSON.stringify({ type: "typing", interaction_id: Number(panel.id.replace("panel-", "")) }));
        }
      });
      updateCounter(area);
    });
    panel.querySelectorAll("[data-subject]").forEach(function (input) {
      // Enter in the e-mail subject goes on to the reply, as in a mail client: never sends.
      input.addEventListener("keydown", function (event) {
        if (event.key !== "Enter") { return; }
        event.preventDefault();
        var area = input.form.querySelector("[data-composer]");
        if (area) { area.focus(); }
      });
    });
    panel.querySelectorAll("[data-insert-canned]").forEach(function (button) {
      button.addEventListener("click", function () {
        var form = button.closest("form");
        var select = form.querySelector("[data-canned]");
        var option = select.options[select.selectedIndex];
        var area = form.querySelector("[data-composer]");
        if (!option || !area) { return; }
        var text = option.getAttribute("data-text");
        var start = area.selectionStart || area.value.length;
        area.value = area.value.slice(0, start) + text + area.value.slice(area.selectionEnd || start);
        area.focus();
        area.selectionStart = area.selectionEnd = start + text.length;
        updateCounter(area);
      });
    });
    var box = panel.querySelector(".thread-box");
    if (box) { box.scrollTop = box.scrollHeight; }
  }

  /* ---------------------------------------------------------------- forms */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-async")) { return; }
    event.preventDefault();
    var button = form.querySelector("[type=submit]");
    if (button) { button.disabled = true; }
    // Where the form is, read now: a live event may re-render the thread holding it (a message
    // re-sent) before the answer comes, and a detached form has no panel any more.
    var panel = form.closest("[role=tabpanel]");
    var inCitizen = !!form.closest(".citizen");
    var dialog = form.closest("dialog");
    // A dialog's action (note, transfer, close) and the toolbar's answer next to the toolbar
    // once done; a failure stays in the dialog, where the agent can correct it.
    var toToolbar = panel && (form.hasAttribute("data-dialog-form") || form.hasAttribute("data-action-form"));
    feedback(form, "", true);
    if (panel && form.hasAttribute("data-action-form")) { refocus = panel.id.replace("panel-", ""); }
    var sent = act(form.action, new FormData(form));
    // The state's choice is sent: live events show the state again.
    if (form.id === "state-form") { form.querySelector("#state-select").removeAttribute("data-chosen"); }
    sent.then(function (res) {
      var text = res.message || (res.ok ? "" : t.error);
      announce(text, !res.ok);
      if (toToolbar && (res.ok || !dialog)) {
        feedback(form, "", true);
        actionFeedback(panel.id.replace("panel-", ""), text, res.ok);
        if (res.ok && /\/(close|transfer)\/$/.test(form.getAttribute("action"))) { workFeedback(text); }
      } else {
        feedback(form, text, res.ok);
      }
      if (res.ok && (form.hasAttribute("data-reply") || form.hasAttribute("data-reset"))) {
        form.reset();
        form.querySelectorAll("[data-composer]").forEach(updateCounter);
        // the agent goes on typing where they were
        var composer = form.querySelector("[data-composer]");
        if (composer && form.isConnected) { composer.focus(); }
      }
      if (res.ok && dialog && dialog.open) {
        dialog.done = true;  // its "close" handler puts the focus back in the reply box
        dialog.close();
      }
      if (!res.ok) { resync(); }
      if (res.ok && panel) {
        var id = panel.id.replace("panel-", "");
        var resent = form.hasAttribute("data-retry") || form.hasAttribute("data-switch");
        if (inCitizen) { refreshCitizen(id); } else { refreshThread(id, resent); }
      }
    }).catch(function () { announce(t.error, true); feedback(form, t.error, false); resync(); })
      .finally(function () { if (button) { button.disabled = false; } });
  });
  // What a toolbar or dialog action did, next to the toolbar (kept over a re-render of the
  // panel: ending a conversation re-renders it).
  var lastFeedback = {};
  var refocus = null;  // the panel whose toolbar action re-renders it: it keeps the focus
  function actionFeedback(id, text, ok) {
    lastFeedback[id] = [text, ok];
    var line = document.getElementById("action-feedback-" + id);
    if (!line) { return; }
    line.textContent = text;
    line.className = "action-feedback form-feedback " + (ok ? "ok" : "error");
    line.hidden = !text;
  }
  // The answer to an action that has no form of its own (an offer, the channels), beside it.
  function showFeedback(lineId, text, ok) {
    var line = document.getElementById(lineId);
    if (!line) { return; }
    line.textContent = text;
    line.className = "form-feedback " + (ok ? "ok" : "error");
    line.hidden = !text;
  }
  // A conversation closed or transferred leaves the list: what happened is written above it.
  function workFeedback(text) { showFeedback("work-feedback", text, true); }
  // What an action did, written next to the form it was done in (screen readers hear it from
  // the announcer): "Réponse envoyée", or why it failed.
  function feedback(form, text, ok) {
    if (!form.isConnected) { return; }
    var line = form.querySelector(".form-feedback");
    if (!line) {
      if (!text) { return; }
      line = el("p", { class: "form-feedback" });
      form.appendChild(line);
    }
    line.textContent = text;
    line.className = "form-feedback " + (ok ? "ok" : "error");
    line.hidden = !text;
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.id === "state-select") { box.setAttribute("data-chosen", ""); }
    if (box.hasAttribute && box.hasAttribute("data-channel-toggle")) {
      var data = new FormData();
      document.querySelectorAll("[data-channel-toggle]").forEach(function (b) { if (b.checked) { data.append("channels", b.value); } });
      post("/console/channels/", data).then(function (res) {
        announce(res.message || (res.ok ? "" : t.error), !res.ok);
        showFeedback("channels-feedback", res.message || (res.ok ? "" : t.error), res.ok);
      }).catch(function () { announce(t.error, true); showFeedback("channels-feedback", t.error, false); });
    }
    if (box.id === "pref-notify") { setNotify(box.checked); }
    if (box.id === "pref-shortcuts" || box.id === "pref-sound") {
      window.localStorage.setItem("cc." + box.id.replace("pref-", ""), box.checked ? "on" : "off");
      document.getElementById("shortcut-help").hidden = !pref("shortcuts");
    }
  });
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (!target) { return; }
    if (target.hasAttribute("data-dismiss-alert")) { target.parentNode.remove(); }
    else if (target.hasAttribute("data-open-dialog")) { openDialog(target); }
    else if (target.hasAttribute("data-close-dialog")) { target.closest("dialog").close(); }
    else if (target.closest(".view-switch") && target.hasAttribute("data-view")) { setView(target.getAttribute("data-view")); }
    else if (target.hasAttribute("data-accept")) { answerOffer(target.getAttribute("data-accept"), "accept"); }
    else if (target.hasAttribute("data-decline")) { answerOffer(target.getAttribute("data-decline"), "decline"); }
    else if (target.getAttribute("role") === "tab") {
      selectTab(target.getAttribute("data-id"), true);
      openConversation(target.getAttribute("data-id"));
    }
  });
  /* ---------------------------------------------------------------- action dialogs */
  // Native modal dialogs: the browser keeps the focus inside and closes them on Escape. Once
  // its action is done, the focus goes to the reply box (where the agent works); cancelled
  // (Escape, "Annuler"), back to the button that opened it.
  function openDialog(button) {
    var dialog = document.getElementById(button.getAttribute("data-open-dialog"));
    if (!dialog || dialog.open) { return; }
    dialog.opener = button;
    dialog.done = false;
    dialog.querySelectorAll(".form-feedback").forEach(function (line) { line.hidden = true; });
    dialog.showModal();
    var first = dialog.querySelector("select, textarea, input:not([type=hidden])");
    if (first) { first.focus(); }
  }
  document.addEventListener("close", function (event) {
    var dialog = event.target;
    if (!dialog || dialog.tagName !== "DIALOG" || !dialog.isConnected) { return; }
    var panel = dialog.closest("[role=tabpanel]");
    var composer = panel && panel.querySelector("[data-composer]:not(:disabled)");
    var opener = dialog.opener && dialog.opener.isConnected ? dialog.opener : null;
    var back = dialog.done ? composer || opener || panel : opener || composer || panel;
    if (back) { back.focus(); }
  }, true);
  document.getElementById("tabs").addEventListener("keydown", function (event) {
    var tabs = Array.prototype.slice.call(document.querySelectorAll("#tabs [role=tab]"));
    var index = tabs.indexOf(document.activeElement);
    if (index < 0) { return; }
    var next = null;  // a vertical list: up and down (left and right still work)
    if (event.key === "ArrowDown" || event.key === "ArrowRight") { next = tabs[(index + 1) % tabs.length]; }
    else if (event.key === "ArrowUp" || event.key === "ArrowLeft") { next = tabs[(index - 1 + tabs.length) % tabs.length]; }
    else if (event.key === "Home") { next = tabs[0]; }
    else if (event.key === "End") { next = tabs[tabs.length - 1]; }
    if (next) { event.preventDefault(); selectTab(next.getAttribute("data-id"), true); }
  });
  document.addEventListener("keydown", function (event) {
    if (!pref("shortcuts") || !event.altKey || !event.shiftKey) { return; }
    var key = event.code || "";
    var first = sortedOffers()[0];
    if (key === "KeyA" && first) { event.preventDefault(); answerOffer(first.offer_id, "accept"); }
    else if (key === "KeyD" && first) { event.preventDefault(); answerOffer(first.offer_id, "decline"); }
    else if (/^Digit[1-9]$/.test(key)) {
      var work = sortedWork()[Number(key.slice(5)) - 1];
      if (work) { event.preventDefault(); selectTab(String(work.id), true); }
    }
  });

  /* ---------------------------------------------------------------- live updates */
  function remember(id) {
    seen.add(id);
    if (seen.size > 2000) { seen.delete(seen.values().next().value); }
  }
  function applyMessage(message) {
    if (typeof message.id === "number") {
      if (seen.has(message.id)) { return; }
      remember(message.id);
    }
    if (message.event === "chat.typing") {
      var line = document.getElementById("typing-" + (message.payload || {}).interaction_id);
      if (line) { line.textContent = message.payload.typing ? t.typing : ""; }
      return;
    }
    if (message.event === "chat.ended") { markChatEnded((message.payload || {}).interaction_id); }
    if (message.event === "message.status") { deliveryChanged(message.payload || {}); }
    if (message.event === "message.media") {  // a picture or recording fetched (or not): re-read
      var mediaOf = String((message.payload || {}).interaction_id);
      if (document.getElementById("thread-" + mediaOf)) { refreshThread(mediaOf); }
    }
    if (message.event === "call.answered") {  // the agent's phone answered: now in progress
      var callState = document.getElementById("call-state-" + (message.payload || {}).interaction_id);
      if (callState) { callState.textContent = t.call_in_progress; }
    }
    if (message.event === "call.bridge_failed") {
      showAlert((message.payload || {}).message || t.bridge_failed);
    }
    if (resyncing) { resyncing.push(message); }
    window.ConsoleState.applyEvent(state, message);
  }
  function renderAll() { renderAgent(); tickTimer(); renderOffers(); renderWork(); }
  // Catching up without reconnecting: the server pushes, as a "replay", any event this console
  // was never sent (console/live.py); state.js keeps the newest state of each thing, so an
  // older event applied late never undoes a newer one.
  function setConnection(text, ok) {
    var node = document.getElementById("connection");
    node.textContent = text; node.className = ok ? "ok" : "warn";
    root.setAttribute("data-connected", ok ? "true" : "false");
  }
  var closedReason = "";  // why the server closed the socket ("closed" frame), if it said
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + config.wsPath);
    socket.onopen = function () {
      retry = 0;
      socket.send(JSON.stringify({ type: "resume", last_event_id: state.last_event_id }));
      window.clearInterval(heartbeatTimer);
      heartbeatTimer = window.setInterval(function () {
        if (socket && socket.readyState === 1) { socket.send(JSON.stringify({ type: "heartbeat" })); }
      }, config.heartbeatSeconds * 1000);
    };
    socket.onmessage = function (event) {
      var data = JSON.parse(event.data);
      if (data.type === "snapshot") {
        state = data.state; seen.clear(); panelVersions = {};
        document.getElementById("tabs").innerHTML = "";
        document.querySelectorAll("#panels [role=tabpanel]").forEach(function (p) { p.remove(); });
        selectedTab = null;
        renderAll(); setConnection(t.connected, true);
      } else if (data.type === "replay") {
        data.events.forEach(applyMessage);
        renderAll();
        Object.keys(state.interactions).forEach(refreshThread);
        setConnection(t.connected, true);
      } else if (data.type === "event") {
        applyMessage(data); renderAll();
      } else if (data.type === "answer") {
        var pending = pendingAnswers[data.ref];
        if (pending) {
          delete pendingAnswers[data.ref];
          window.clearTimeout(pending.timer);
          pending.resolve(data);
        }
      } else if (data.type === "closed") {
        closedReason = data.reason;
        toLogin(data.reason);
      }
    };
    socket.onclose = function (event) {
      window.clearInterval(heartbeatTimer);
      Object.keys(pendingAnswers).forEach(failAnswer);  // their answers cannot come any more
      if (event.code === 4401 || event.code === 4403) { toLogin(closedReason); return; }
      setConnection(t.reconnecting, false);
      retry += 1;
      window.setTimeout(connect, Math.min(10000, 500 * Math.pow(2, Math.min(retry, 5))));
    };
  }
  window.ConsoleDebug = {
    state: function () { return state; },
    dropSocket: function () { if (socket) { socket.close(); } }
  };

  /* ---------------------------------------------------------------- idle timeout */
  var lastActive = Date.now(), lastPing = Date.now(), dialogOpen = false, focusBefore = null;
  ["keydown", "mousedown", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { if (!dialogOpen) { lastActive = Date.now(); } }, true);
  });
  function ping(passive) {
    return post("/console/session/ping/", new FormData(), passive).then(function (res) {
      if (!passive) { lastPing = Date.now(); }
      return res;
    });
  }
  var dialog = document.getElementById("idle-dialog");
  function closeDialog() {
    dialogOpen = false; dialog.hidden = true;
    if (focusBefore && document.contains(focusBefore)) { focusBefore.focus(); }
  }
  document.getElementById("idle-extend").addEventListener("click", function () {
    lastActive = Date.now(); ping(false); closeDialog();
  });
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "Tab") { event.preventDefault(); document.getElementById("idle-extend").focus(); }
    if (event.key === "Escape") { document.getElementById("idle-extend").click(); }
  });
  var checking = false, expiring = false;
  function toLogin(reason) {  // the server closed the socket: the session is over
    // While the warning shows or an idle check is out, that is the idle end (the 401 of the
    // same check goes to ?idle=1 too: whichever comes first, the same page). Otherwise the
    // login page says why the server ended it (a supervisor, a logout elsewhere, ...).
    var idle = expiring || checking || dialogOpen;
    var why = idle ? "?idle=1" : "?ended=" + encodeURIComponent(reason || "session");
    window.location.href = "/accounts/login/" + why;
  }
  function showLeft(left) {
    document.getElementById("idle-left").textContent = t.session_left + " " + Math.max(0, Math.ceil(left));
  }
  function idleTick() {
    var now = Date.now();
    if (lastActive > lastPing && now - lastPing > 60000) { ping(false); }
    var left = config.idleTimeoutSeconds - (now - lastActive) / 1000;
    if (dialogOpen) { showLeft(left); }
    if (checking || left > config.idleWarningSeconds || (dialogOpen && left > 0)) { return; }
    // Time to warn, or time is up: ask the server first (another tab may have been used).
    // The server ends the session on its own clock, a little before this one: then this
    // ping gets a 401 and post() goes to /accounts/login/?idle=1 (posting a logout form
    // then only met the idle middleware's redirect to ?next=/accounts/logout/).
    checking = true; expiring = left <= 0;
    ping(true).then(function (res) {
      checking = false;
      if (typeof res.seconds_left !== "number") { expiring = true; return; }  // 401
      if (res.seconds_left > (expiring ? 0 : config.idleWarningSeconds)) {
        lastActive = Date.now() - (config.idleTimeoutSeconds - res.seconds_left) * 1000;
        expiring = false;
        if (dialogOpen && res.seconds_left > config.idleWarningSeconds) { closeDialog(); }
        return;
      }
      if (expiring) { return; }  // under a second left: the next tick's ping gets the 401
      showLeft(config.idleTimeoutSeconds - (Date.now() - lastActive) / 1000);  // announced with it
      // An open note, transfer or wrap-up dialog would make the warning inert (modal): it
      // closes (what was typed in it stays in its fields).
      document.querySelectorAll("dialog[open]").forEach(function (d) { d.close(); });
      dialogOpen = true; focusBefore = document.activeElement; dialog.hidden = false;
      document.getElementById("idle-extend").focus();
    }).catch(function () { checking = false; });
  }

  /* ---------------------------------------------------------------- start */
  document.getElementById("pref-shortcuts").checked = pref("shortcuts");
  document.getElementById("pref-sound").checked = pref("sound");
  document.getElementById("pref-notify").checked = notifyOn() && "Notification" in window && Notification.permission === "granted";
  document.getElementById("shortcut-help").hidden = !pref("shortcuts");
  renderAll();
  window.setInterval(function () { tickTimer(); tickOffers(); tickWaiting(); idleTick(); }, 1000);
  narrow.addEventListener("change", function () {
    if (!isNarrow()) { return; }
    setView(selectedTab ? "conversation" : "work");
  });
  connect();
})();
