"""Announced commitments: lookup and plain-words durations."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from interactions.models import Interaction

from .models import Commitment


def commitments_of(organisation_id: int) -> dict[str, Commitment]:
    """Channel -> the organisation's announced commitment."""
    return {c.channel: c for c in Commitment.objects.filter(organisation_id=organisation_id)}


def announced_delay_seconds(interaction: Interaction) -> int | None:
    """The delay announced for this request: the organisation's commitment for its channel,
    else its queue's answer target; None when neither says anything."""
    commitment = Commitment.objects.filter(
        organisation_id=interaction.organisation_id, channel=interaction.channel
    ).first()
    if commitment is not None:
        return int(commitment.answer_delay_seconds)
    queue = interaction.queue
    if queue is not None and queue.sla_target_seconds:
        return int(queue.sla_target_seconds)
    return None


def duration_words(seconds: float | None) -> str:
    """A duration in plain words ("3 minutes", "2 heures", "5 jours"), rounded."""
    if seconds is None:
        return _("not measured")
    s = round(float(seconds))
    if (s >= 86400 and s % 86400 == 0) or s >= 3 * 86400:
        n = round(s / 86400)
        return ngettext("%(n)d day", "%(n)d days", n) % {"n": n}
    if (s >= 3600 and s % 3600 == 0) or s >= 3 * 3600:
        n = round(s / 3600)
        return ngettext("%(n)d hour", "%(n)d hours", n) % {"n": n}
    if s >= 60:
        n = round(s / 60)
        return ngettext("%(n)d minute", "%(n)d minutes", n) % {"n": n}
    return ngettext("%(n)d second", "%(n)d seconds", s) % {"n": s}
