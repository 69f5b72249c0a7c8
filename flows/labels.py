"""The words people see for a flow's parts: node types and fields (the editor's labels, and the
validation messages, name them the same way)."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

NODE_TYPE_LABELS: dict[str, Promise] = {
    "message": _("Message"),
    "menu": _("Menu (choice by key)"),
    "business_hours": _("Opening hours"),
    "set": _("Set skills, priority or language"),
    "queue": _("Queue (to an agent)"),
    "voicemail": pgettext_lazy("flow node type", "Voicemail"),
    "callback": _("Callback request"),
    "transfer": _("Transfer to a number"),
    "hangup": _("Hang up"),
    "survey": _("Satisfaction survey (after the call)"),
}

# By a field's path in its node ("prompt.text"), or in the graph ("start", "post_call").
FIELD_LABELS: dict[str, Promise] = {
    "label": _("Label"),
    "text": _("Text"),
    "audio_url": _("Audio file (URL)"),
    "next": _("Then go to"),
    "prompt": _("Question"),
    "prompt.text": _("Question"),
    "prompt.audio_url": _("Question (audio file)"),
    "thanks": _("Thanks"),
    "thanks.text": _("Thanks"),
    "options": _("Choices"),
    "retries": _("Retries"),
    "timeout_seconds": _("Time to answer (s)"),
    "invalid": _("Message after a wrong key"),
    "invalid.text": _("Message after a wrong key"),
    "default": _("After the last retry, go to"),
    "calendar": _("Opening hours"),
    "calendar.timezone": _("Time zone"),
    "calendar.holidays": _("Public holidays"),
    "calendar.closed_dates": _("Closed dates"),
    "calendar.open_dates": _("Exceptional openings"),
    "open": _("When open, go to"),
    "closed": _("When closed, go to"),
    "holiday": _("On a public holiday, go to"),
    "skills": _("Skills (code=level, separated by commas)"),
    "priority": _("Priority"),
    "language": _("Language"),
    "queue": _("Queue"),
    "announce_position": _("Announce the position"),
    "announce_wait": _("Announce the expected wait"),
    "hold_music_url": _("Hold music (URL)"),
    "max_seconds": _("Longest message (s)"),
    "fallback": _("Without a caller number, go to"),
    "number": _("Number (E.164, e.g. +33123456789)"),
    "key": pgettext_lazy("telephone keypad", "Key"),
    "option_label": _("Choice label"),
    "option_next": _("Go to"),
    "start": _("Start node"),
    "post_call": _("After the call (survey)"),
    "nodes": _("Nodes"),
}

WEEKDAY_LABELS: dict[str, Promise] = {
    "mon": _("Monday"),
    "tue": _("Tuesday"),
    "wed": _("Wednesday"),
    "thu": _("Thursday"),
    "fri": _("Friday"),
    "sat": _("Saturday"),
    "sun": _("Sunday"),
}
