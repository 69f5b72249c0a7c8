"""The JSON Schema of a flow graph, and the checks a schema cannot express (pure).

A flow is ``{"start": node id, "language": "fr", "nodes": {id: node}}``; every node has a
``type``. See docs/channels.md ("SVI flows") for an annotated example.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import jsonschema

from .calendar import WEEKDAYS, parse_hhmm

NODE_ID = r"^[A-Za-z0-9_.-]{1,64}$"
_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 2000}
_REF = {"type": "string", "pattern": NODE_ID}
_HHMM = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"}
_INTERVALS = {
    "type": "array",
    "items": {"type": "array", "prefixItems": [_HHMM, _HHMM], "minItems": 2, "maxItems": 2},
}
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PROMPT = {
    "type": "object",
    "properties": {"text": _TEXT, "audio_url": _URL},
    "minProperties": 1,
    "additionalProperties": False,
}
_LANGUAGE = {"type": "string", "pattern": r"^[a-z]{2}(-[A-Z]{2})?$"}


def _node(type_: str, properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"type": {"const": type_}, "label": {"type": "string"}, **properties},
        "required": ["type", *required],
        "additionalProperties": False,
    }


NODE_SCHEMAS: dict[str, dict[str, Any]] = {
    "message": {
        **_node("message", {"text": _TEXT, "audio_url": _URL, "next": _REF}, ["next"]),
        "anyOf": [{"required": ["text"]}, {"required": ["audio_url"]}],
    },
    "menu": _node(
        "menu",
        {
            "prompt": _PROMPT,
            "options": {
                "type": "array",
                "minItems": 1,
                "maxItems": 12,
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string", "pattern": r"^[0-9*#]$"},
                        "label": {"type": "string", "maxLength": 100},
                        "next": _REF,
                    },
                    "required": ["key", "next"],
                    "additionalProperties": False,
                },
            },
            "retries": {"type": "integer", "minimum": 0, "maximum": 5},
            "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 30},
            "invalid": _PROMPT,
            "default": _REF,
        },
        ["prompt", "options"],
    ),
    "business_hours": _node(
        "business_hours",
        {
            "calendar": {
                "type": "object",
                "properties": {
                    "timezone": {"type": "string"},
                    "weekly": {
                        "type": "object",
                        "properties": dict.fromkeys(WEEKDAYS, _INTERVALS),
                        "additionalProperties": False,
                    },
                    "holidays": {
                        "type": ["object", "null"],
                        "properties": {
                            "country": {"type": "string", "pattern": r"^[A-Z]{2}$"},
                            "subdiv": {"type": ["string", "null"]},
                        },
                        "additionalProperties": False,
                    },
                    "closed_dates": {
                        "type": "array",
                        "items": {"type": "string", "pattern": _DATE},
                    },
                    "open_dates": {
                        "type": "object",
                        "propertyNames": {"pattern": _DATE},
                        "additionalProperties": _INTERVALS,
                    },
                },
                "required": ["weekly"],
                "additionalProperties": False,
            },
            "open": _REF,
            "closed": _REF,
            "holiday": _REF,
        },
        ["calendar", "open", "closed"],
    ),
    "set": _node(
        "set",
        {
            "skills": {
                "type": "object",
                "propertyNames": {"pattern": r"^[-a-zA-Z0-9_]{1,50}$"},
                "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "priority": {"type": "integer", "minimum": -100, "maximum": 100},
            "language": _LANGUAGE,
            "next": _REF,
        },
        ["next"],
    ),
    "queue": _node(
        "queue",
        {
            "queue": {"type": "string", "pattern": r"^[-a-zA-Z0-9_]{1,50}$"},
            "text": _TEXT,
            "announce_position": {"type": "boolean"},
            "announce_wait": {"type": "boolean"},
            "hold_music_url": _URL,
        },
    ),
    "voicemail": _node(
        "voicemail",
        {
            "prompt": _PROMPT,
            "max_seconds": {"type": "integer", "minimum": 5, "maximum": 600},
            "queue": {"type": "string", "pattern": r"^[-a-zA-Z0-9_]{1,50}$"},
        },
        ["prompt"],
    ),
    "callback": _node(
        "callback",
        {
            "prompt": _PROMPT,
            "queue": {"type": "string", "pattern": r"^[-a-zA-Z0-9_]{1,50}$"},
            "fallback": _REF,
        },
        ["prompt"],
    ),
    "transfer": _node(
        "transfer",
        {"number": {"type": "string", "pattern": r"^\+[1-9][0-9]{5,14}$"}, "text": _TEXT},
        ["number"],
    ),
    "hangup": _node("hangup", {"text": _TEXT, "audio_url": _URL}),
    # The post-call satisfaction survey ("tapez 1 à 5"): keys 1-5 are the score; then the
    # "thanks" prompt and "next" (or hang up). Reached from the graph's "post_call".
    "survey": _node(
        "survey",
        {
            "prompt": _PROMPT,
            "thanks": _PROMPT,
            "retries": {"type": "integer", "minimum": 0, "maximum": 5},
            "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 30},
            "invalid": _PROMPT,
            "default": _REF,
            "next": _REF,
        },
        ["prompt"],
    ),
}

FLOW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Flow graph (SVI / chat bot)",
    "type": "object",
    "properties": {
        "start": _REF,
        # The node run after the conversation with an agent (a "survey"), if any.
        "post_call": _REF,
        "language": _LANGUAGE,
        "nodes": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": NODE_ID},
            "additionalProperties": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": sorted(NODE_SCHEMAS)}},
            },
        },
    },
    "required": ["start", "nodes"],
    "additionalProperties": False,
}

# Node fields that point at another node.
REFERENCE_FIELDS = ("next", "default", "open", "closed", "holiday", "fallback")
# Nodes that wait for the citizen: a cycle through one of them is a loop the citizen drives.
INPUT_TYPES = frozenset({"menu", "survey"})

_VALIDATOR = jsonschema.Draft202012Validator(FLOW_SCHEMA)
_NODE_VALIDATORS = {
    name: jsonschema.Draft202012Validator(schema) for name, schema in NODE_SCHEMAS.items()
}


def _where(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    return "/".join(parts) or "(root)"


def successors(node: Mapping[str, Any]) -> list[str]:
    found = [node[field] for field in REFERENCE_FIELDS if isinstance(node.get(field), str)]
    found += [o["next"] for o in node.get("options", []) if isinstance(o, dict) and "next" in o]
    return found


def _loops_without_input(nodes: Mapping[str, Any]) -> list[str]:
    """Node ids on a cycle that never waits for input (the flow would spin forever)."""
    edges = {
        node_id: [n for n in successors(node) if n in nodes and nodes[n]["type"] not in INPUT_TYPES]
        for node_id, node in nodes.items()
        if node["type"] not in INPUT_TYPES
    }
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    looping: list[str] = []

    def visit(node_id: str, stack: list[str]) -> None:
        state[node_id] = 1
        stack.append(node_id)
        for nxt in edges.get(node_id, []):
            if state.get(nxt) == 1:
                looping.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node_id] = 2

    for node_id in edges:
        if node_id not in state:
            visit(node_id, [])
    return looping


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a graph: where (``path``, e.g. ("nodes", "menu", "options", "0",
    "next")), what (``kind``: a JSON Schema keyword such as "required" or "minLength", or one
    of our own checks: "unknown_node", "duplicate_key", "unknown_queue", "unknown_skill",
    "timezone", "holidays", "interval_order", "loop"), its details (``params``) and the
    technical line (``raw``) logged and shown to API users. ``flows.problems.describe`` says it
    in words."""

    path: tuple[str, ...]
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    raw: str = ""

    @property
    def node(self) -> str | None:
        return self.path[1] if len(self.path) > 1 and self.path[0] == "nodes" else None


