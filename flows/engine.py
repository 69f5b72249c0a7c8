"""The flow engine: channel-agnostic and pure (no database, no TwiML).

Given a validated graph, where the citizen is and what they answered, it says what to do next as
a list of actions. The phone channel renders them as TwiML (digits); the chat bot renders the
same actions as messages and buttons. The engine runs through the nodes that need no input
(messages, business hours, attribute settings) until it must ask something (:class:`Ask`) or
reaches an end (queue, voicemail, callback, transfer, hang up).

    step = start(graph, context=Context(now=now, caller_known=True))
    ... render step.actions; if step.waiting, keep step.session and later:
    step = resume(graph, session=step.session, user_input="1", context=...)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from kernel.errors import ApplicationError

from .calendar import Opening, opening_at

MAX_STEPS = 100  # a guard: validation already refuses loops that never wait for input


class FlowError(ApplicationError):
    """The graph cannot be run from here; ``code`` says why (``unknown_node``, ``unknown_type``,
    ``loops``, ``not_waiting``), the message is the technical line. Validation refuses such a
    graph before it is saved or tested (``flows.schema``): this is the engine's own guard."""


# --- Actions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Say:
    """Tell the citizen something: text (speech / a chat message) or an audio file."""

    text: str = ""
    audio_url: str = ""
    language: str = "fr"


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    next: str


@dataclass(frozen=True)
class Ask:
    """Wait for one choice among ``options`` (a DTMF digit on the phone, a button in chat)."""

    node_id: str
    prompt: Say
    options: tuple[Option, ...]
    timeout_seconds: int
    attempt: int


@dataclass(frozen=True)
class Enqueue:
    """Hand the citizen to a queue (``queue`` is a queue code; empty: the endpoint's queue)."""

    queue: str
    skills: dict[str, int]
    priority: int | None
    language: str
    announce_position: bool = True
    announce_wait: bool = True
    hold_music_url: str = ""


@dataclass(frozen=True)
class Voicemail:
    queue: str
    max_seconds: int
    skills: dict[str, int] = field(default_factory=dict)
    priority: int | None = None
    language: str = "fr"


@dataclass(frozen=True)
class Callback:
    queue: str
    skills: dict[str, int] = field(default_factory=dict)
    priority: int | None = None
    language: str = "fr"


@dataclass(frozen=True)
class Transfer:
    number: str


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Rate:
    """The citizen gave ``score`` (1-5) at a ``survey`` node (the post-call satisfaction survey);
    the channel records it."""

    score: int


SURVEY_KEYS = ("1", "2", "3", "4", "5")

Action = Say | Ask | Enqueue | Voicemail | Callback | Transfer | Hangup | Rate
TERMINAL = (Enqueue, Voicemail, Callback, Transfer, Hangup)


# --- State ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    now: datetime
    caller_known: bool = True


@dataclass(frozen=True)
class Session:
    """Where the citizen is in the flow and what the flow decided so far (JSON-serialisable)."""

    node_id: str = ""
    attempt: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    priority: int | None = None
    language: str = "fr"
    path: tuple[str, ...] = ()  # "node" or "node=choice", for the agent's summary

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = list(self.path)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        return cls(
            node_id=str(data.get("node_id", "")),
            attempt=int(data.get("attempt", 0)),
            skills={str(k): int(v) for k, v in (data.get("skills") or {}).items()},
            priority=data.get("priority"),
            language=str(data.get("language") or "fr"),
            path=tuple(data.get("path") or ()),
        )


@dataclass(frozen=True)
class Step:
    actions: tuple[Action, ...]
    session: Session

    @property
    def waiting(self) -> bool:
        """The flow waits for input (the last action is an :class:`Ask`)."""
        return bool(self.actions) and isinstance(self.actions[-1], Ask)

    @property
    def outcome(self) -> Action | None:
        """The terminal action (queue, voicemail, callback, transfer, hang up), if reached."""
        last = self.actions[-1] if self.actions else None
        return last if isinstance(last, TERMINAL) else None


# --- Running ------------------------------------------------------------------------------------
def _node(graph: Mapping[str, Any], node_id: str) -> Mapping[str, Any]:
    try:
        node: Mapping[str, Any] = graph["nodes"][node_id]
    except KeyError:
        raise FlowError("unknown_node", f"no node named {node_id!r}") from None
    return node


def _prompt(spec: Mapping[str, Any] | None, language: str) -> Say:
    spec = spec or {}
    return Say(text=spec.get("text", ""), audio_url=spec.get("audio_url", ""), language=language)


def _options(node: Mapping[str, Any]) -> tuple[Option, ...]:
    if node["type"] == "survey":  # "tapez 1 à 5": one key per score
        return tuple(Option(key=k, label=k, next=node.get("next", "")) for k in SURVEY_KEYS)
    return tuple(
        Option(key=o["key"], label=o.get("label", ""), next=o["next"]) for o in node["options"]
    )


def _ask(node_id: str, node: Mapping[str, Any], session: Session) -> Ask:
    return Ask(
        node_id=node_id,
        prompt=_prompt(node.get("prompt"), session.language),
        options=_options(node),
        timeout_seconds=int(node.get("timeout_seconds", 6)),
        attempt=session.attempt,
    )


