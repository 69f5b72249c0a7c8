"""Signals the apps above agents listen to (routing asks for a pass without this app importing
it)."""

from django.dispatch import Signal

# Sent inside the transaction of a presence change after which an agent may take new work (went
# available, wrap-up ended, a channel added while available), with ``agent_ids``. Receivers
# register their side effects with transaction.on_commit() (routing: a pass once it commits).
agent_available = Signal()