def _schema_problem(prefix: list[Any], error: jsonschema.ValidationError) -> Problem:
    path = [*prefix, *error.absolute_path]
    instance = error.instance
    params: dict[str, Any] = {"limit": error.validator_value}
    if error.validator == "required" and isinstance(instance, dict):
        params["missing"] = [f for f in error.validator_value if f not in instance]
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = set(schema.get("properties") or {})
        params["extra"] = sorted(str(k) for k in instance if k not in allowed)
    elif error.validator in ("enum", "const", "pattern", "type"):
        params["value"] = instance if isinstance(instance, str | int | float | bool) else None
    return Problem(
        tuple(str(p) for p in path),
        str(error.validator),
        params,
        f"{_where(path)}: {error.message}",
    )


def _calendar_problems(where: list[str], calendar: Mapping[str, Any]) -> list[Problem]:
    found = []
    text = "/".join(where)
    try:
        ZoneInfo(calendar.get("timezone") or "Europe/Paris")
    except (ZoneInfoNotFoundError, ValueError):
        zone = calendar.get("timezone")
        found.append(
            Problem(
                (*where, "timezone"),
                "timezone",
                {"value": zone},
                f"{text}/timezone: unknown time zone {zone!r}",
            )
        )
    spec = calendar.get("holidays")
    if spec:
        try:
            holidays.country_holidays(spec.get("country", "FR"), subdiv=spec.get("subdiv") or None)
        except NotImplementedError as exc:
            found.append(Problem((*where, "holidays"), "holidays", {}, f"{text}/holidays: {exc}"))
    intervals = [
        *(("weekly", day, spans) for day, spans in (calendar.get("weekly") or {}).items()),
        *(("open_dates", day, spans) for day, spans in (calendar.get("open_dates") or {}).items()),
    ]
    for group, day, spans in intervals:
        for start, end in spans:
            if parse_hhmm(start) >= parse_hhmm(end):
                found.append(
                    Problem(
                        (*where, group, day),
                        "interval_order",
                        {"day": day, "start": start, "end": end},
                        f"{text}/{day}: {start}-{end} ends before it starts",
                    )
                )
    return found


