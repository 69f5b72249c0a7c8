"""Hooks the apps above contacts answer, so that this app never imports them.

Interactions and the channels keep rows about a citizen; only they know which ones a merge must
move and which identities their open conversations use. They connect receivers in their
``AppConfig.ready()``; :mod:`contacts.actions` sends these signals inside its own transaction
(Django signals are synchronous) and folds the answers in.
"""

from django.dispatch import Signal

# Sent by ``do_merge_contacts`` inside its transaction, once both citizens are locked and their
# identities moved, with ``source`` and ``target`` (:class:`~contacts.models.Contact`). Each
# receiver moves its own rows pointing at ``source`` to ``target`` and returns
# ``{name: count}``: what it moved, in the merge's summary (``ContactMerge.moved``).
contacts_merging = Signal()

# Sent by ``identities_in_use`` (before an identity is removed) with ``contact_id``. Each
# receiver returns the ``(kind, normalised value)`` identities the citizen's open conversations
# use on its side: the one they came in on, the one replies go to.
identities_in_use_requested = Signal()
