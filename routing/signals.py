"""Signals routing sends, for the apps above it to react without routing importing them.

Each is sent inside the transaction of the change: a receiver's writes commit or roll back with
it, and a receiver registers its side effects with ``transaction.on_commit()``.
"""

from django.dispatch import Signal

# Sent inside a claim's transaction with ``rows`` [(interaction id, agent id, channel,
# auto-accepted)] and ``now``. Claims write their status changes in bulk, without
# ``interaction_status_changed``; supervision counts auto-accepted answers from this signal.
claims_written = Signal()
# A waiting interaction moved to another queue without a status change (an overflow): sent with
# interaction_id, from_queue_id, to_queue_id and now, inside the transaction of the move (the
# wallboard's counters move what the interaction counted so far to its new queue).
interaction_requeued = Signal()
# An agent accepted an offer (``routing.offers.do_accept_offer``): sent with ``offer``,
# ``interaction`` (locked, now assigned to the agent), ``agent_id`` and ``now`` inside the
# transaction of the answer, after the ``offer.accepted`` event. The voice channel connects the
# caller to the agent's phone once it commits (``channels_inbound.voice.receivers``).
offer_accepted = Signal()