def _calendar_errors(where: str, calendar: Mapping[str, Any]) -> list[str]:
    return [p.raw for p in _calendar_problems(where.split("/"), calendar)]


def find_problems(
    graph: Any,
    *,
    known_queues: Iterable[str] | None = None,
    known_skills: Iterable[str] | None = None,
) -> list[Problem]:
    """Every problem of ``graph`` (see :class:`Problem`); none means it can be published."""
    problems = [
        _schema_problem([], e)
        for e in sorted(_VALIDATOR.iter_errors(graph), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        return problems
    nodes: dict[str, Any] = graph["nodes"]
    for node_id, node in nodes.items():
        validator = _NODE_VALIDATORS[node["type"]]
        for e in sorted(validator.iter_errors(node), key=lambda e: list(e.absolute_path)):
            problems.append(_schema_problem(["nodes", node_id], e))
    if problems:
        return problems
    for entry in ("start", "post_call"):
        if entry in graph and graph[entry] not in nodes:
            problems.append(
                Problem(
                    (entry,),
                    "unknown_node",
                    {"target": graph[entry]},
                    f"{entry}: no node named {graph[entry]!r}",
                )
            )
    queues = set(known_queues) if known_queues is not None else None
    skills = set(known_skills) if known_skills is not None else None
    for node_id, node in nodes.items():
        where = f"nodes/{node_id}"
        for name in REFERENCE_FIELDS:
            target = node.get(name)
            if isinstance(target, str) and target not in nodes:
                problems.append(
                    Problem(
                        ("nodes", node_id, name),
                        "unknown_node",
                        {"target": target},
                        f"{where}/{name}: no node named {target!r}",
                    )
                )
        keys = [o["key"] for o in node.get("options", [])]
        for i, option in enumerate(node.get("options", [])):
            if option["next"] not in nodes:
                problems.append(
                    Problem(
                        ("nodes", node_id, "options", str(i), "next"),
                        "unknown_node",
                        {"target": option["next"]},
                        f"{where}/options/{i}/next: no node named {option['next']!r}",
                    )
                )
        if len(keys) != len(set(keys)):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            problems.append(
                Problem(
                    ("nodes", node_id, "options"),
                    "duplicate_key",
                    {"keys": twice},
                    f"{where}/options: a key is used twice",
                )
            )
        if node["type"] == "business_hours":
            problems.extend(_calendar_problems(["nodes", node_id, "calendar"], node["calendar"]))
        if queues is not None and node.get("queue") and node["queue"] not in queues:
            problems.append(
                Problem(
                    ("nodes", node_id, "queue"),
                    "unknown_queue",
                    {"value": node["queue"]},
                    f"{where}/queue: no queue with code {node['queue']!r}",
                )
            )
        if skills is not None and node["type"] == "set":
            for code in sorted(node.get("skills") or {}):
                if code not in skills:
                    problems.append(
                        Problem(
                            ("nodes", node_id, "skills"),
                            "unknown_skill",
                            {"value": code},
                            f"{where}/skills: no skill with code {code!r}",
                        )
                    )
    for loop in _loops_without_input(nodes):
        problems.append(
            Problem((), "loop", {"nodes": loop.split(" -> ")}, f"loop without input: {loop}")
        )
    return problems


def validate_graph(
    graph: Any,
    *,
    known_queues: Iterable[str] | None = None,
    known_skills: Iterable[str] | None = None,
) -> list[str]:
    """Every problem of ``graph`` as a technical line ("nodes/menu/options/0/key: ..."); an
    empty list means the flow can be published. ``known_queues`` and ``known_skills`` also check
    the queue and skill codes (those of the flow's organisation)."""
    return [
        p.raw for p in find_problems(graph, known_queues=known_queues, known_skills=known_skills)
    ]