def _run(
    graph: Mapping[str, Any], node_id: str, session: Session, context: Context
) -> tuple[list[Action], Session]:
    actions: list[Action] = []
    for _ in range(MAX_STEPS):
        node = _node(graph, node_id)
        kind = node["type"]
        session = replace(session, node_id=node_id, path=(*session.path, node_id))
        if kind == "message":
            actions.append(_prompt(node, session.language))
            node_id = node["next"]
        elif kind == "set":
            session = replace(
                session,
                skills={**session.skills, **node.get("skills", {})},
                priority=node.get("priority", session.priority),
                language=node.get("language", session.language),
            )
            node_id = node["next"]
        elif kind == "business_hours":
            opening = opening_at(node["calendar"], context.now)
            if opening is Opening.OPEN:
                node_id = node["open"]
            elif opening is Opening.HOLIDAY:
                node_id = node.get("holiday") or node["closed"]
            else:
                node_id = node["closed"]
        elif kind in ("menu", "survey"):
            session = replace(session, attempt=0)
            actions.append(_ask(node_id, node, session))
            return actions, session
        elif kind == "queue":
            if node.get("text"):
                actions.append(Say(text=node["text"], language=session.language))
            actions.append(
                Enqueue(
                    queue=node.get("queue", ""),
                    skills=dict(session.skills),
                    priority=session.priority,
                    language=session.language,
                    announce_position=node.get("announce_position", True),
                    announce_wait=node.get("announce_wait", True),
                    hold_music_url=node.get("hold_music_url", ""),
                )
            )
            return actions, session
        elif kind == "voicemail":
            actions.append(_prompt(node["prompt"], session.language))
            actions.append(
                Voicemail(
                    queue=node.get("queue", ""),
                    max_seconds=int(node.get("max_seconds", 120)),
                    skills=dict(session.skills),
                    priority=session.priority,
                    language=session.language,
                )
            )
            return actions, session
        elif kind == "callback":
            if not context.caller_known and node.get("fallback"):
                node_id = node["fallback"]
                continue
            actions.append(_prompt(node["prompt"], session.language))
            if not context.caller_known:  # nobody to call back and no fallback: say goodbye
                actions.append(Hangup())
            else:
                actions.append(
                    Callback(
                        queue=node.get("queue", ""),
                        skills=dict(session.skills),
                        priority=session.priority,
                        language=session.language,
                    )
                )
            return actions, session
        elif kind == "transfer":
            if node.get("text"):
                actions.append(Say(text=node["text"], language=session.language))
            actions.append(Transfer(number=node["number"]))
            return actions, session
        elif kind == "hangup":
            if node.get("text") or node.get("audio_url"):
                actions.append(_prompt(node, session.language))
            actions.append(Hangup())
            return actions, session
        else:
            raise FlowError("unknown_type", f"unknown node type {kind!r}")
    raise FlowError("loops", f"more than {MAX_STEPS} steps without input: the flow loops")


def start(graph: Mapping[str, Any], *, context: Context) -> Step:
    """Run a flow from its start node."""
    session = Session(language=str(graph.get("language") or "fr"))
    actions, session = _run(graph, graph["start"], session, context)
    return Step(tuple(actions), session)


def resume(
    graph: Mapping[str, Any], *, session: Session, user_input: str | None, context: Context
) -> Step:
    """Continue after the citizen answered the :class:`Ask` of ``session.node_id``.

    ``user_input`` is the key pressed or chosen; ``None`` or ``""`` means no answer (timeout).
    A wrong or missing answer asks again (after the node's ``invalid`` prompt) up to ``retries``
    times, then goes to the node's ``default`` or hangs up.
    """
    node = _node(graph, session.node_id)
    if node["type"] not in ("menu", "survey"):
        raise FlowError("not_waiting", f"node {session.node_id!r} does not wait for input")
    choice = (user_input or "").strip()
    if node["type"] == "survey" and choice in SURVEY_KEYS:
        rated = replace(
            session, attempt=0, path=(*session.path[:-1], f"{session.node_id}={choice}")
        )
        done: list[Action] = [Rate(score=int(choice))]
        if node.get("thanks"):
            done.append(_prompt(node["thanks"], session.language))
        if not node.get("next"):
            return Step((*done, Hangup()), rated)
        actions, after = _run(graph, node["next"], rated, context)
        return Step((*done, *actions), after)
    for option in node.get("options", ()):
        if choice and option["key"] == choice:
            chosen = replace(
                session, attempt=0, path=(*session.path[:-1], f"{session.node_id}={choice}")
            )
            actions, after = _run(graph, option["next"], chosen, context)
            return Step(tuple(actions), after)
    attempt = session.attempt + 1
    if attempt <= int(node.get("retries", 2)):
        retry = replace(session, attempt=attempt)
        again: list[Action] = []
        if node.get("invalid"):
            again.append(_prompt(node["invalid"], session.language))
        again.append(_ask(session.node_id, node, retry))
        return Step(tuple(again), retry)
    if node.get("default"):
        return Step(*_as_step(_run(graph, node["default"], replace(session, attempt=0), context)))
    return Step((Hangup(),), session)


def ask_again(graph: Mapping[str, Any], *, session: Session) -> Step:
    """Repeat the question the session is waiting on (a late or replayed answer)."""
    node = _node(graph, session.node_id)
    if node["type"] not in ("menu", "survey"):
        raise FlowError("not_waiting", f"node {session.node_id!r} does not wait for input")
    return Step((_ask(session.node_id, node, session),), session)


def post_call(graph: Mapping[str, Any], *, context: Context, language: str = "") -> Step | None:
    """Run the flow's ``post_call`` node (after the conversation with the agent, e.g. a
    ``survey``), or None when the flow has none."""
    node_id = graph.get("post_call")
    if not node_id:
        return None
    session = Session(language=language or str(graph.get("language") or "fr"))
    actions, session = _run(graph, node_id, session, context)
    return Step(tuple(actions), session)


def _as_step(result: tuple[list[Action], Session]) -> tuple[tuple[Action, ...], Session]:
    return tuple(result[0]), result[1]
