"""Chat writes: starting a conversation, the bot step, the hand-over to a human, messages both
ways, typing indicators, the end of a conversation and the transcript by e-mail.

The bot runs the widget endpoint's published flow with :mod:`flows.engine`, the same engine as
the phone's SVI: a menu is shown as buttons instead of being read out, the option's key is the
answer instead of a DTMF digit. When the flow reaches its queue (or voicemail/callback) the
conversation is handed over through :func:`channels_inbound.ingest.do_ingest_message`, like any
other channel: the interaction is queued and routed by the router.

Every action owns its transaction and publishes after commit (``kernel.events``):
to the chat session's group (the citizen's tabs) and to the assigned agent's group (the
console). Lock order: the ``ChatSession`` row first, then what the ingest path or the
life cycle lock (``Offer`` → ``Interaction`` → contact).

Called by the agent console: :func:`do_send_chat_message` and :func:`do_send_agent_typing`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from channels_inbound.ingest import InboundMessage, IngestError, do_ingest_message
from channels_inbound.queues import named_queue
from configuration.models import Queue
from flows import engine
from flows.selectors import published_version_for_endpoint
from interactions.actions import StaleTransition, do_record_message, do_transition_interaction
from interactions.channels import Channel
from interactions.lifecycle import OPEN_STATUSES, WAITING_STATUSES, Status
from interactions.models import Interaction, Message
from kernel import event_catalogue
from kernel.events import agent_group, publish
from routing.models import Offer, OfferStatus

from .errors import ChatError
from .events import chat_group, send_now_sync
from .models import ChatSession, ChatState, ChatTopic, ChatWidget
from .selectors import agent_name, display_state, message_entry, start_message_id
from .tokens import new_visitor_id

logger = logging.getLogger(__name__)

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NAME_CHARS = 100


# --- Helpers ------------------------------------------------------------------------------------
def _now_iso(now: datetime) -> str:
    return now.isoformat()


def _log(session: ChatSession, kind: str, text: str, now: datetime) -> dict[str, Any]:
    """Append one line of the bot conversation and publish it to the citizen's tabs."""
    entry = {"id": f"b{len(session.bot_log) + 1}", "kind": kind, "text": text, "at": _now_iso(now)}
    session.bot_log = [*session.bot_log, entry]
    publish(*event_catalogue.chat_entry(entry=entry), groups=[chat_group(session.pk)])
    return entry


def _publish_state(session: ChatSession, state: str, agent: str = "") -> None:
    publish(*event_catalogue.chat_state(state=state, agent=agent), groups=[chat_group(session.pk)])


def _locked_session(session_id: UUID | str) -> ChatSession:
    session = (
        ChatSession.objects.select_for_update(of=("self",))
        .select_related("widget__endpoint__queue", "flow_version", "topic")
        .filter(pk=session_id)
        .first()
    )
    if session is None:
        raise ChatError("unavailable", f"no chat session {session_id}")
    return session


def _merge_skills(*sources: dict[str, int] | None) -> dict[str, int]:
    merged: dict[str, int] = {}
    for source in sources:
        for code, level in (source or {}).items():
            merged[code] = max(level, merged.get(code, 0))
    return merged


def _queue_for(session: ChatSession, code: str) -> Queue:
    widget = session.widget
    return (
        named_queue(widget.organisation_id, code, source=f"chat {session.pk}")
        or widget.endpoint.queue
    )


def _session_ids(interaction_id: int) -> list[UUID]:
    return list(
        ChatSession.objects.filter(
            interaction_id=interaction_id, state=ChatState.HANDED_OVER
        ).values_list("pk", flat=True)
    )


