"""Signals other domains listen to (routing reacts to status changes without this app
importing it)."""

from django.dispatch import Signal

# Sent inside the transaction that changed the status, with ``interaction``, ``from_status``,
# ``to_status``, ``now`` and ``history`` (the interaction's ``lifecycle.TransitionHistory`` when
# the change read it with its write, else None: absent from senders that do not read it).
# Receivers register side effects with transaction.on_commit().
interaction_status_changed = Signal()
