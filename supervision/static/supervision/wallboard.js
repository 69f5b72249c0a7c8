/* The live wallboard: renders the snapshots the server pushes over a WebSocket
   (supervision.consumers.WallboardConsumer) and ticks waits and times in state every second.
   No framework, no build step. */
(function () {
  "use strict";

  var labels = JSON.parse(document.getElementById("wb-labels").textContent);
  var consoleLabels = JSON.parse(document.getElementById("wb-console-labels").textContent);
  var snapshot = JSON.parse(document.getElementById("wb-snapshot").textContent);
  var lang = document.documentElement.lang || "fr";
  var numberFormat = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  var offset = 0; // server clock - browser clock, in ms
  var socket = null;
  var retry = 1000;

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
    return h ? h + ":" + mm : mm;
  }

  function since(iso) {
    if (!iso) return null;
    return (Date.now() + offset - Date.parse(iso)) / 1000;
  }

  function pct(value) {
    return value === null || value === undefined ? "—" : numberFormat.format(value) + " %";
  }

  function renderQueues(rows) {
    var body = document.querySelector("#wb-queues tbody");
    var fresh = document.createDocumentFragment();
    rows.forEach(function (q) {
      var tr = el("tr", null, { "data-queue": q.queue_id, "data-channel": q.channel });
      if (q.alert) tr.className = "breach";
      var name = el("th", q.queue, { scope: "row" });
      if (q.open === false) name.appendChild(el("span", " (" + labels.closed + ")", { class: "muted" }));
      tr.appendChild(name);
      tr.appendChild(el("td", labels.channels[q.channel] || "—"));
      tr.appendChild(el("td", q.waiting, { class: "num", "data-field": "waiting" }));
      tr.appendChild(el("td", q.oldest_queued_at ? duration(since(q.oldest_queued_at)) : "—",
        { class: "num", "data-field": "longest", "data-since": q.oldest_queued_at || "" }));
      var sl = el("td", pct(q.service_level), { class: "num", "data-field": "sl" });
      if (q.service_level !== null && q.service_level < q.sla_goal_percent) sl.className += " below";
      tr.appendChild(sl);
      tr.appendChild(el("td", pct(q.abandonment_rate), { class: "num", "data-field": "abandonment" }));
      tr.appendChild(el("td", q.offered, { class: "num", "data-field": "offered" }));
      tr.appendChild(el("td", q.answered, { class: "num", "data-field": "answered" }));
      tr.appendChild(el("td", q.asa_s === null ? "—" : duration(q.asa_s), { class: "num", "data-field": "asa" }));
      tr.appendChild(el("td", pct(q.csat), { class: "num", "data-field": "csat" }));
      fresh.appendChild(tr);
    });
    body.replaceChildren(fresh);
  }

  function renderAlerts(rows) {
    var list = el("ul", null, { class: "wb-alerts" });
    rows.filter(function (q) { return q.alert; }).forEach(function (q) {
      var channel = labels.channels[q.channel] ? " (" + labels.channels[q.channel] + ")" : "";
      list.appendChild(el("li", q.queue + channel + " : " + (labels.alerts[q.alert] || q.alert), { class: "alert" }));
    });
    if (!list.children.length) list.appendChild(el("li", labels.no_alert, { class: "ok" }));
    var box = document.getElementById("wb-alerts");
    // Only touch the live region when the alerts change, so screen readers hear changes once.
    if (box.dataset.last !== list.textContent) {
      box.dataset.last = list.textContent;
      box.replaceChildren(list);
    }
  }

  // Connected: a live console (a heartbeat within routing's window), not merely a state other
  // than "offline" in the database: a console that vanished keeps its state for a while.
  function isConnected(a) {
    return typeof a.connected === "boolean" ? a.connected : a.state !== "offline";
  }

  function renderAgents(rows) {
    var counts = {};
    Object.keys(labels.states).forEach(function (s) { counts[s] = 0; });
    var body = document.querySelector("#wb-agents tbody");
    var fresh = document.createDocumentFragment();
    rows.forEach(function (a) {
      counts[a.state] = (counts[a.state] || 0) + 1;
      var tr = el("tr", null, { "data-agent": a.agent_id });
      tr.appendChild(el("th", a.name, { scope: "row" }));
      tr.appendChild(el("td", a.team || "—"));
      var state = labels.states[a.state] || a.state;
      if (a.pause_reason) state += " (" + (labels.reasons[a.pause_reason] || a.pause_reason) + ")";
      tr.appendChild(el("td", state, { class: "state-cell", "data-state": a.state }));
      var live = isConnected(a);
      // In words, not only in colour; a state other than offline without a console is flagged.
      var lost = !live && a.state !== "offline";
      tr.appendChild(el("td", live ? consoleLabels.live : (lost ? consoleLabels.lost : consoleLabels.none),
        { class: "console-cell" + (lost ? " console-lost" : ""), "data-connected": live ? "true" : "false" }));
      tr.appendChild(el("td", duration(since(a.state_since)),
        { class: "num", "data-since": a.state_since || "" }));
      var work = a.work.map(function (w) {
        return "#" + w.interaction_id + " " + (labels.channels[w.channel] || w.channel) + " – " +
          (labels.statuses[w.status] || w.status);
      });
      tr.appendChild(el("td", work.length ? work.join(", ") : labels.none));
      fresh.appendChild(tr);
    });
    body.replaceChildren(fresh);
    var countList = document.getElementById("wb-state-counts");
    var items = document.createDocumentFragment();
    Object.keys(counts).forEach(function (s) {
      var li = el("li");
      li.appendChild(el("span", counts[s], { class: "state state-" + s }));
      li.appendChild(document.createTextNode(" " + (labels.states[s] || s)));
      items.appendChild(li);
    });
    countList.replaceChildren(items);
    return counts;
  }

  function render(data) {
    snapshot = data;
    offset = Date.parse(data.now) - Date.now();
    renderQueues(data.queues);
    renderAlerts(data.queues);
    var counts = renderAgents(data.agents);
    var waiting = data.queues.reduce(function (n, q) { return n + q.waiting; }, 0);
    var loggedIn = data.agents.filter(isConnected).length;
    var alerts = data.queues.filter(function (q) { return q.alert; }).length;
    var summary = labels.summary.replace("%(waiting)s", waiting)
      .replace("%(agents)s", loggedIn).replace("%(alerts)s", alerts);
    var box = document.getElementById("wb-summary");
    if (box.textContent !== summary) box.textContent = summary;
    document.body.dataset.wallboardAt = data.now;
  }

  function tick() {
    document.querySelectorAll("[data-since]").forEach(function (cell) {
      var iso = cell.getAttribute("data-since");
      if (iso) cell.textContent = duration(since(iso));
    });
  }

  function setConnection(live) {
    var box = document.getElementById("wb-connection");
    box.textContent = live ? labels.connected : labels.disconnected;
    box.className = live ? "live" : "offline";
    document.body.dataset.wallboard = live ? "live" : "offline";
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/supervision/wallboard/");
    socket.onopen = function () { retry = 1000; setConnection(true); };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "snapshot") render(message.data);
    };
    socket.onclose = function (event) {
      setConnection(false);
      if (event.code === 4401 || event.code === 4403) return; // logged out: stop
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  render(snapshot);
  setInterval(tick, 1000);
  connect();
})();
