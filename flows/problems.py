"""A flow's validation problems said in words, in the user's language ("« Texte » ne peut pas
être vide"), naming fields as the editor does (``flows.labels``). The technical line
(``Problem.raw``) stays what the API and the logs show."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .labels import FIELD_LABELS, WEEKDAY_LABELS
from .schema import REFERENCE_FIELDS, Problem

_URL_FIELDS = {"audio_url", "hold_music_url"}


def _quoted(name: str) -> str:
    return _("“%(name)s”") % {"name": name}


def _label(parts: list[str]) -> str:
    """The editor's name for a field path inside a node (or the graph)."""
    if len(parts) >= 2 and parts[0] == "options" and parts[1].isdigit():
        number = int(parts[1]) + 1
        rest = parts[2:]
        if not rest:
            return _("Choice %(n)s") % {"n": number}
        name = {"next": FIELD_LABELS["option_next"], "label": FIELD_LABELS["option_label"]}.get(
            rest[0], FIELD_LABELS.get(rest[0], rest[0])
        )
        return _("Choice %(n)s: %(field)s") % {"n": number, "field": name}
    if len(parts) >= 3 and parts[0] == "calendar" and parts[1] == "weekly":
        return str(WEEKDAY_LABELS.get(parts[2], parts[2]))
    if len(parts) >= 3 and parts[0] == "calendar" and parts[1] == "open_dates":
        return _("Exceptional opening on %(date)s") % {"date": parts[2]}
    names = [p for p in parts if not p.isdigit()]
    while names:
        found = FIELD_LABELS.get(".".join(names))
        if found is not None:
            return str(found)
        names.pop()
    return parts[-1] if parts else str(FIELD_LABELS["nodes"])


def _pattern(field: str, parts: list[str]) -> str:
    last = parts[-1] if parts else ""
    if field == "start" or last in REFERENCE_FIELDS or last == "next" or last == "post_call":
        return _("“%(field)s” must name a node (letters, digits, “.”, “-” and “_”).")
    if last == "key":
        return _("A choice's key is one digit, “*” or “#”.")
    if last in _URL_FIELDS:
        return _("“%(field)s” must be an address starting with http:// or https://.")
    if "weekly" in parts or "open_dates" in parts:
        return _("Write times as HH:MM, for example 08:30 (“%(field)s”).")
    if "closed_dates" in parts:
        return _("Write dates as YYYY-MM-DD (“%(field)s”).")
    if last == "number":
        return _("“%(field)s” must be a number in international form, for example +33123456789.")
    if last == "language":
        return _("“%(field)s” must be a language code such as fr or fr-FR.")
    if parts and parts[0] == "nodes":
        return _("A node's name may contain only letters, digits, “.”, “-” and “_”.")
    return _("“%(field)s” is not written as expected.")


def describe(problem: Problem) -> str:
    """``problem`` in words."""
    parts = list(problem.path[2:] if problem.node is not None else problem.path)
    field = _label(parts)
    params: dict[str, Any] = problem.params
    kind = problem.kind
    values = {"field": field, "limit": params.get("limit"), "value": params.get("value")}
    if kind == "required":
        missing = params.get("missing") or []
        names = ", ".join(_quoted(_label([*parts, m])) for m in missing) or _quoted(field)
        return ngettext(
            "%(fields)s is required.", "%(fields)s are required.", max(1, len(missing))
        ) % {"fields": names}
    if kind == "minLength":
        return _("“%(field)s” cannot be empty.") % values
    if kind == "maxLength":
        return _("“%(field)s” is too long (%(limit)s characters at most).") % values
    if kind == "pattern":
        if params.get("value") == "":
            return _("Fill in “%(field)s”.") % values
        return _pattern(field, parts) % values
    if kind == "type":
        return _("“%(field)s” has the wrong kind of value.") % values
    if kind in ("minimum", "exclusiveMinimum"):
        return _("“%(field)s” must be at least %(limit)s.") % values
    if kind in ("maximum", "exclusiveMaximum"):
        return _("“%(field)s” must be at most %(limit)s.") % values
    if kind == "minItems":
        if parts and parts[-1] == "options":
            return _("A menu needs at least one choice.")
        return _("“%(field)s” needs at least %(limit)s item(s).") % values
    if kind == "maxItems":
        if parts and parts[-1] == "options":
            return _("A menu offers at most %(limit)s choices.") % values
        return _("“%(field)s” has too many items (%(limit)s at most).") % values
    if kind == "minProperties":
        if parts == ["nodes"]:
            return _("The flow needs at least one node.")
        return _("“%(field)s” needs a text or an audio file.") % values
    if kind == "additionalProperties":
        extra = ", ".join(_quoted(name) for name in params.get("extra") or [])
        return _("Unknown field: %(names)s.") % {"names": extra or _quoted(field)}
    if kind == "anyOf":
        return _("A message needs a text or an audio file.")
    if kind in ("enum", "const"):
        return _("Unknown node type “%(value)s”.") % values
    if kind == "unknown_node":
        return _("“%(field)s” points to “%(target)s”, which does not exist.") % {
            "field": field,
            "target": params.get("target"),
        }
    if kind == "duplicate_key":
        return _("Two choices use the same key (%(keys)s).") % {
            "keys": ", ".join(params.get("keys") or [])
        }
    if kind == "unknown_queue":
        return _("There is no queue “%(value)s” in this organisation.") % values
    if kind == "unknown_skill":
        return _("There is no skill “%(value)s” in this organisation.") % values
    if kind == "timezone":
        return _("Unknown time zone “%(value)s”.") % values
    if kind == "holidays":
        return _("The public holidays of this country or region are not known.")
    if kind == "interval_order":
        day = str(params.get("day", ""))
        return _("%(day)s: %(start)s–%(end)s ends before it starts.") % {
            "day": WEEKDAY_LABELS.get(day, day),
            "start": params.get("start"),
            "end": params.get("end"),
        }
    if kind == "loop":
        return _("These nodes go round in a loop without waiting for the caller: %(path)s.") % {
            "path": " → ".join(params.get("nodes") or [])
        }
    return problem.raw


def as_json(problems: list[Problem]) -> list[dict[str, Any]]:
    """For the editor: each problem's node(s) (to show it there), its words and its raw line."""
    out = []
    for problem in problems:
        loop = problem.params.get("nodes") or []
        nodes = [problem.node] if problem.node else list(dict.fromkeys(loop))
        out.append({"nodes": nodes, "text": describe(problem), "raw": problem.raw})
    return out