# --- Starting, and the bot ----------------------------------------------------------------------
def do_start_chat(
    *,
    widget: ChatWidget,
    name: str,
    topic_id: int | None,
    language: str,
    visitor_id: str | None = None,
    now: datetime | None = None,
) -> ChatSession:
    """The pre-chat form was sent: record the session and run the bot (or hand over at once
    when the widget's endpoint has no published flow)."""
    now = now or timezone.now()
    name = " ".join(name.split())[:MAX_NAME_CHARS]
    if not name:
        raise ChatError("required", "a name is required")
    topics = list(widget.topics.all())
    topic: ChatTopic | None = None
    if topics:
        topic = next((t for t in topics if t.pk == topic_id), None)
        if topic is None:
            raise ChatError("required", "choose one of the widget's topics")
    with transaction.atomic():
        session = ChatSession.objects.create(
            widget=widget,
            visitor_id=visitor_id or new_visitor_id(),
            display_name=name,
            topic=topic,
            topic_label=topic.label if topic else "",
            language=language,
            last_seen_at=now,
        )
        session.widget = widget
        version = published_version_for_endpoint(widget.endpoint_id)
        if version is None:
            _hand_over(session, queue_code="", skills={}, priority=None, language=None, now=now)
        else:
            session.flow_version = version
            step = engine.start(version.graph, context=engine.Context(now=now, caller_known=False))
            _apply(session, step, now)
        session.save()
    return session


def _ask_payload(ask: engine.Ask) -> dict[str, Any]:
    return {
        "node": ask.node_id,
        "attempt": ask.attempt,
        "prompt": ask.prompt.text,
        "options": [{"key": o.key, "label": o.label or o.key} for o in ask.options],
    }


def _apply(session: ChatSession, step: engine.Step, now: datetime) -> None:
    """Show the engine's actions to the citizen and do what the terminal one says."""
    ask_payload: dict[str, Any] | None = None
    with translation.override(session.language):
        for action in step.actions:
            if isinstance(action, engine.Say):
                if action.text:
                    _log(session, "bot", action.text, now)
            elif isinstance(action, engine.Ask):
                if action.prompt.text:
                    _log(session, "bot", action.prompt.text, now)
                ask_payload = _ask_payload(action)
            elif isinstance(action, engine.Enqueue | engine.Voicemail | engine.Callback):
                # Chat has no recording and no number to call back: the citizen writes, and
                # the conversation waits for an agent like any other chat.
                session.flow_session = {**step.session.to_dict(), "ask": None}
                _hand_over(
                    session,
                    queue_code=action.queue,
                    skills=action.skills,
                    priority=action.priority,
                    language=action.language,
                    now=now,
                )
                return
            elif isinstance(action, engine.Transfer):
                text = _("You can call us on %(number)s.") % {"number": action.number}
                _log(session, "bot", text, now)
                _end(session, now)
            elif isinstance(action, engine.Hangup):
                _end(session, now)
    session.flow_session = {**step.session.to_dict(), "ask": ask_payload}
    if ask_payload is not None:
        publish(*event_catalogue.chat_ask(ask=ask_payload), groups=[chat_group(session.pk)])


def _end(session: ChatSession, now: datetime) -> None:
    session.state = ChatState.ENDED
    session.ended_at = now
    _publish_state(session, "ended")


def _flow_summary(session: ChatSession) -> str:
    path = " > ".join(session.flow_session.get("path", [])) or "-"
    with translation.override(settings.LANGUAGE_CODE):  # read by agents
        return _("Web chat from %(name)s. Topic: %(topic)s. Assistant: %(path)s") % {
            "name": session.display_name,
            "topic": session.topic_label or "-",
            "path": path,
        }


def _hand_over(
    session: ChatSession,
    *,
    queue_code: str,
    skills: dict[str, int],
    priority: int | None,
    language: str | None,
    now: datetime,
) -> None:
    """The bot is done: the conversation becomes a queued chat interaction."""
    widget = session.widget
    try:
        with translation.override(settings.LANGUAGE_CODE):
            subject = session.topic_label or _("Web chat")
        result = do_ingest_message(
            InboundMessage(
                channel=Channel.CHAT,
                sender=session.visitor_id,
                recipient=widget.key,
                text=_flow_summary(session),
                subject=subject,
                display_name=session.display_name,
                provider_id=start_message_id(session),
                thread_ref=session.thread_ref,
                required_skills=_merge_skills(session.topic.skills if session.topic else {}, skills)
                or None,
                language=language,
                priority=priority,
            ),
            queue=_queue_for(session, queue_code),
        )
    except IngestError as exc:
        logger.error("chat %s could not be handed over: %s", session.pk, exc)
        raise ChatError("unavailable", str(exc)) from exc
    session.interaction = result.interaction
    session.state = ChatState.HANDED_OVER
    session.flow_session = {**session.flow_session, "ask": None}
    state = display_state(session.state, result.interaction.status)
    agent = agent_name(result.interaction.assigned_agent_id) if state == "chatting" else ""
    _publish_state(session, state, agent)


