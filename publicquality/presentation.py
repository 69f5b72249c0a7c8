"""Labels, plain-words definitions and formatted values for the public pages."""

from __future__ import annotations

from typing import Any

from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from interactions.models import Channel
from organisations.models import Organisation

from .commitments import duration_words
from .figures import ALL, LAST_12_MONTHS, LAST_MONTH, ChannelResult, PeriodResults
from .follow import ANSWERED, CLOSED, IN_PROGRESS, RECEIVED, FollowState


def channel_label(channel: str) -> str:
    if channel == ALL:
        return _("All channels")
    return str(Channel(channel).label).capitalize()


def percent(value: float | None) -> str:
    if value is None:
        return _("not measured")
    return f"{formats.number_format(round(100 * value, 1), 1)} %"


def _target(value: int | None) -> str:
    return f"{value} %" if value is not None else _("none announced")


def state_labels() -> dict[str, tuple[str, str]]:
    """State -> (title, explanation), in the order a request goes through them."""
    return {
        RECEIVED: (
            pgettext("request state", "Received"),
            _("Your request has been registered. It is waiting for an adviser."),
        ),
        IN_PROGRESS: (
            pgettext("request state", "Being handled"),
            _("An adviser is working on your request."),
        ),
        ANSWERED: (
            pgettext("request state", "Answered"),
            _("An adviser has answered you. Check your messages."),
        ),
        CLOSED: (
            pgettext("request state", "Closed"),
            _("Your request is closed. Write to us again if you need anything else."),
        ),
    }


def follow_context(state: FollowState, *, token: str) -> dict[str, Any]:
    labels = state_labels()
    order = list(labels)
    reached = order.index(state.state)
    return {
        "state": state,
        "state_title": labels[state.state][0],
        "state_text": labels[state.state][1],
        "steps": [
            {"key": key, "title": title, "done": i <= reached, "current": i == reached}
            for i, (key, (title, _text)) in enumerate(labels.items())
        ],
        "channel_label": channel_label(state.channel),
        "announced_delay": duration_words(state.announced_delay_s)
        if state.announced_delay_s is not None
        else _("none announced"),
        "token": token,
    }


def definitions() -> list[tuple[str, str]]:
    """(indicator, what it means in plain words)."""
    return [
        (
            _("Contacts"),
            _(
                "Requests that reached one of our advisers' queues during the period (calls, "
                "SMS, e-mails and chats), counted once each."
            ),
        ),
        (
            _("Answer rate (taux de décroché)"),
            _(
                "Out of the requests that needed an adviser, the share an adviser took. A "
                "citizen who hung up or left before being answered counts as not answered."
            ),
        ),
        (
            _("Answered within the announced delay"),
            _(
                "Out of the answered requests and those abandoned after the first seconds, the "
                "share an adviser took within the delay set for that request."
            ),
        ),
        (
            _("Average delay"),
            _(
                "The average time between the arrival of a request and the moment an adviser "
                "took it, for the requests that were answered."
            ),
        ),
        (
            _("Satisfaction"),
            _(
                'The share of citizens who rated our answer 4 or 5 out of 5. "Not measured" '
                "means nobody answered the satisfaction survey in the period."
            ),
        ),
    ]


def _row(result: ChannelResult) -> dict[str, Any]:
    return {
        "channel": result.channel,
        "label": channel_label(result.channel),
        "contacts": formats.number_format(result.contacts, force_grouping=True),
        "answer_rate": percent(result.answer_rate),
        "answer_rate_target": _target(result.answer_rate_target),
        "within_delay": percent(result.within_delay_rate),
        "within_delay_target": _target(result.within_delay_target),
        "average_delay": duration_words(result.average_delay_s),
        "announced_delay": duration_words(result.announced_delay_s)
        if result.announced_delay_s is not None
        else _("none announced"),
        "satisfaction": percent(result.satisfaction_rate),
        "satisfaction_responses": result.satisfaction_responses,
        "is_total": result.channel == ALL,
    }


def period_title(key: str) -> str:
    return {
        LAST_MONTH: pgettext("period", "Last month"),
        LAST_12_MONTHS: pgettext("period", "Last 12 months"),
    }[key]


def quality_context(organisation: Organisation, results: list[PeriodResults]) -> dict[str, Any]:
    return {
        "organisation": organisation,
        "periods": [
            {
                "key": p.key,
                "title": period_title(p.key),
                "first": p.period.first,
                "last": p.period.last,
                "rows": [_row(c) for c in p.channels],
            }
            for p in results
        ],
        "definitions": definitions(),
    }
