/* The console's state and how one event changes it: the same rules as console/state.py
   (tests/integration/console/test_state.py checks old state + events == fresh state). */
(function (global) {
  "use strict";
  var HANDLED = ["assigned", "wrap_up"];
  var OFFER_END = ["offer.accepted", "offer.declined", "offer.expired", "offer.cancelled"];

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
    var event = message.event, p = message.payload || {};
    var agent = state.agent;
    if (event === "agent.state") {
      if (agent.state !== p.state || agent.pause_reason !== p.reason) {
        agent.state_since = p.since || message.at;
      }
      agent.state = p.state;
      agent.pause_reason = p.reason;
    } else if (event === "agent.channels") {
      agent.channels = p.channels.slice();
    } else if (event === "message.created") {
      var it = state.interactions[String(p.interaction_id)];
      if (it) { it.last_message_id = Math.max(it.last_message_id, p.message_id); }
    }
    if (p.interaction && typeof p.interaction === "object") { applySummary(state, p.interaction); }
    if (event === "offer.created") {
      var s = p.interaction || {};
      if (s.status === "offered" && s.agent_id === agent.id) {
        state.offers[String(p.offer_id)] = {
          offer_id: p.offer_id, interaction_id: p.interaction_id, channel: p.channel,
          expires_at: p.expires_at, interaction: s
        };
      }
    } else if (OFFER_END.indexOf(event) >= 0) {
      delete state.offers[String(p.offer_id)];
    }
    if (typeof message.id === "number") {
      state.last_event_id = Math.max(state.last_event_id, message.id);
    }
    return state;
  }

  global.ConsoleState = { applyEvent: applyEvent };
})(window);
