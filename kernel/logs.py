"""Structured logs (docs/operations.md, "Logs"): one line per request, per Celery task and per
socket event, JSON or plain text (``LOG_FORMAT``), and never a citizen's phone number, e-mail
address or message text.

Built on structlog, through the standard library: every ``logging.getLogger(...)`` call of the
project, Django's, Celery's and uvicorn's records go through the same formatter
(:func:`json_formatter` or :func:`plain_formatter`, chosen in ``settings.LOGGING``), so logger
names and levels stay those of ``LOGGING``. What a line is about comes from the context
(:func:`bind`): ``request_id``, ``organisation_id``, ``agent_id``, ``interaction_id``,
``user_id``, ``task_id``/``task``; every line logged while a request, task or socket is handled
carries them.

- Requests: :class:`RequestLogMiddleware` (first in ``MIDDLEWARE``) takes a well-formed
  ``X-Request-ID`` from the client or makes one, returns it in the response, and writes one
  ``request`` line (logger ``contactcentre.requests``) with the method, path (never the query
  string), view, status and duration. The lean SMS webhook path (``channels_inbound/asgi.py``)
  does the same with :func:`asgi_request`.
- Celery tasks: :func:`connect_celery` hands the request id to the tasks a request enqueues (a
  message header) and writes one ``task`` line per run (logger ``contactcentre.tasks``) with
  the task's id, name, state and duration. Tasks run eagerly (the embedded default) log it at
  DEBUG: they are part of the request or periodic pass that ran them.
- Sockets: :func:`socket_event` (logger ``contactcentre.sockets``), called by the console and
  wallboard consumers on connect, refusal, resume and disconnect.
- :func:`redact_personal_data` replaces whatever looks like a phone number or an e-mail address
  in any line (messages, exception texts, tracebacks) before it is written.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.types import EventDict, Processor, WrappedLogger

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept when it is a plain token (UUIDs, trace ids, hex, base64url): letters,
# digits and ._:- only, 8 to 128 characters; anything else is replaced by one of ours.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}")


# The fields of the line being built for the current request (a mutable dict shared with the
# code below the middleware, so a view can name what it was about: :func:`bind`).
_line: ContextVar[dict[str, Any] | None] = ContextVar("cc_log_line", default=None)


def valid_request_id(value: object) -> str | None:
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def bind(**values: Any) -> None:
    """Name what the current request, task or socket is about (``organisation_id``,
    ``agent_id``, ``interaction_id``...): every later line of it carries them, and so does the
    request's own line. ``None`` values are left out."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return
    structlog.contextvars.bind_contextvars(**values)
    line = _line.get()
    if line is not None:
        line.update(values)


@contextmanager
def bound(**values: Any) -> Iterator[dict[str, Any]]:
    """:func:`bind` for a block, and a fresh line of fields for it (restored after)."""
    values = {k: v for k, v in values.items() if v is not None}
    line = dict(values)
    line_token = _line.set(line)
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield line
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
        _line.reset(line_token)


# ------------------------------------------------------------------------- personal data

# Phone numbers: international (+33 6 12 34 56 78, +33612345678, %2B33..., 0033...) and French
# national ones (06 12 34 56 78, 06.12.34.56.78, 0612345678). Ids, UUIDs, times and addresses
# of machines do not match: no leading 0 or +, or more digits than a number has.
_PHONE = re.compile(
    r"(?<![\w.%])(?:"
    r"(?:\+|%2[Bb])\d(?:[ .\-]?\d){7,14}"
    r"|00[1-9](?:[ .\-]?\d){7,13}"
    r"|0[1-9](?:[ .\-]?\d\d){4}"
    r")(?![\d])"
)
_EMAIL = re.compile(r"[\w.+\-]+(?:@|%40)[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}\b")
PHONE_MASK = "[phone]"
EMAIL_MASK = "[email]"
# PostgreSQL's details of a refused row quote its values (a message's text among them):
# "Failing row contains (...)" and "Key (column)=(value)". The values are dropped.
_FAILING_ROW = re.compile(r"Failing row contains \(.*?(?=\n\n|\Z)", re.DOTALL)
_KEY_VALUES = re.compile(
    r"(Key \([^)]*\))=\(.*?\)(?= already exists| is not present| conflicts|\.?(?:\n\n|\Z))",
    re.DOTALL,
)
# Fields that are ours and never personal data: not scanned.
_SAFE_KEYS = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "request_id",
        "task_id",
        "task",
        "organisation_id",
        "agent_id",
        "interaction_id",
        "user_id",
        "method",
        "view",
        "socket",
    }
)


