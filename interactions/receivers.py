"""What the interactions app does when the contacts app asks (``contacts.signals``)."""

from __future__ import annotations

from typing import Any

from contacts.models import Contact
from contacts.signals import contacts_merging

from .models import Interaction


def move_interactions(
    sender: type[Contact], *, source: Contact, target: Contact, **kwargs: Any
) -> dict[str, int]:
    """A merge: the merged citizen's interactions (open or not) become the kept one's."""
    return {"interactions": Interaction.objects.filter(contact=source).update(contact=target)}


def connect() -> None:
    contacts_merging.connect(move_interactions, dispatch_uid="interactions.merge")
