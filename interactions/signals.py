"""Signals other domains listen to (routing reacts to status changes without this app
importing it)."""

from django.dispatch import Signal

# Sent inside the transaction that changed the status, with ``interaction``, ``from_status``,
# ``to_status``, ``now``. Receivers register side effects with transaction.on_commit().
interaction_status_changed = Signal()