def redact(text: str) -> str:
    """``text`` with phone numbers, e-mail addresses and the values PostgreSQL quotes in an
    error's detail masked."""
    if "DETAIL" in text:
        text = _FAILING_ROW.sub("Failing row contains (…).", text)
        text = _KEY_VALUES.sub(r"\1=(…)", text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    return _PHONE.sub(PHONE_MASK, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


def redact_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask phone numbers and e-mail addresses in every field of a line (the message, the
    exception's text and traceback included): a number that slipped into a log call or an
    exception message never reaches the log."""
    for key, value in event_dict.items():
        if key not in _SAFE_KEYS:
            event_dict[key] = _redact_value(value)
    return event_dict


# ------------------------------------------------------------------------------ rendering

_FIRST_KEYS = ("timestamp", "level", "logger", "event", "request_id")


def _ordered(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    first = {k: event_dict.pop(k) for k in _FIRST_KEYS if k in event_dict}
    return {**first, **event_dict}


def _plain(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """``2026-12-03 14:05:09 INFO contactcentre.requests request k=v ...`` and the traceback on
    the next lines, as the former text format had it."""
    head = " ".join(
        str(event_dict.pop(key, "")) for key in ("timestamp", "level", "logger", "event")
    )
    exception = event_dict.pop("exception", None)
    stack = event_dict.pop("stack", None)
    fields = " ".join(f"{key}={value}" for key, value in event_dict.items())
    text = f"{head} {fields}" if fields else head
    for extra in (stack, exception):
        if extra:
            text += "\n" + str(extra).rstrip("\n")
    return text


def _upper_level(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    if "level" in event_dict:
        event_dict["level"] = str(event_dict["level"]).upper()
    return event_dict


# Records of the standard library (Django, Celery, our logging.getLogger calls).
_FOREIGN_PRE_CHAIN: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
]


def _formatter(renderer: Processor, timestamper: Processor) -> ProcessorFormatter:
    configure_structlog()
    return ProcessorFormatter(
        foreign_pre_chain=_FOREIGN_PRE_CHAIN,
        processors=[
            ProcessorFormatter.remove_processors_meta,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            # The traceback as text: "Traceback (most recent call last)" stays greppable.
            structlog.processors.format_exc_info,
            redact_personal_data,
            _ordered,
            renderer,
        ],
    )


def json_formatter() -> logging.Formatter:
    """One JSON object per line: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
    ``event`` (the message), then the fields. Python's warnings become lines too (logger
    ``py.warnings``) instead of raw text among them."""
    logging.captureWarnings(True)
    return _formatter(
        structlog.processors.JSONRenderer(ensure_ascii=False),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    )


def plain_formatter() -> logging.Formatter:
    """The readable text of the development server: the former format plus ``key=value``."""
    return _formatter(
        _chain(_upper_level, _plain),
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
    )


def _chain(*processors: Processor) -> Processor:
    def run(logger: WrappedLogger, name: str, event_dict: EventDict) -> Any:
        value: Any = event_dict
        for processor in processors:
            value = processor(logger, name, value)
        return value

    return run


_configured = False


def configure_structlog() -> None:
    """structlog's own loggers hand their events to the standard library's handlers."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # first: a line below the level costs nothing more
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _configured = True


# ------------------------------------------------------------------------------- requests


def _static_prefix() -> str:
    from django.conf import settings

    return str(getattr(settings, "STATIC_URL", "/static/") or "/static/")


def _request_ids(request: Any, line: dict[str, Any]) -> None:
    """What the request was about, from what it already loaded (no query of its own): the
    user, their principal or agent profile, the URL's interaction or agent."""
    from django.utils.functional import SimpleLazyObject, empty

    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):  # AuthenticationMiddleware's: loaded only if used
        loaded = user.__dict__.get("_wrapped", empty)
        user = None if loaded is empty else loaded
    if user is not None:
        principal = getattr(user, "_cc_principal", None)
        if principal is None and type(user).__name__ == "Principal":
            principal = user
        if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
            line.setdefault("user_id", user.pk)
        if principal is not None:
            if principal.organisation_id is not None:
                line.setdefault("organisation_id", principal.organisation_id)
            if principal.agent_id is not None:
                line.setdefault("agent_id", principal.agent_id)
    agent = getattr(request, "agent", None)
    if agent is not None:
        line.setdefault("agent_id", agent.pk)
        line.setdefault("organisation_id", agent.organisation_id)
    match = getattr(request, "resolver_match", None)
    if match is not None:
        line.setdefault("view", match.view_name)
        kwargs = {k: _as_id(v) for k, v in match.kwargs.items()}
        if "interaction_id" in kwargs:
            line.setdefault("interaction_id", kwargs["interaction_id"])
        elif "pk" in kwargs and (match.url_name or "").startswith("interaction-"):
            line.setdefault("interaction_id", kwargs["pk"])
        if "agent_id" in kwargs:
            line.setdefault("agent_id", kwargs["agent_id"])


def _as_id(value: Any) -> Any:
    """A URL's ``"42"`` as ``42`` (the REST API's ``pk``), like the other ids."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


# The status logged when the client went away before the answer (the request's task was
# cancelled: Django's ASGI handler cancels it on the client's disconnect, e.g. a provider that
# stopped waiting), as nginx logs it: not a server error, nothing was answered.
CLIENT_CLOSED = 499


def _status_level(status: int, path: str) -> int:
    if status == CLIENT_CLOSED:
        return logging.WARNING
    if status >= 500:
        return logging.ERROR
    if status < 400 and path.startswith(_static_prefix()):
        return logging.DEBUG  # a page's assets would drown its own line
    return logging.INFO


def _request_line(
    level: int, method: str | None, path: str, status: int, start: float, line: dict[str, Any]
) -> None:
    requests_logger.log(
        level,
        "request",
        method=method,
        path=path,
        status=status,
        duration_ms=round((time.perf_counter() - start) * 1000, 1),
        **line,
    )


class RequestLogMiddleware:
    """One ``request`` line per request, and the request id in and out (``X-Request-ID``).

    First in ``MIDDLEWARE``: it times the whole stack and sees every answer (redirects,
    lockouts and error pages included). The path is logged without its query string (search
    terms may be personal data)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        chosen = getattr(request, "scope", {}).get(SCOPE_KEY)  # under ASGI: RequestIds's
        request_id = (
            chosen or valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        )
        request.request_id = request_id
        start = time.perf_counter()
        status = 500
        with bound(request_id=request_id) as line:
            try:
                response = self.get_response(request)
                status = response.status_code
                response[REQUEST_ID_HEADER] = request_id
                return response
            except asyncio.CancelledError:
                status = CLIENT_CLOSED
                raise
            finally:
                level = _status_level(status, request.path)
                if requests_logger.isEnabledFor(level):
                    try:
                        _request_ids(request, line)
                    except Exception:  # never let the log line break the answer
                        logging.getLogger(__name__).debug("request ids", exc_info=True)
                    _request_line(level, request.method, request.path, status, start, line)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
SCOPE_KEY = "cc_request_id"


def scope_request_id(scope: Scope) -> str:
    """The request id of an ASGI connection: the one :class:`RequestIds` chose, else the
    client's ``X-Request-ID`` when well-formed, else a new one."""
    chosen = scope.get(SCOPE_KEY)
    if isinstance(chosen, str):
        return chosen
    for name, value in scope.get("headers", []):
        if name.lower() == b"x-request-id":
            given = valid_request_id(value.decode("latin-1"))
            if given:
                return given
    return new_request_id()


def _send_with_id(send: Send, request_id: str, state: dict[str, int] | None = None) -> Send:
    """``send`` that adds ``X-Request-ID`` to the answer (unless the application did)."""
    header = (b"x-request-id", request_id.encode())

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            if state is not None:
                state["status"] = int(message["status"])
                state["answered"] = 1
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                message = {**message, "headers": [*headers, header]}
        await send(message)

    return send_with_id


class RequestIds:
    """Outermost ASGI layer (``contactcentre/asgi.py``): chooses the request id of each HTTP
    request and socket before anything runs, so every line logged for it carries the id, even
    Django's own ones written after the middleware ("Not Found: ..."), and answers with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = scope_request_id(scope)
        scope = {**scope, SCOPE_KEY: request_id}
        if scope["type"] == "http":
            send = _send_with_id(send, request_id)
        with bound(request_id=request_id):
            await self.app(scope, receive, send)


@contextmanager
def asgi_request(scope: Scope, send: Send) -> Iterator[tuple[Send, dict[str, Any]]]:
    """For an ASGI path that bypasses Django (the lean SMS webhook): the request id in and out
    and the one ``request`` line, as :class:`RequestLogMiddleware` does. Yields the ``send``
    to answer with and the line's fields (add to them with :func:`bind`)."""
    request_id = scope_request_id(scope)
    state: dict[str, int] = {"status": 500}
    send_with_id = _send_with_id(send, request_id, state)
    start = time.perf_counter()
    with bound(request_id=request_id) as line:
        try:
            yield send_with_id, line
        except asyncio.CancelledError:
            if not state.get("answered"):
                state["status"] = CLIENT_CLOSED
            raise
        finally:
            path = scope.get("root_path", "") + scope.get("path", "")
            status = state["status"]
            level = _status_level(status, path)
            if requests_logger.isEnabledFor(level):
                _request_line(level, scope.get("method"), path, status, start, line)


# ---------------------------------------------------------------------------------- sockets


def socket_event(kind: str, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One line for a socket's connect, refusal, resume or disconnect (``kind``: console,
    wallboard...). The consumer binds its ids (:func:`bind`) when it connects: they come from
    the context."""
    if sockets_logger.isEnabledFor(level):
        fields = {k: v for k, v in fields.items() if v is not None}
        sockets_logger.log(level, f"socket {event}", socket=kind, **fields)


def socket_closed(kind: str, connected_at: float | None, code: int) -> None:
    """The ``socket disconnect`` line of a socket accepted at ``connected_at`` (monotonic
    time; None: it was refused, and said so then)."""
    if connected_at is not None:
        socket_event(
            kind, "disconnect", code=code, duration_s=round(time.monotonic() - connected_at, 1)
        )


# ------------------------------------------------------------------------------------ Celery

_TASK_HEADER = "cc_request_id"
_ID_PARAMS = ("interaction_id", "agent_id", "organisation_id")
_signatures: dict[str, inspect.Signature | None] = {}
_running: dict[str, tuple[Any, float]] = {}


def _task_ids(task: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """The interaction, agent and organisation a task was called for, by argument name."""
    name = task.name
    if name not in _signatures:
        try:
            _signatures[name] = inspect.signature(task.run)
        except (TypeError, ValueError):
            _signatures[name] = None
    signature = _signatures[name]
    if signature is None or not any(p in signature.parameters for p in _ID_PARAMS):
        return {}
    try:
        arguments = signature.bind_partial(*(args or ()), **(kwargs or {})).arguments
    except TypeError:
        return {}
    return {p: arguments[p] for p in _ID_PARAMS if isinstance(arguments.get(p), int | str)}


def _before_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers[_TASK_HEADER] = request_id


def _task_prerun(
    task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    if task is None:
        return
    request = task.request
    fields: dict[str, Any] = {"task_id": task_id, "task": task.name}
    given = valid_request_id(getattr(request, _TASK_HEADER, None))
    if given:
        fields["request_id"] = given
    elif not request.is_eager or current_request_id() is None:
        fields["request_id"] = task_id  # a periodic or unrelated task: its own id
    fields.update(_task_ids(task, args, kwargs))
    tokens = structlog.contextvars.bind_contextvars(**fields)
    _running[task_id] = (tokens, time.perf_counter())


def _task_postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _running.pop(task_id, None)
    if task is None or started is None:
        return
    tokens, start = started
    level = logging.DEBUG if task.request.is_eager else logging.INFO
    try:
        if tasks_logger.isEnabledFor(level):
            tasks_logger.log(
                level,
                "task",
                state=state,
                **({"retries": task.request.retries} if task.request.retries else {}),
                duration_ms=round((time.perf_counter() - start) * 1000, 1),
            )
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    """Workers and beat: Django's ``LOGGING`` (so the same format), instead of Celery's own;
    the command line's ``-l`` still sets the level."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


def connect_celery() -> None:
    from celery import signals

    signals.setup_logging.connect(_setup_logging, weak=False)
    signals.before_task_publish.connect(_before_publish, weak=False)
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)


configure_structlog()
# Bound once (not lazy proxies, which build a logger at every call: 20 µs a line).
requests_logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(
    "contactcentre.requests"
).bind()
tasks_logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(
    "contactcentre.tasks"
).bind()
sockets_logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(
    "contactcentre.sockets"
).bind()