def do_choose_option(
    *, session_id: UUID | str, key: str, node: str | None = None, now: datetime | None = None
) -> None:
    """The citizen pressed a button of the bot's question (``key`` is the option's key)."""
    now = now or timezone.now()
    with transaction.atomic():
        session = _locked_session(session_id)
        _answer(session, key=str(key)[:64], shown=None, node=node, now=now)
        session.last_seen_at = now
        session.save()


def _answer(
    session: ChatSession, *, key: str, shown: str | None, node: str | None, now: datetime
) -> None:
    ask = session.flow_session.get("ask")
    if session.state != ChatState.BOT or session.flow_version is None or not ask:
        raise ChatError("not_now", "the bot is not waiting for an answer")
    if node is not None and node != ask["node"]:
        # A late click on an earlier question (another tab answered it): show the current one.
        publish(*event_catalogue.chat_ask(ask=ask), groups=[chat_group(session.pk)])
        return
    label = next((o["label"] for o in ask["options"] if o["key"] == key), None)
    _log(session, "citizen", shown if shown is not None else (label or key), now)
    step = engine.resume(
        session.flow_version.graph,
        session=engine.Session.from_dict(session.flow_session),
        user_input=key if label is not None else "",
        context=engine.Context(now=now, caller_known=False),
    )
    _apply(session, step, now)


def _typed_answer_key(ask: dict[str, Any], text: str) -> str:
    """A citizen may type an option's label or key instead of pressing its button."""
    wanted = text.strip().casefold()
    for option in ask["options"]:
        if wanted in (option["key"].casefold(), option["label"].casefold()):
            return str(option["key"])
    return ""


# --- Messages -----------------------------------------------------------------------------------
def _clean_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ChatError("empty")
    text = text.replace("\x00", "").strip()
    if not text:
        raise ChatError("empty")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError("too_long")
    return text


@dataclass(frozen=True)
class CitizenMessage:
    """What became of a citizen's message: ``message`` is None during the bot step (the text
    answered the bot); ``entry`` is the message as the widget shows it, with its client id;
    ``created`` is false when that client id was already stored (a re-sent frame)."""

    message: Message | None
    entry: dict[str, Any] | None = None
    created: bool = False


def do_receive_citizen_message(
    *,
    session_id: UUID | str,
    text: str,
    client_id: str | None = None,
    now: datetime | None = None,
) -> CitizenMessage:
    """The citizen wrote. During the bot step the text answers the bot's question; after the
    hand-over it is ingested as an inbound message of the interaction, once per ``client_id``:
    a frame the widget sends again (after a reconnection, or when no echo came) is not stored
    twice, and is answered with the stored message even after the conversation ended, so the
    widget can mark it sent."""
    now = now or timezone.now()
    text = _clean_text(text)
    with transaction.atomic():
        session = _locked_session(session_id)
        session.last_seen_at = now
        if session.state == ChatState.BOT:
            ask = session.flow_session.get("ask")
            if not ask:
                raise ChatError("not_now")
            _answer(session, key=_typed_answer_key(ask, text), shown=text, node=None, now=now)
            session.save()
            return CitizenMessage(None)
        interaction = session.interaction
        if not (client_id and CLIENT_ID_RE.match(client_id)):
            client_id = None
        provider_id = f"{session.thread_ref}:{client_id}" if client_id else None
        if provider_id:
            stored = Message.objects.filter(channel=Channel.CHAT, provider_id=provider_id).first()
            if stored is not None:
                return CitizenMessage(stored, message_entry(stored, client_id=client_id or ""))
        status = interaction.status if interaction else None
        if display_state(session.state, status) == "ended" or interaction is None:
            raise ChatError("ended")
        result = do_ingest_message(
            InboundMessage(
                channel=Channel.CHAT,
                sender=session.visitor_id,
                recipient=session.widget.key,
                text=text,
                provider_id=provider_id,
                thread_ref=session.thread_ref,
            ),
            queue=session.widget.endpoint.queue,
        )
        session.save(update_fields=["last_seen_at"])
        message = result.message
        entry = message_entry(message, client_id=client_id or "")
        if result.created:
            # (the assigned agent's consoles get "message.created" from do_record_message)
            publish(*event_catalogue.chat_entry(entry=entry), groups=[chat_group(session.pk)])
    return CitizenMessage(message, entry, result.created)


