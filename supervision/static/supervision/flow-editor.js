/* The SVI / chat flow editor: a node list, a form per node, a diagram, validation shown on the
   nodes (the server's own flow validation), draft saving and test runs. No framework, no build
   step. The graph format is the flows app's (flows/schema.py). */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("flow-editor-data").textContent);
  var L = JSON.parse(document.getElementById("flow-editor-labels").textContent);
  var csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  var graph = data.graph || {};
  graph.nodes = graph.nodes || {};
  if (!graph.language) graph.language = "fr";
  var selected = Object.keys(graph.nodes)[0] || null;
  var errorsByNode = {};
  var generalErrors = [];
  var validateTimer = null;
  var NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

  // Fields edited for each node type: [path, kind].
  var SPECS = {
    message: [["label", "text"], ["text", "textarea"], ["audio_url", "text"], ["next", "ref"]],
    menu: [["label", "text"], ["prompt.text", "textarea"], ["options", "options"], ["retries", "number"],
      ["timeout_seconds", "number"], ["invalid.text", "textarea"], ["default", "ref"]],
    business_hours: [["label", "text"], ["calendar", "calendar"], ["open", "ref"], ["closed", "ref"], ["holiday", "ref"]],
    set: [["label", "text"], ["skills", "skills"], ["priority", "number"], ["language", "text"], ["next", "ref"]],
    queue: [["label", "text"], ["queue", "queue"], ["text", "textarea"], ["announce_position", "bool"],
      ["announce_wait", "bool"], ["hold_music_url", "text"]],
    voicemail: [["label", "text"], ["prompt.text", "textarea"], ["max_seconds", "number"], ["queue", "queue"]],
    callback: [["label", "text"], ["prompt.text", "textarea"], ["queue", "queue"], ["fallback", "ref"]],
    transfer: [["label", "text"], ["number", "text"], ["text", "textarea"]],
    hangup: [["label", "text"], ["text", "textarea"]],
    survey: [["label", "text"], ["prompt.text", "textarea"], ["thanks.text", "textarea"], ["retries", "number"],
      ["timeout_seconds", "number"], ["invalid.text", "textarea"], ["default", "ref"], ["next", "ref"]]
  };
  var NEW_NODE = {
    message: function () { return { type: "message", text: "", next: "" }; },
    menu: function () { return { type: "menu", prompt: { text: "" }, options: [{ key: "1", label: "", next: "" }] }; },
    business_hours: function () {
      return { type: "business_hours", calendar: { timezone: "Europe/Paris", weekly: {
        mon: [["08:30", "17:00"]], tue: [["08:30", "17:00"]], wed: [["08:30", "17:00"]],
        thu: [["08:30", "17:00"]], fri: [["08:30", "17:00"]] }, holidays: { country: "FR" } }, open: "", closed: "" };
    },
    set: function () { return { type: "set", skills: {}, next: "" }; },
    queue: function () { return { type: "queue", queue: "" }; },
    voicemail: function () { return { type: "voicemail", prompt: { text: "" } }; },
    callback: function () { return { type: "callback", prompt: { text: "" } }; },
    transfer: function () { return { type: "transfer", number: "" }; },
    hangup: function () { return { type: "hangup" }; },
    survey: function () { return { type: "survey", prompt: { text: L.survey_prompt }, thanks: { text: L.survey_thanks } }; }
  };
  var WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  var TIME = "([01]?[0-9]|2[0-3])[:hH]([0-5][0-9])";
  var RANGE = new RegExp("^" + TIME + "\\s*[-–à]\\s*(?:" + TIME + "|(24)[:hH](00))$");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function queueName(code) {
    if (!code) return L.default_queue;
    var found = data.queues.filter(function (q) { return q.code === code; })[0];
    return found ? found.name : code;
  }

  function fmt(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  }

  // ------------------------------------------------------------------ graph access

  function getPath(node, path) {
    return path.split(".").reduce(function (v, k) { return v === undefined || v === null ? undefined : v[k]; }, node);
  }

  function setPath(node, path, value) {
    var keys = path.split(".");
    var holder = node;
    for (var i = 0; i < keys.length - 1; i++) {
      if (typeof holder[keys[i]] !== "object" || holder[keys[i]] === null) holder[keys[i]] = {};
      holder = holder[keys[i]];
    }
    var last = keys[keys.length - 1];
    if (value === undefined || value === "" || value === null) delete holder[last];
    else holder[last] = value;
    if (keys.length > 1 && Object.keys(holder).length === 0) delete node[keys[0]];
  }

  function successors(node) {
    var out = [];
    ["next", "default", "open", "closed", "holiday", "fallback"].forEach(function (f) {
      if (typeof node[f] === "string" && node[f]) out.push([f, node[f]]);
    });
    (node.options || []).forEach(function (o) { if (o && o.next) out.push([o.key || "?", o.next]); });
    return out;
  }

  // ------------------------------------------------------------------ errors

  // The server's problems, in words, each shown on its node(s) or with the flow's own errors.
  function mapErrors(problems) {
    errorsByNode = {};
    generalErrors = [];
    problems.forEach(function (p) {
      var nodes = (p.nodes || []).filter(function (id) { return graph.nodes[id]; });
      if (!nodes.length) { generalErrors.push(p.text); return; }
      nodes.forEach(function (id) { (errorsByNode[id] = errorsByNode[id] || []).push(p.text); });
    });
  }

  function renderErrors() {
    var box = document.getElementById("flow-errors");
    var total = generalErrors.length + Object.keys(errorsByNode).length;
    var content;
    if (!total) {
      content = el("p", { class: "ok", "data-valid": "true" }, L.valid);
    } else {
      content = el("div", { class: "error", "data-valid": "false" });
      content.appendChild(el("p", {}, L.general_errors));
      var ul = el("ul");
      generalErrors.forEach(function (e) { ul.appendChild(el("li", {}, e)); });
      Object.keys(errorsByNode).forEach(function (id) {
        ul.appendChild(el("li", {}, fmt(L.node_error_count, { id: id, n: errorsByNode[id].length, first: errorsByNode[id][0] })));
      });
      content.appendChild(ul);
    }
    if (box.textContent !== content.textContent) box.replaceChildren(content);
  }

  function validate() {
    clearTimeout(validateTimer);
    validateTimer = setTimeout(function () {
      post(data.urls.validate, { graph: graph }).then(function (answer) {
        mapErrors(answer.problems || []);
        renderErrors();
        renderList();
        renderNodeErrors();
        renderGraph();
      });
    }, 300);
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (r) { return r.json(); });
  }

  // ------------------------------------------------------------------ node list

  function renderStart() {
    var select = document.getElementById("flow-start");
    var options = [el("option", { value: "" }, L.none)];
    Object.keys(graph.nodes).forEach(function (id) {
      options.push(el("option", { value: id, selected: graph.start === id ? "selected" : null }, id));
    });
    select.replaceChildren.apply(select, options);
    var post = document.getElementById("flow-post-call");
    var surveys = [el("option", { value: "" }, L.none)];
    Object.keys(graph.nodes).forEach(function (id) {
      if (graph.nodes[id].type !== "survey") return;
      surveys.push(el("option", { value: id, selected: graph.post_call === id ? "selected" : null }, id));
    });
    post.replaceChildren.apply(post, surveys);
    document.getElementById("flow-language").value = graph.language || "";
  }

  function renderList() {
    var list = document.getElementById("node-list");
    var items = [];
    Object.keys(graph.nodes).forEach(function (id) {
      var node = graph.nodes[id];
      var li = el("li", { "data-node": id, class: (errorsByNode[id] ? "has-errors" : "") + (id === selected ? " selected" : "") });
      var title = id + " – " + (L.types[node.type] || node.type) + (node.label ? " : " + node.label : "") +
        (graph.start === id ? " (" + L.start + ")" : "");
      var button = el("button", { type: "button", class: "link-button", "aria-pressed": id === selected ? "true" : "false" }, title);
      button.addEventListener("click", function () { select(id, true); });
      li.appendChild(button);
      if (errorsByNode[id]) {
        var errs = el("ul", { class: "node-errors", "aria-label": L.errors_on_node + " " + id });
        errorsByNode[id].forEach(function (e) { errs.appendChild(el("li", {}, e)); });
        li.appendChild(errs);
      }
      items.push(li);
    });
    list.replaceChildren.apply(list, items);
  }

  function select(id, focus) {
    selected = id;
    renderList();
    renderForm();
    if (focus) document.getElementById("node-form-title").focus();
  }

  // ------------------------------------------------------------------ node form

  function refSelect(id, value) {
    var select = el("select", { id: id });
    select.appendChild(el("option", { value: "" }, L.none));
    Object.keys(graph.nodes).forEach(function (other) {
      select.appendChild(el("option", { value: other, selected: other === value ? "selected" : null }, other));
    });
    return select;
  }

  function field(label, input, errorText) {
    var wrap = el("div");
    wrap.appendChild(el("label", { for: input.id }, label));
    wrap.appendChild(input);
    return wrap;
  }

  function changed() {
    renderStart();
    renderList();
    renderGraph();
    validate();
  }

  function renderForm() {
    var form = document.getElementById("node-form");
    form.replaceChildren();
    if (!selected || !graph.nodes[selected]) {
      form.appendChild(el("p", {}, L.no_node));
      return;
    }
    var id = selected;
    var node = graph.nodes[id];
    var box = el("fieldset");
    box.appendChild(el("legend", {}, id + " – " + (L.types[node.type] || node.type)));
    (SPECS[node.type] || []).forEach(function (spec) {
      var path = spec[0], kind = spec[1];
      var inputId = "f-" + path.replace(/\./g, "-");
      var label = L.fields[path] || path;
      var value = getPath(node, path);
      var input;
      if (kind === "textarea") {
        input = el("textarea", { id: inputId, rows: 2 });
        input.value = value || "";
        input.addEventListener("input", function () { setPath(node, path, input.value); changed(); });
      } else if (kind === "number") {
        input = el("input", { id: inputId, type: "number" });
        input.value = value === undefined ? "" : value;
        input.addEventListener("input", function () {
          setPath(node, path, input.value === "" ? undefined : parseInt(input.value, 10));
          changed();
        });
      } else if (kind === "bool") {
        input = el("input", { id: inputId, type: "checkbox" });
        input.checked = value === undefined ? true : !!value;
        input.addEventListener("change", function () { setPath(node, path, input.checked); changed(); });
        var row = el("div");
        var lab = el("label", { for: inputId });
        lab.appendChild(input);
        lab.appendChild(document.createTextNode(" " + label));
        row.appendChild(lab);
        box.appendChild(row);
        return;
      } else if (kind === "ref") {
        input = refSelect(inputId, value);
        input.addEventListener("change", function () { setPath(node, path, input.value); changed(); });
      } else if (kind === "queue") {
        input = el("select", { id: inputId });
        input.appendChild(el("option", { value: "" }, L.default_queue));
        data.queues.forEach(function (q) {
          input.appendChild(el("option", { value: q.code, selected: q.code === value ? "selected" : null }, q.name + " (" + q.code + ")"));
        });
        input.addEventListener("change", function () { setPath(node, path, input.value); changed(); });
      } else if (kind === "skills") {
        input = el("input", { id: inputId, type: "text" });
        input.value = Object.keys(value || {}).map(function (k) { return k + "=" + value[k]; }).join(", ");
        input.addEventListener("input", function () {
          var skills = {};
          input.value.split(",").forEach(function (part) {
            var kv = part.split("=");
            if (kv.length === 2 && kv[0].trim()) skills[kv[0].trim()] = parseInt(kv[1], 10);
          });
          node.skills = skills;
          changed();
        });
      } else if (kind === "json") {
        input = el("textarea", { id: inputId, rows: 6, "aria-describedby": inputId + "-err" });
        input.value = JSON.stringify(value || {}, null, 1);
        var err = el("p", { id: inputId + "-err", class: "node-errors" });
        input.addEventListener("input", function () {
          try {
            setPath(node, path, JSON.parse(input.value));
            err.textContent = "";
            changed();
          } catch (e) {
            err.textContent = L.invalid_json;
          }
        });
        box.appendChild(field(label, input));
        box.appendChild(err);
        return;
      } else if (kind === "options") {
        box.appendChild(renderOptions(node));
        return;
      } else if (kind === "calendar") {
        box.appendChild(renderCalendar(node));
        return;
      } else {
        input = el("input", { id: inputId, type: "text" });
        input.value = value || "";
        input.addEventListener("input", function () { setPath(node, path, input.value); changed(); });
      }
      box.appendChild(field(label, input));
    });
    form.appendChild(box);
    var errs = el("div", { id: "node-form-errors" });
    form.appendChild(errs);
    renderNodeErrors();
    var actions = el("p");
    var startBtn = el("button", { type: "button" }, L.start + " ← " + id);
    startBtn.addEventListener("click", function () { graph.start = id; changed(); });
    var del = el("button", { type: "button", class: "danger" }, L.delete_node);
    del.addEventListener("click", function () {
      if (!window.confirm(fmt(L.confirm_delete, { id: id }))) return;
      delete graph.nodes[id];
      if (graph.start === id) graph.start = "";
      selected = Object.keys(graph.nodes)[0] || null;
      renderForm();
      changed();
    });
    actions.appendChild(startBtn);
    actions.appendChild(document.createTextNode(" "));
    actions.appendChild(del);
    form.appendChild(actions);
  }

  function renderNodeErrors() {
    var box = document.getElementById("node-form-errors");
    if (!box) return;
    var list = errorsByNode[selected] || [];
    var content = el("div");
    if (list.length) {
      content.className = "error";
      content.appendChild(el("p", {}, L.errors_on_node));
      var ul = el("ul");
      list.forEach(function (e) { ul.appendChild(el("li", {}, e)); });
      content.appendChild(ul);
    }
    box.replaceChildren(content);
  }

  function renderOptions(node) {
    var wrap = el("fieldset");
    wrap.appendChild(el("legend", {}, L.fields.options));
    node.options = node.options || [];
    node.options.forEach(function (option, i) {
      var row = el("div", { class: "option-row" });
      var key = el("input", { id: "opt-key-" + i, type: "text", maxlength: 1, size: 2 });
      key.value = option.key || "";
      key.addEventListener("input", function () { option.key = key.value; changed(); });
      var label = el("input", { id: "opt-label-" + i, type: "text" });
      label.value = option.label || "";
      label.addEventListener("input", function () { option.label = label.value; if (!label.value) delete option.label; changed(); });
      var next = refSelect("opt-next-" + i, option.next);
      next.addEventListener("change", function () { option.next = next.value; changed(); });
      var remove = el("button", { type: "button", "aria-label": L.remove_option + " " + (option.key || i + 1) }, "✕");
      remove.addEventListener("click", function () { node.options.splice(i, 1); renderForm(); changed(); });
      row.appendChild(field(L.fields.key, key));
      row.appendChild(field(L.fields.option_label, label));
      row.appendChild(field(L.fields.option_next, next));
      row.appendChild(remove);
      wrap.appendChild(row);
    });
    var add = el("button", { type: "button", id: "add-option" }, L.add_option);
    add.addEventListener("click", function () {
      node.options.push({ key: String(node.options.length + 1), next: "" });
      renderForm();
      changed();
    });
    wrap.appendChild(add);
    return wrap;
  }

  // ------------------------------------------------------------------ opening hours

  function pad(n) { return (n.length === 1 ? "0" : "") + n; }

  // "08h30-12h30, 13:30 - 17:00" -> [["08:30", "12:30"], ["13:30", "17:00"]]; null if unreadable.
  function parseRanges(text) {
    var ranges = [];
    var parts = text.split(/[,;]/).map(function (p) { return p.trim(); }).filter(Boolean);
    for (var i = 0; i < parts.length; i++) {
      var m = RANGE.exec(parts[i]);
      if (!m) return { error: L.cal_format };
      var start = pad(m[1]) + ":" + m[2];
      var end = m[5] ? "24:00" : pad(m[3]) + ":" + m[4];
      if (start >= end) return { error: fmt(L.cal_order, { start: start, end: end }) };
      ranges.push([start, end]);
    }
    return { ranges: ranges };
  }

  function formatRanges(ranges) {
    return (ranges || []).map(function (r) { return r[0] + "-" + r[1]; }).join(", ");
  }

  function rangesInput(id, label, value, onValid) {
    var wrap = el("div", { class: "cal-day" });
    var input = el("input", { id: id, type: "text", "aria-describedby": id + "-err cal-help", autocomplete: "off" });
    input.value = formatRanges(value);
    var err = el("p", { id: id + "-err", class: "node-errors field-error" });
    input.addEventListener("input", function () {
      var parsed = parseRanges(input.value);
      if (parsed.error) {
        err.textContent = label + " : " + parsed.error;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      err.textContent = "";
      input.removeAttribute("aria-invalid");
      onValid(parsed.ranges);
      changed();
    });
    wrap.appendChild(el("label", { for: id }, label));
    wrap.appendChild(input);
    wrap.appendChild(err);
    return wrap;
  }

  function renderCalendar(node) {
    node.calendar = node.calendar || { weekly: {} };
    var cal = node.calendar;
    cal.weekly = cal.weekly || {};
    var box = el("fieldset", { class: "calendar-form" });
    box.appendChild(el("legend", {}, L.fields.calendar));
    box.appendChild(el("p", { class: "helptext", id: "cal-help" }, L.cal_help));
    var week = el("div", { class: "cal-week" });
    WEEKDAYS.forEach(function (day) {
      week.appendChild(rangesInput("cal-" + day, L.weekdays[day], cal.weekly[day], function (ranges) {
        if (ranges.length) cal.weekly[day] = ranges; else delete cal.weekly[day];
      }));
    });
    box.appendChild(week);

    // Time zone
    var zone = el("select", { id: "cal-timezone" });
    var zones = L.timezones.slice();
    var current = cal.timezone || "Europe/Paris";
    if (!zones.some(function (z) { return z[0] === current; })) zones.push([current, current]);
    zones.forEach(function (z) { zone.appendChild(el("option", { value: z[0], selected: z[0] === current ? "selected" : null }, z[1])); });
    zone.addEventListener("change", function () { cal.timezone = zone.value; changed(); });
    box.appendChild(field(L.cal_timezone, zone));

    // Public holidays
    var hol = el("input", { id: "cal-holidays", type: "checkbox" });
    hol.checked = !!cal.holidays;
    var region = el("select", { id: "cal-subdiv" });
    var subdiv = (cal.holidays && cal.holidays.subdiv) || "";
    L.subdivisions.forEach(function (r) { region.appendChild(el("option", { value: r[0], selected: r[0] === subdiv ? "selected" : null }, r[1])); });
    region.disabled = !hol.checked;
    function setHolidays() {
      region.disabled = !hol.checked;
      if (hol.checked) cal.holidays = { country: "FR", subdiv: region.value || null };
      else delete cal.holidays;
      changed();
    }
    hol.addEventListener("change", setHolidays);
    region.addEventListener("change", setHolidays);
    var holRow = el("div");
    var holLabel = el("label", { for: "cal-holidays" });
    holLabel.appendChild(hol);
    holLabel.appendChild(document.createTextNode(" " + L.cal_holidays));
    holRow.appendChild(holLabel);
    box.appendChild(holRow);
    box.appendChild(field(L.cal_subdiv, region));

    // Closed dates
    box.appendChild(renderDates(L.cal_closed, "cal-closed", cal.closed_dates || [], null, function (dates) {
      if (dates.length) cal.closed_dates = dates; else delete cal.closed_dates;
    }));
    // Exceptional openings: a date and its hours
    var openDates = cal.open_dates || {};
    box.appendChild(renderDates(L.cal_open, "cal-open", Object.keys(openDates).sort(), openDates, function (dates, hours) {
      var out = {};
      dates.forEach(function (d) { out[d] = hours[d] || []; });
      if (dates.length) cal.open_dates = out; else delete cal.open_dates;
    }));
    return box;
  }

  // A list of dates (each removable) and a date input to add one; with ``hours``, each date
  // also has its opening hours.
  function renderDates(legend, prefix, dates, hours, onChange) {
    var set = el("fieldset", { class: "cal-dates", id: prefix });
    set.appendChild(el("legend", {}, legend));
    var list = el("ul", { class: "cal-date-list" });
    var hoursOf = {};
    Object.keys(hours || {}).forEach(function (d) { hoursOf[d] = hours[d]; });
    function save() { onChange(dates.slice(), hoursOf); changed(); }
    function draw() {
      list.replaceChildren();
      dates.forEach(function (d, i) {
        var li = el("li");
        var shown = new Date(d + "T12:00:00").toLocaleDateString(document.documentElement.lang || "fr", { weekday: "long", day: "numeric", month: "long", year: "numeric" });
        li.appendChild(el("span", { class: "cal-date" }, shown));
        if (hours) {
          li.appendChild(rangesInput(prefix + "-h-" + i, fmt(L.cal_open_hours, { date: shown }), hoursOf[d], function (ranges) {
            hoursOf[d] = ranges;
            onChange(dates.slice(), hoursOf);
          }));
        }
        var remove = el("button", { type: "button", class: "link-button" }, L.remove);
        remove.setAttribute("aria-label", L.remove + " " + shown);
        remove.addEventListener("click", function () {
          dates.splice(i, 1);
          delete hoursOf[d];
          draw();
          save();
          add.focus();
        });
        li.appendChild(document.createTextNode(" "));
        li.appendChild(remove);
        list.appendChild(li);
      });
      if (!dates.length) list.appendChild(el("li", { class: "helptext" }, L.cal_no_date));
    }
    var row = el("div", { class: "form-row" });
    var input = el("input", { id: prefix + "-new", type: "date" });
    var add = el("button", { type: "button", id: prefix + "-add" }, L.cal_add_date);
    var err = el("p", { id: prefix + "-err", class: "node-errors field-error" });
    input.setAttribute("aria-describedby", prefix + "-err");
    add.addEventListener("click", function () {
      var value = input.value;
      if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) { err.textContent = L.cal_date_missing; input.focus(); return; }
      if (dates.indexOf(value) >= 0) { err.textContent = L.cal_date_twice; input.focus(); return; }
      err.textContent = "";
      dates.push(value);
      dates.sort();
      if (hours) hoursOf[value] = [["09:00", "12:00"]];
      input.value = "";
      draw();
      save();
    });
    row.appendChild(field(L.cal_date, input));
    row.appendChild(el("div", {}, null)).appendChild(add);
    draw();
    set.appendChild(list);
    set.appendChild(row);
    set.appendChild(err);
    return set;
  }

  // ------------------------------------------------------------------ diagram

  function renderGraph() {
    var svg = document.getElementById("flow-graph");
    var NS = "http://www.w3.org/2000/svg";
    var desc = svg.querySelector("desc");
    svg.replaceChildren(desc);
    var ids = Object.keys(graph.nodes);
    var level = {}, order = [];
    var queue = graph.start && graph.nodes[graph.start] ? [graph.start] : [];
    if (queue.length) level[graph.start] = 0;
    while (queue.length) {
      var id = queue.shift();
      order.push(id);
      successors(graph.nodes[id]).forEach(function (edge) {
        if (graph.nodes[edge[1]] && level[edge[1]] === undefined) {
          level[edge[1]] = level[id] + 1;
          queue.push(edge[1]);
        }
      });
    }
    var maxLevel = order.reduce(function (m, i) { return Math.max(m, level[i]); }, 0);
    ids.forEach(function (i) { if (level[i] === undefined) { level[i] = maxLevel + 1; order.push(i); } });
    var rows = {}, pos = {};
    order.forEach(function (i) {
      var l = level[i];
      rows[l] = (rows[l] || 0) + 1;
      pos[i] = { x: 10 + l * 240, y: 10 + (rows[l] - 1) * 56 };
    });
    var width = 10 + (Object.keys(rows).length || 1) * 240;
    var height = 20 + Math.max(1, Math.max.apply(null, Object.values(rows).concat([1]))) * 56;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    function make(tag, attrs, text) {
      var n = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
      if (text) n.textContent = text;
      svg.appendChild(n);
      return n;
    }
    ids.forEach(function (i) {
      successors(graph.nodes[i]).forEach(function (edge, n) {
        if (!pos[edge[1]]) return;
        var a = pos[i], b = pos[edge[1]];
        make("path", { d: "M" + (a.x + 160) + "," + (a.y + 18) + " L" + b.x + "," + (b.y + 18) });
        // the edge's name (a menu key, or "then", "open"...) just after its start, apart per edge
        make("text", { x: a.x + 166, y: a.y + 12 + (b.y - a.y) * 0.25 + n * 2, class: "edge" }, L.edges[edge[0]] || edge[0]);
      });
    });
    ids.forEach(function (i) {
      var p = pos[i];
      make("rect", { x: p.x, y: p.y, width: 160, height: 36, rx: 6, class: "node" + (errorsByNode[i] ? " error" : "") });
      var kind = L.types_short[graph.nodes[i].type] || graph.nodes[i].type;
      make("text", { x: p.x + 8, y: p.y + 22 }, (graph.start === i ? "▶ " : "") + i + " (" + kind + ")");
    });
  }

  // ------------------------------------------------------------------ actions

  document.getElementById("flow-start").addEventListener("change", function (e) {
    graph.start = e.target.value;
    changed();
  });
  document.getElementById("flow-post-call").addEventListener("change", function (e) {
    if (e.target.value) graph.post_call = e.target.value; else delete graph.post_call;
    changed();
  });
  document.getElementById("flow-language").addEventListener("input", function (e) {
    graph.language = e.target.value || undefined;
    changed();
  });

  var typeSelect = document.getElementById("new-node-type");
  data.node_types.forEach(function (t) { typeSelect.appendChild(el("option", { value: t }, L.types[t] || t)); });

  document.getElementById("add-node").addEventListener("click", function () {
    var input = document.getElementById("new-node-id");
    var id = input.value.trim();
    var status = document.getElementById("editor-status");
    var problem = !id ? L.id_empty : !NODE_ID.test(id) ? L.id_invalid : graph.nodes[id] ? L.id_taken : "";
    var feedback = document.getElementById("new-node-feedback");
    feedback.textContent = problem;
    if (problem) {
      input.setAttribute("aria-invalid", "true");
      status.textContent = problem;
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    graph.nodes[id] = NEW_NODE[typeSelect.value]();
    if (!graph.start) graph.start = id;
    input.value = "";
    select(id, true);
    changed();
  });

  document.getElementById("save-draft").addEventListener("click", function () {
    var status = document.getElementById("editor-status");
    post(data.urls.save, { graph: graph, note: document.getElementById("version-note").value })
      .then(function (answer) {
        if (!answer.version) { status.textContent = L.save_failed; return; }
        status.textContent = fmt(L.saved, { n: answer.version.number });
        window.location.reload();
      })
      .catch(function () { status.textContent = L.save_failed; });
  });

  document.getElementById("run-test").addEventListener("click", function () {
    var raw = document.getElementById("test-inputs").value;
    var inputs = raw.trim() === "" ? [] : raw.split(",").map(function (s) { return s.trim(); });
    var box = document.getElementById("test-result");
    post(data.urls.test, {
      graph: graph,
      inputs: inputs,
      at: document.getElementById("test-at").value,
      caller_known: document.getElementById("test-known").checked
    }).then(function (answer) {
      var out = el("div");
      if (answer.errors && answer.errors.length) {
        var errs = el("ul", { class: "error" });
        answer.errors.forEach(function (e) { errs.appendChild(el("li", {}, e)); });
        out.appendChild(errs);
        box.replaceChildren(out);
        return;
      }
      var ol = el("ol", { id: "test-transcript" });
      answer.transcript.forEach(function (step) {
        var text;
        if (step.kind === "say") text = L.test_says + " : « " + step.text + " »";
        else if (step.kind === "ask") text = L.test_asks + " : « " + step.text + " » [" + step.options.map(function (o) { return o.key; }).join(", ") + "]";
        else if (step.kind === "input") text = L.test_input + " " + step.text;
        else if (step.kind === "queue") text = L.test_queue + " " + queueName(step.queue);
        else if (step.kind === "voicemail") text = L.test_voicemail + " " + queueName(step.queue);
        else if (step.kind === "callback") text = L.test_callback + " " + queueName(step.queue);
        else if (step.kind === "transfer") text = L.test_transfer + " " + step.number;
        else text = L.test_hangup;
        ol.appendChild(el("li", { "data-kind": step.kind }, text));
      });
      out.appendChild(ol);
      if (answer.waiting) out.appendChild(el("p", {}, L.test_waiting));
      out.appendChild(el("p", {}, L.test_path + " : " + answer.path.join(" › ")));
      box.replaceChildren(out);
    });
  });

  renderStart();
  renderList();
  renderForm();
  renderGraph();
  validate();
})();
