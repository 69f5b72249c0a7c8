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
    business_hours: [["label", "text"], ["calendar", "json"], ["open", "ref"], ["closed", "ref"], ["holiday", "ref"]],
    set: [["label", "text"], ["skills", "skills"], ["priority", "number"], ["language", "text"], ["next", "ref"]],
    queue: [["label", "text"], ["queue", "queue"], ["text", "textarea"], ["announce_position", "bool"],
      ["announce_wait", "bool"], ["hold_music_url", "text"]],
    voicemail: [["label", "text"], ["prompt.text", "textarea"], ["max_seconds", "number"], ["queue", "queue"]],
    callback: [["label", "text"], ["prompt.text", "textarea"], ["queue", "queue"], ["fallback", "ref"]],
    transfer: [["label", "text"], ["number", "text"], ["text", "textarea"]],
    hangup: [["label", "text"], ["text", "textarea"]]
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
    hangup: function () { return { type: "hangup" }; }
  };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
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

  function mapErrors(errors) {
    errorsByNode = {};
    generalErrors = [];
    errors.forEach(function (e) {
      var match = /^nodes\/([^/:]+)[/:]/.exec(e);
      if (match && graph.nodes[match[1]]) {
        (errorsByNode[match[1]] = errorsByNode[match[1]] || []).push(e.slice(match[0].length - 1).replace(/^[/:]\s*/, ""));
        return;
      }
      var loop = /^loop without input: (.*)$/.exec(e);
      if (loop) {
        loop[1].split(" -> ").forEach(function (id) {
          if (graph.nodes[id]) (errorsByNode[id] = errorsByNode[id] || []).push(e);
        });
        return;
      }
      generalErrors.push(e);
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
        ul.appendChild(el("li", {}, id + " : " + errorsByNode[id].length));
      });
      content.appendChild(ul);
    }
    if (box.textContent !== content.textContent) box.replaceChildren(content);
  }

  function validate() {
    clearTimeout(validateTimer);
    validateTimer = setTimeout(function () {
      post(data.urls.validate, { graph: graph }).then(function (answer) {
        mapErrors(answer.errors || []);
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
        data.queues.forEach(function (code) {
          input.appendChild(el("option", { value: code, selected: code === value ? "selected" : null }, code));
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
      pos[i] = { x: 10 + l * 190, y: 10 + (rows[l] - 1) * 56 };
    });
    var width = 10 + (Object.keys(rows).length || 1) * 190;
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
      successors(graph.nodes[i]).forEach(function (edge) {
        if (!pos[edge[1]]) return;
        var a = pos[i], b = pos[edge[1]];
        make("path", { d: "M" + (a.x + 160) + "," + (a.y + 18) + " L" + b.x + "," + (b.y + 18) });
        make("text", { x: a.x + 164, y: a.y + 12 }, edge[0]);
      });
    });
    ids.forEach(function (i) {
      var p = pos[i];
      make("rect", { x: p.x, y: p.y, width: 160, height: 36, rx: 6, class: "node" + (errorsByNode[i] ? " error" : "") });
      make("text", { x: p.x + 8, y: p.y + 22 }, (graph.start === i ? "▶ " : "") + i + " (" + graph.nodes[i].type + ")");
    });
  }

  // ------------------------------------------------------------------ actions

  document.getElementById("flow-start").addEventListener("change", function (e) {
    graph.start = e.target.value;
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
    if (!NODE_ID.test(id)) { status.textContent = L.id_invalid; input.focus(); return; }
    if (graph.nodes[id]) { status.textContent = L.id_taken; input.focus(); return; }
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
        else if (step.kind === "queue") text = L.test_queue + " " + (step.queue || L.default_queue);
        else if (step.kind === "voicemail") text = L.test_voicemail + " " + (step.queue || L.default_queue);
        else if (step.kind === "callback") text = L.test_callback + " " + (step.queue || L.default_queue);
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