def do_send_chat_message(*, interaction_id: int, author_id: int, text: str) -> Message:
    """An agent (``author_id`` is their **user** id) writes to the citizen of a chat interaction.

    Records the outbound message (``interactions.actions.do_record_message``, which also tells
    the assigned agent's consoles: ``message.created``) and, after commit, pushes it to the
    citizen's window. Raises :class:`ChatError`
    (``not_chat``, ``ended``, ``empty``, ``too_long``).
    """
    text = _clean_text(text)
    author = get_user_model().objects.filter(pk=author_id, is_active=True).first()
    if author is None:
        raise ChatError("unavailable", f"no active user {author_id}")
    with transaction.atomic():
        interaction = Interaction.objects.filter(pk=interaction_id).first()
        if interaction is None or interaction.channel != Channel.CHAT:
            raise ChatError("not_chat", f"interaction {interaction_id} is not a web chat")
        if interaction.status not in OPEN_STATUSES:
            raise ChatError("ended", f"interaction {interaction_id} is {interaction.status}")
        message = do_record_message(
            interaction=interaction, direction="outbound", text=text, author=author
        ).message
        sessions = _session_ids(interaction.pk)
        entry = message_entry(message, author=author.first_name)
        if sessions:
            publish(
                *event_catalogue.chat_entry(entry=entry), groups=[chat_group(s) for s in sessions]
            )
    return message


def do_send_agent_typing(
    *, interaction_id: int, typing: bool = True, agent_id: int | None = None
) -> None:
    """Show (or hide) "Claire is typing…" in the citizen's window. Ephemeral: nothing is
    stored; the widget hides the indicator by itself a few seconds after the last call, so a
    console may call this repeatedly while the agent types and never send ``typing=False``.
    With ``agent_id``, nothing is shown unless that agent handles the chat."""
    row = (
        Interaction.objects.filter(pk=interaction_id, channel=Channel.CHAT)
        .values("assigned_agent_id")
        .first()
    )
    if row is None or (agent_id is not None and row["assigned_agent_id"] != agent_id):
        return
    sessions = _session_ids(interaction_id)
    if sessions:
        send_now_sync(
            [chat_group(s) for s in sessions],
            *event_catalogue.chat_typing_to_citizen(
                typing=bool(typing), name=agent_name(row["assigned_agent_id"])
            ),
        )


# --- The end of a conversation ------------------------------------------------------------------
def do_end_chat(
    *, session_id: UUID | str, reason: str = "citizen_left", now: datetime | None = None
) -> None:
    """The citizen ends the conversation (or left a waiting chat for good: ``citizen_gone``).

    A chat still waiting is abandoned (a pending offer for it is cancelled, so the agent is
    neither disturbed nor paused as "missed"); a chat in progress stays with its agent, who is
    told (``chat.ended``) and wraps it up.
    """
    now = now or timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                _end_locked(session_id, reason, now)
            return
        except StaleTransition:
            continue  # the router moved the interaction meanwhile: look again
    logger.error("chat %s: could not end interaction", session_id)


