/* The console's state and how one event changes it: the same rules as console/state.py
   (tests/integration/console/test_state.py checks old state + events == fresh state). */
(function (global) {
  "use strict";
  var HANDLED = ["assigned", "wrap_up"];
  var OFFER_END = ["offer.accepted", "offer.declined", "offer.expired", "offer.cancelled"];

  var VERSIONS_KEPT = 500;  // ended offers and interaction versions remembered

  // The newest wins: an event can arrive late (pushed by the server after newer ones), so the
  // id of the event that last set the agent's state, its channels and each interaction, and the
  // offers already ended, are kept; an older event never overwrites them.
  function versionsOf(state) {
    if (!state.versions) {
      var base = state.last_event_id;
      state.versions = { agent: base, channels: base, base: base, interactions: {}, ended: [] };
    }
    return state.versions;
  }
  function newer(id, version) { return typeof id !== "number" || id > version; }
  function forgetOldest(versions) {
    var keys = Object.keys(versions.interactions).sort(function (a, b) { return Number(a) - Number(b); });
    keys.slice(0, Math.max(0, keys.length - VERSIONS_KEPT)).forEach(function (k) { delete versions.interactions[k]; });
    if (versions.ended.length > VERSIONS_KEPT) { versions.ended.splice(0, versions.ended.length - VERSIONS_KEPT); }
  }

  function applySummary(state, summary) {
    var me = state.agent.id;
    var key = String(summary.id);
    var known = state.interactions[key];
    if (known) {
      summary = Object.assign({}, summary, {
        last_message_id: Math.max(known.last_message_id, summary.last_message_id)
      });
    }
    if (summary.agent_id === me && HANDLED.indexOf(summary.status) >= 0) {
      state.interactions[key] = summary;
    } else {
      delete state.interactions[key];
    }
    var offeredToMe = summary.agent_id === me && summary.status === "offered";
    Object.keys(state.offers).forEach(function (k) {
      if (state.offers[k].interaction_id === summary.id) {
        if (offeredToMe) { state.offers[k].interaction = summary; } else { delete state.offers[k]; }
      }
    });
  }

  function applyEvent(state, message) {
    var event = message.event, p = message.payload || {}, id = message.id;
    var agent = state.agent;
    var versions = versionsOf(state);
    if (event === "agent.state" && newer(id, versions.agent)) {
      if (p.since) {  // the presence's own clock: right even after a missed change
        agent.state_since = p.since;
      } else if (agent.state !== p.state || agent.pause_reason !== p.reason) {
        agent.state_since = message.at;
      }
      agent.state = p.state;
      agent.pause_reason = p.reason;
      if (typeof id === "number") { versions.agent = id; }
    } else if (event === "agent.channels" && newer(id, versions.channels)) {
      agent.channels = p.channels.slice();
      if (typeof id === "number") { versions.channels = id; }
    } else if (event === "message.created") {
      var it = state.interactions[String(p.interaction_id)];
      if (it) { it.last_message_id = Math.max(it.last_message_id, p.message_id); }
    }
    var summary = (p.interaction && typeof p.interaction === "object") ? p.interaction : null;
    var known = [versions.base, false];  // [id of the event that last set it, offered to me then]
    if (summary) {
      var key = String(summary.id);
      known = versions.interactions[key] || known;
      if (newer(id, known[0])) {
        applySummary(state, summary);
        var offered = summary.agent_id === agent.id && summary.status === "offered";
        known = [typeof id === "number" ? id : known[0], offered];
        versions.interactions[key] = known;
      }
    }
    if (event === "offer.created") {
      var s = summary || {};
      var offeredNow = s.status === "offered" && s.agent_id === agent.id;
      // a newer event set this interaction: the offer shows only if that one still says so
      var show = (newer(id, known[0]) || id === known[0]) ? offeredNow : (offeredNow && known[1]);
      if (show && versions.ended.indexOf(p.offer_id) < 0) {
        state.offers[String(p.offer_id)] = {
          offer_id: p.offer_id, interaction_id: p.interaction_id, channel: p.channel,
          expires_at: p.expires_at, interaction: s
        };
      }
    } else if (OFFER_END.indexOf(event) >= 0) {
      delete state.offers[String(p.offer_id)];
      if (versions.ended.indexOf(p.offer_id) < 0) { versions.ended.push(p.offer_id); }
    }
    forgetOldest(versions);
    if (typeof id === "number") {
      state.last_event_id = Math.max(state.last_event_id, id);
    }
    return state;
  }

  global.ConsoleState = { applyEvent: applyEvent };
})(window);