def _end_locked(session_id: UUID | str, reason: str, now: datetime) -> None:
    session = _locked_session(session_id)
    if session.state == ChatState.ENDED:
        return
    interaction_id = session.interaction_id
    if session.state == ChatState.HANDED_OVER and interaction_id is not None:
        # Locking rule 1: Offer, then Interaction. A pending offer is cancelled by routing's
        # receiver of the abandon (routing.receivers.cancel_offers_of_left_interactions).
        list(
            Offer.objects.select_for_update()
            .filter(interaction_id=interaction_id, status=OfferStatus.PENDING)
            .order_by("pk")
        )
        interaction = Interaction.objects.select_for_update().get(pk=interaction_id)
        if interaction.status in WAITING_STATUSES:
            do_transition_interaction(
                interaction=interaction,
                to=Status.ABANDONED,
                reason=reason,
                now=now,
                extra={"assigned_agent": None} if interaction.assigned_agent_id else None,
            )
        elif interaction.status == Status.ASSIGNED and interaction.assigned_agent_id:
            publish(
                *event_catalogue.chat_ended(interaction_id=interaction_id, reason=reason),
                groups=[agent_group(interaction.assigned_agent_id)],
            )
    session.state = ChatState.ENDED
    session.ended_at = now
    session.save(update_fields=["state", "ended_at"])
    _publish_state(session, "ended")


def do_abandon_gone_chats(*, now: datetime | None = None) -> int:
    """Sweep: waiting chats whose citizen has not been connected for
    ``CHAT_ABANDON_AFTER_SECONDS`` are abandoned (they closed the page and did not come back)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CHAT_ABANDON_AFTER_SECONDS)
    gone = list(
        ChatSession.objects.filter(
            state=ChatState.HANDED_OVER,
            last_seen_at__lt=cutoff,
            interaction__status__in=WAITING_STATUSES,
        ).values_list("pk", flat=True)[:500]
    )
    for session_id in gone:
        do_end_chat(session_id=session_id, reason="citizen_gone", now=now)
    return len(gone)


def do_touch_chat(*, session_id: UUID | str, now: datetime | None = None) -> None:
    """The citizen is (still) connected."""
    ChatSession.objects.filter(pk=session_id).update(last_seen_at=now or timezone.now())


# --- Transcript ---------------------------------------------------------------------------------
def transcript_address(email: str) -> str:
    """The address the citizen typed, checked (``ChatError("email")`` when it is not one)."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ChatError("email", "not an e-mail address") from None
    return email


def do_request_transcript(*, session_id: UUID | str, email: str, site_url: str) -> None:
    """The citizen asks for the conversation at ``email``: a confirmation link goes there first
    (after commit, by a Celery task); the conversation follows once the link is confirmed
    (:func:`do_send_confirmed_transcript`). ``site_url``: our public origin, for the link."""
    email = transcript_address(email)
    with transaction.atomic():
        session = _locked_session(session_id)
        if not session.widget.transcripts_enabled:
            raise ChatError("unavailable", "transcripts are off for this widget")
        if session.transcripts_sent >= settings.CHAT_TRANSCRIPTS_PER_SESSION:
            raise ChatError("transcript_limit")
        session.transcripts_sent += 1
        session.save(update_fields=["transcripts_sent"])
        pk = str(session.pk)

        def send() -> None:
            from .tasks import send_chat_transcript_confirmation
            from .transcript import confirmation_url

            try:
                send_chat_transcript_confirmation.delay(
                    session_id=pk, email=email, url=confirmation_url(site_url, pk, email)
                )
            except Exception:
                logger.exception("could not enqueue the transcript confirmation of chat %s", pk)

        transaction.on_commit(send)


def do_send_confirmed_transcript(*, session_id: str, email: str) -> bool:
    """The citizen opened the confirmation link sent to ``email`` and confirmed: the
    conversation goes there (by a Celery task). False when the chat or its transcripts are
    gone."""
    session = ChatSession.objects.select_related("widget").filter(pk=session_id).first()
    if session is None or not session.widget.transcripts_enabled:
        return False
    from .tasks import send_chat_transcript

    send_chat_transcript.delay(session_id=str(session.pk), email=email)
    return True
