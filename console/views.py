"""The agent console: pages and the small endpoints its JavaScript posts to.

Views only parse input, check that the agent may act, and call an action. What an agent sees
and picks (citizens and their history, colleagues, queues, canned responses, wrap-up codes) is
what ``organisations.authz`` lets them see, within the organisation of the interaction they
handle; another organisation's id is "not found". Endpoints answer
JSON to the console's script (``Accept: application/json``) and redirect back otherwise, so
every form also works without JavaScript.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_POST

from agents.models import (
    AGENT_PAUSE_REASONS,
    ALL_CHANNELS,
    AgentProfile,
    AgentSkill,
    AgentState,
    OfflineReason,
    PauseReason,
    validate_telework_phone,
)
from agents.presence import PresenceError, do_set_agent_state, do_set_channels
from channels_inbound.email.actions import (
    SUBJECT_MAX_LENGTH,
    clean_reply_subject,
    default_reply_subject,
    render_email_html,
)
from channels_inbound.identities import identities_in_use
from configuration.models import Queue, QueueSkill
from contacts.actions import (
    ContactError,
    do_add_identity,
    do_merge_contacts,
    do_remove_identity,
    find_contact,
)
from contacts.models import Case, Contact, ContactIdentity, IdentityKind
from interactions.channels import Channel
from interactions.lifecycle import IllegalTransition, Status
from interactions.models import Channel as ChannelChoices
from interactions.models import Interaction, MessageDirection
from kernel.audit import AccessAction, log_access
from kernel.errors import ApplicationError
from kernel.redirects import safe_next_url
from organisations import authz
from routing.errors import TransferError
from routing.selectors import transfer_note_ids
from routing.transfers import do_offer_to_agent, do_transfer_to_queue

from . import answers
from .actions import (
    ConsoleError,
    do_add_note,
    do_start_wrap_up,
    handled_interaction,
)
from .middleware import request_access
from .models import CannedResponse, InteractionWrapUp
from .replies import ReplyError, send_reply
from .state import build_snapshot

View = Callable[..., HttpResponse]
logger = logging.getLogger(__name__)


def _session_save_never_fails(request: HttpRequest) -> None:
    """The session is never the reason an action that committed is reported as failed.

    The session middleware saves the session after the view (the idle timeout's last activity):
    if that save fails (session store down, row gone), the action already committed and its
    answer must stay the success. The failure is logged; the session keeps its previous state
    (at worst the idle clock was not moved forward)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    save = session.save

    def safe_save(*args: Any, **kwargs: Any) -> None:
        try:
            save(*args, **kwargs)
        except Exception:
            logger.exception("console: the session could not be saved after %s", request.path)

    session.save = safe_save


def agent_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Read with the second-factor facts, in the same statement (console.middleware).
        agent = request_access(request).agent
        if agent is None:
            return render(request, "console/not_an_agent.html", status=403)
        request.agent = agent  # type: ignore[attr-defined]
        _session_save_never_fails(request)
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            # The console's one mapping of business errors: the error's message, the status of
            # its kind (kernel.errors.HTTP_STATUS) and its code, as JSON to the script
            # ({"ok": false, "message", "code"}) or as a message on the page it came from.
            return _answer(request, answers.refused(exc))

    return wrapper


def _agent(request: HttpRequest) -> AgentProfile:
    return request.agent  # type: ignore[attr-defined]


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _answer(request: HttpRequest, answer: answers.Answer) -> HttpResponse:
    return _done(request, answer.message, status=answer.status, **answer.data)


def _done(request: HttpRequest, message: str, *, status: int = 200, **data: Any) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(answers.Answer(status, message, data).as_json(), status=status)
    if message:
        (messages.success if status < 400 else messages.error)(request, message)
    return redirect(safe_next_url(request, request.POST.get("next"), reverse("console:console")))


def _state_labels() -> dict[str, str]:
    return {
        **{s.value: str(s.label) for s in AgentState},
        **{f"paused:{r.value}": str(r.label) for r in PauseReason},
        **{f"offline:{r.value}": str(r.label) for r in OfflineReason},
    }


@agent_required
@require_GET
def console(request: HttpRequest) -> HttpResponse:
    agent = _agent(request)
    return render(
        request,
        "console/console.html",
        {
            "agent": agent,
            "snapshot": build_snapshot(agent),
            "pause_reasons": AGENT_PAUSE_REASONS,
            # shown when the system or a supervisor set them, never pickable
            "system_states": [
                (f"paused:{r.value}", f"{_('Paused')} – {r.label}")
                for r in PauseReason
                if r not in AGENT_PAUSE_REASONS
            ]
            + [(f"offline:{r.value}", f"{_('Offline')} – {r.label}") for r in OfflineReason],
            "channels": [(c, _channel_label(c)) for c in ALL_CHANNELS],
            "config": {
                "wsPath": "/ws/console/",
                "heartbeatSeconds": settings.CONSOLE_HEARTBEAT_SECONDS,
                "idleTimeoutSeconds": settings.CONSOLE_IDLE_TIMEOUT_SECONDS,
                "idleWarningSeconds": settings.CONSOLE_IDLE_WARNING_SECONDS,
                "labels": _state_labels(),
                "channelLabels": {c: _channel_label(c) for c in ALL_CHANNELS},
            },
        },
    )


@agent_required
@require_GET
def snapshot(request: HttpRequest) -> HttpResponse:
    """The console's state now: what the console re-reads after any failed action, instead of
    assuming what the failure did (an accept answered 500 may have left the offer pending)."""
    return JsonResponse(build_snapshot(_agent(request)))


def _channel_label(channel: str) -> str:
    return str(ChannelChoices(channel).label)


@agent_required
@require_POST
def set_state(request: HttpRequest) -> HttpResponse:
    value = request.POST.get("state", "")
    state, _sep, reason = value.partition(":")
    if state == AgentState.PAUSED and not reason:
        reason = request.POST.get("reason", "")
    if state == AgentState.PAUSED and reason not in AGENT_PAUSE_REASONS:
        # "missed" and "supervisor" are set by the system or a supervisor, not chosen
        return _done(
            request,
            _("This pause reason cannot be chosen: the system or a supervisor sets it."),
            status=400,
        )
    try:
        do_set_agent_state(agent=_agent(request), state=state, reason=reason)
    except PresenceError:
        return _done(request, _("This state cannot be chosen."), status=400)
    return _done(request, _("State changed."))


@agent_required
@require_POST
def set_channels(request: HttpRequest) -> HttpResponse:
    try:
        do_set_channels(agent=_agent(request), channels=request.POST.getlist("channels"))
    except PresenceError:
        return _done(request, _("Unknown channel."), status=400)
    return _done(request, _("Channels updated."))


@agent_required
@require_POST
def accept_offer(request: HttpRequest, offer_id: int) -> HttpResponse:
    return _answer(request, answers.accept(_agent(request), offer_id))


@agent_required
@require_POST
def decline_offer(request: HttpRequest, offer_id: int) -> HttpResponse:
    return _answer(request, answers.decline(_agent(request), offer_id))


def _in_scope(request: HttpRequest, interaction_id: int) -> None:
    """Another organisation's interaction (or one authz hides) is not found, whatever the
    action: its id tells nothing."""
    if not answers.in_scope(request.user, interaction_id):
        raise Http404


def _mine(request: HttpRequest, interaction_id: int) -> Interaction:
    try:
        return handled_interaction(interaction_id=interaction_id, agent=_agent(request))
    except ConsoleError as exc:
        raise Http404 from exc


def chat_ended(interaction: Interaction) -> bool:
    """The citizen left this chat (``chat.ended``): nothing can reach them any more."""
    if interaction.channel != Channel.CHAT:
        return False
    from channels_inbound.chat.models import ChatSession, ChatState

    return ChatSession.objects.filter(interaction=interaction, state=ChatState.ENDED).exists()


def _attachment_links(message: Any) -> list[dict[str, Any]]:
    """Each attachment with where the agent opens it: the download route for a stored file (an
    MMS picture or a voicemail recording once fetched from the provider: channels_inbound.media;
    ``audio`` ones get a player), a note for provider media still being fetched or unavailable
    (with the reason), nothing for a refused file; the provider's own address only for media
    recorded before media were fetched."""
    from channels_inbound.media import pending_text, unavailable_text

    links = []
    for index, entry in enumerate(message.attachments or []):
        if not isinstance(entry, dict):
            continue
        href = ""
        if entry.get("storage_path") and not entry.get("refused"):
            href = reverse("console:attachment", args=[message.pk, index])
        elif "fetch" not in entry and str(entry.get("url", "")).startswith(("https://", "http://")):
            href = str(entry["url"])
        links.append(
            {
                "name": entry.get("name") or f"{index + 1}",
                "href": href,
                "external": bool(href) and not href.startswith("/"),
                "audio": href.startswith("/") and str(entry.get("content_type", "")) in AUDIO_TYPES,
                "note": unavailable_text(entry) or pending_text(entry),
            }
        )
    return links


# --------------------------------------------------------------------------- delivery states

# What the thread says of an outbound message's ``delivery_status`` (SMS provider statuses,
# e-mail queued/sent/failed): the state in words (never only a colour), and whether the agent
# may send it again or on another channel.
DELIVERY_PENDING = frozenset({"pending", "accepted", "scheduled", "queued", "sending"})
DELIVERY_FAILED = frozenset({"failed", "undelivered", "refused"})
RETRYABLE = frozenset({"failed", "undelivered"})  # "refused": the citizen opted out (STOP)
# a failed message's other channel
SWITCHABLE = {Channel.SMS.value: Channel.EMAIL.value, Channel.EMAIL.value: Channel.SMS.value}


# The pictogram beside each kind's words (decorative: the words say it; hidden from screen
# readers): a clock, a tick, two ticks, a warning sign, as in the messaging apps citizens use.
DELIVERY_ICONS = {
    "pending": "\u25f7",
    "sent": "\u2713",
    "delivered": "\u2713\u2713",
    "failed": "\u26a0",
}


def delivery_icon(kind: str) -> str:
    return DELIVERY_ICONS.get(kind, DELIVERY_ICONS["pending"])


def delivery_state(status: str, reason: str = "") -> dict[str, str]:
    """``{"kind", "label"}`` of a delivery status: kind is pending, sent, delivered or failed
    (its pictogram: ``delivery_icon``)."""
    if status in DELIVERY_PENDING:
        if reason:  # an attempt failed and another is planned
            return {"kind": "pending", "label": _("Not sent yet, trying again")}
        return {"kind": "pending", "label": _("Sending…")}
    if status == "sent":
        return {"kind": "sent", "label": _("Sent")}
    if status in ("delivered", "read"):
        return {"kind": "delivered", "label": _("Delivered")}
    if status == "undelivered":
        return {"kind": "failed", "label": _("Not delivered")}
    if status == "refused":
        return {"kind": "failed", "label": _("Refused: the citizen replied STOP")}
    if status == "failed":
        return {"kind": "failed", "label": _("Not sent")}
    return {"kind": "pending", "label": status}


def _switch_channels(interaction: Interaction) -> set[str]:
    """The channels a failed message of ``interaction`` can be sent on instead: the citizen has
    an identity there and the organisation a way to send (an active e-mail address; an active
    SMS number on the interaction's queue)."""
    from channels_inbound.models import Endpoint

    if not interaction.contact_id:
        return set()
    kinds = set(
        ContactIdentity.objects.filter(
            contact_id=interaction.contact_id, kind__in=[IdentityKind.EMAIL, IdentityKind.PHONE]
        ).values_list("kind", flat=True)
    )
    found: set[str] = set()
    if IdentityKind.EMAIL in kinds and (
        Endpoint.objects.filter(
            channel=Channel.EMAIL, active=True, organisation_id=interaction.organisation_id
        ).exists()
    ):
        found.add(Channel.EMAIL)
    if IdentityKind.PHONE in kinds and (
        Endpoint.objects.filter(
            channel=Channel.SMS, active=True, queue_id=interaction.queue_id or 0
        ).exists()
    ):
        found.add(Channel.SMS)
    return found


def _deliveries(interaction: Interaction, messages: list[Any]) -> dict[int, dict[str, Any]]:
    """Each outbound message's delivery state, with the reason a send failed (an SMS keeps it;
    an e-mail's is only in the live ``message.status`` event) and what the agent can do."""
    from channels_inbound.sms.models import OutboundSms

    outbound = [m for m in messages if m.direction == "outbound" and m.delivery_status]
    if not outbound:
        return {}
    reasons = dict(
        OutboundSms.objects.filter(message_id__in=[m.pk for m in outbound]).values_list(
            "message_id", "error"
        )
    )
    can_act = interaction.status == Status.ASSIGNED
    failed_ones = [m for m in outbound if m.delivery_status in DELIVERY_FAILED]
    switch = _switch_channels(interaction) if can_act and failed_ones else set()
    found = {}
    for m in outbound:
        reason = reasons.get(m.pk) or ""
        state = delivery_state(m.delivery_status, reason)
        mine = can_act and m.author_id is not None and m.delivery_status in DELIVERY_FAILED
        other = SWITCHABLE.get(m.channel)
        found[m.pk] = {
            **state,
            "icon": delivery_icon(state["kind"]),
            "status": m.delivery_status,
            "reason": reason,
            "retry": mine and m.delivery_status in RETRYABLE,
            "switch": other if mine and other in switch else "",
            "switch_label": _("Send by e-mail instead")
            if other == Channel.EMAIL
            else _("Send by SMS instead"),
        }
    return found


def _thread_context(interaction: Interaction) -> dict[str, Any]:
    items = []
    messages = list(interaction.messages.select_related("author").order_by("created_at", "id"))
    deliveries = _deliveries(interaction, messages)
    transfer_notes = (
        transfer_note_ids(interaction.pk)
        if any(m.direction == MessageDirection.NOTE for m in messages)
        else set()
    )
    for message in messages:
        html = ""
        if interaction.channel == Channel.EMAIL and message.html:
            html = render_email_html(message.html)
        items.append(
            {
                "message": message,
                "html": html,
                "attachments": _attachment_links(message),
                "delivery": deliveries.get(message.pk),
                "transfer_note": message.pk in transfer_notes,
            }
        )
    return {
        "interaction": interaction,
        "items": items,
        "chat_ended": chat_ended(interaction),
        # Inbound messages are labelled with the name the citizen gave (a chat's pre-chat form,
        # an e-mail's From name), else "Citizen".
        "citizen_name": _citizen_name(interaction),
    }


def _citizen_name(interaction: Interaction) -> str:
    """The name the citizen gave: a chat's pre-chat form (this conversation's, even when the
    visitor gave another name before), else their record's."""
    if interaction.channel == Channel.CHAT:
        from channels_inbound.chat.models import ChatSession

        given = (
            ChatSession.objects.filter(interaction=interaction)
            .order_by("-created_at")
            .values_list("display_name", flat=True)
            .first()
        )
        if given:
            return given
    return interaction.contact.display_name if interaction.contact_id else ""  # type: ignore[union-attr]


@agent_required
@require_GET
def thread(request: HttpRequest, interaction_id: int) -> HttpResponse:
    interaction = _mine(request, interaction_id)
    log_access(request.user, AccessAction.VIEW_THREAD, interaction)
    return render(request, "console/_thread.html", _thread_context(interaction))


@agent_required
@require_GET
def workspace(request: HttpRequest, interaction_id: int) -> HttpResponse:
    interaction = _mine(request, interaction_id)
    log_access(request.user, AccessAction.VIEW_THREAD, interaction, contact=interaction.contact_id)
    agent = _agent(request)
    language = interaction.language or "fr"
    org = interaction.organisation_id
    canned = sorted(
        authz.visible(request.user, CannedResponse)
        .filter(active=True, organisation_id=org)
        .filter(Q(queue__isnull=True) | Q(queue_id=interaction.queue_id)),
        key=lambda c: (c.language != language, c.title),
    )
    colleagues = _transfer_candidates(request, interaction, agent)
    is_email = interaction.channel == Channel.EMAIL
    context = {
        **_thread_context(interaction),
        "canned": canned,
        "wrap_up_codes": _wrap_up_codes(request, org),
        "queues": _queues(request, org).filter(active=True).order_by("name"),
        "colleagues": colleagues,
        "email_subject": default_reply_subject(interaction) if is_email else "",
        "subject_max_length": SUBJECT_MAX_LENGTH,
        "wrap_up": InteractionWrapUp.objects.filter(interaction=interaction).first(),
        "call_connected": call_connected(interaction, agent),
    }
    if interaction.contact_id:
        context.update(_citizen_context(request, interaction.contact))  # type: ignore[arg-type]
    return render(request, "console/_workspace.html", context)


def call_connected(interaction: Interaction, agent: AgentProfile) -> bool:
    """Whether the agent's phone answered this call. Until it has, the call is being connected
    (ringing, or a bridge the provider refused and that is tried again), never "in progress";
    ``call.answered`` tells the console when it changes."""
    if interaction.channel != Channel.VOICE or not interaction.external_ref:
        return False
    from channels_inbound.voice.models import Call

    return Call.objects.filter(
        call_sid=interaction.external_ref, agent_id=agent.pk, agent_answered_at__isnull=False
    ).exists()


def _queues(request: HttpRequest, organisation_id: int) -> Any:
    return authz.visible(request.user, Queue).filter(organisation_id=organisation_id)


def _colleagues(request: HttpRequest, organisation_id: int) -> Any:
    return authz.visible(request.user, AgentProfile).filter(organisation_id=organisation_id)


def _transfer_candidates(
    request: HttpRequest, interaction: Interaction, agent: AgentProfile
) -> list[tuple[str, list[AgentProfile]]]:
    """The colleagues who can take ``interaction`` now, by team: same organisation, available
    with a live console, taking its channel, holding the skills its queue requires at their
    minimum levels, with a free slot. The transfer checks presence and room again under its
    lock (routing.transfers.do_offer_to_agent): this list only spares the agent a refusal."""
    from routing import selectors
    from routing.transfers import has_room_for

    channel = interaction.channel
    rows = [
        a
        for a in _colleagues(request, interaction.organisation_id)
        .exclude(pk=agent.pk)
        .filter(
            user__is_active=True,
            presence__state=AgentState.AVAILABLE,
            presence__last_heartbeat_at__gte=selectors.heartbeat_cutoff(timezone.now()),
        )
        .select_related("user", "presence", "team")
        .order_by("team__name", "user__first_name", "user__username")
        if channel in (a.presence.channels_enabled or [])
    ]
    needed: dict[int, int] = {}
    if interaction.queue_id is not None:
        needed = dict(
            QueueSkill.objects.filter(queue_id=interaction.queue_id).values_list(
                "skill_id", "min_level"
            )
        )
    if needed:
        levels: dict[int, dict[int, int]] = {}
        for agent_id, skill_id, level in AgentSkill.objects.filter(
            agent__in=rows, skill_id__in=needed
        ).values_list("agent_id", "skill_id", "level"):
            levels.setdefault(agent_id, {})[skill_id] = level
        rows = [
            a for a in rows if all(levels.get(a.pk, {}).get(s, 0) >= m for s, m in needed.items())
        ]
    loads = selectors.agent_loads([a.pk for a in rows])
    by_team: dict[str, list[AgentProfile]] = {}
    for a in rows:
        if has_room_for(a, loads.get(a.pk, {}), channel):
            by_team.setdefault(a.team.name if a.team else str(_("No team")), []).append(a)
    return list(by_team.items())


def _wrap_up_codes(request: HttpRequest, organisation_id: int) -> Any:
    return answers.wrap_up_codes(request.user, organisation_id)


@agent_required
@require_POST
def reply(request: HttpRequest, interaction_id: int) -> HttpResponse:
    interaction = _mine(request, interaction_id)
    if interaction.status != Status.ASSIGNED:
        return _done(request, _("This conversation is in wrap-up: no more replies."), status=409)
    if chat_ended(interaction):
        # Nothing is sent nor stored: the citizen closed the chat and would never read it.
        return _done(
            request,
            _("The citizen has left this chat: your reply cannot reach them. Wrap it up."),
            status=409,
        )
    # An e-mail reply carries the subject the agent may have edited (absent: the proposed one).
    subject = request.POST.get("subject") if interaction.channel == Channel.EMAIL else None
    # A ReplyError (400, its message) means nothing was sent; the console keeps what the agent
    # typed (the form is not reset).
    message = send_reply(
        interaction=interaction,
        author_id=_agent(request).user_id,
        text=request.POST.get("text", ""),
        subject=subject,
    )
    return _done(request, _("Reply sent."), message_id=message.pk)


@agent_required
@require_POST
def retry_message(request: HttpRequest, message_id: int) -> HttpResponse:
    """Send a message that could not be sent again, as a new message: on its own channel, or on
    the citizen's other one (``channel``: an SMS by e-mail, an e-mail by SMS). Authorized like
    a reply: only the agent who holds the conversation; anything else is "not found"."""
    from interactions.models import Message

    row = Message.objects.filter(pk=message_id).values("interaction_id").first()
    if row is None:
        raise Http404
    interaction = _mine(request, row["interaction_id"])
    message = Message.objects.get(pk=message_id)
    if (
        message.direction != MessageDirection.OUTBOUND
        or message.author_id is None
        or message.delivery_status not in DELIVERY_FAILED
    ):
        return _done(
            request, _("Only a message that could not be sent can be sent again."), status=409
        )
    if interaction.status != Status.ASSIGNED:
        return _done(request, _("This conversation is in wrap-up: no more replies."), status=409)
    channel = request.POST.get("channel") or message.channel
    author_id = _agent(request).user_id
    if channel == message.channel and message.delivery_status in RETRYABLE:
        sent = _send_again(interaction, message, author_id)
    elif channel == SWITCHABLE.get(message.channel) and channel in _switch_channels(interaction):
        sent = _send_elsewhere(interaction, channel, message.text, author_id)
    else:
        return _done(request, _("This message cannot be sent on this channel."), status=400)
    return _done(request, _("Sent again as a new message."), message_id=sent.pk)


def _send_again(interaction: Interaction, message: Any, author_id: int) -> Any:
    """The same text through the normal reply path (an e-mail keeps the subject it had)."""
    subject = None
    if message.channel == Channel.EMAIL:
        from channels_inbound.email.models import EmailThreadEntry

        subject = (
            EmailThreadEntry.objects.filter(stored_message=message)
            .values_list("subject", flat=True)
            .first()
        )
    if message.channel != interaction.channel:  # it had itself been sent on the other channel
        return _send_elsewhere(interaction, message.channel, message.text, author_id)
    return send_reply(
        interaction=interaction, author_id=author_id, text=message.text, subject=subject
    )


def _send_elsewhere(interaction: Interaction, channel: str, text: str, author_id: int) -> Any:
    """Send ``text`` to the citizen of ``interaction`` on ``channel`` (not its own): a new
    outbound message of the conversation, marked with the channel it went on."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from interactions.models import Message

    author = get_user_model().objects.get(pk=author_id)
    kind = IdentityKind.EMAIL if channel == Channel.EMAIL else IdentityKind.PHONE
    to = (
        ContactIdentity.objects.filter(contact_id=interaction.contact_id or 0, kind=kind)
        .order_by("id")
        .values_list("value", flat=True)
        .first()
    )
    if not to:
        raise ReplyError(_("This message cannot be sent on this channel."))
    with transaction.atomic():
        if channel == Channel.EMAIL:
            sent = _record_email(interaction, to=to, text=text, author=author)
        else:
            sent = _record_sms(interaction, text=text, author=author)
        Message.objects.filter(pk=sent.pk).update(channel=channel)
        sent.channel = channel
    return sent


def _record_email(interaction: Interaction, *, to: str, text: str, author: Any) -> Any:
    from channels_inbound.email.actions import EmailReplyError
    from channels_inbound.email.outbound import do_record_outbound_email
    from channels_inbound.email.sanitize import plain_text_to_html
    from channels_inbound.models import Endpoint

    mailboxes = Endpoint.objects.filter(
        channel=Channel.EMAIL, active=True, organisation_id=interaction.organisation_id
    ).order_by("id")
    ours = (
        mailboxes.filter(queue_id=interaction.queue_id or 0)
        .values_list("address", flat=True)
        .first()
        or mailboxes.values_list("address", flat=True).first()
    )
    if not ours:
        raise ReplyError(_("This message cannot be sent on this channel."))
    reference = interaction.case.reference if interaction.case_id and interaction.case else ""
    subject = interaction.subject or _("Your request")
    try:
        subject = clean_reply_subject(subject[:200], reference)
    except EmailReplyError as exc:
        raise ReplyError(str(exc)) from exc
    return do_record_outbound_email(
        interaction=interaction,
        to=to,
        our_address=ours,
        subject=subject,
        text=text,
        html=plain_text_to_html(text),
        author=author,
    )


def _record_sms(interaction: Interaction, *, text: str, author: Any) -> Any:
    """The SMS reply path (``send_reply``: STOP, length and number checks with their messages)
    on a conversation of another channel: it sends to the citizen's first number (the identity
    checked by the caller) from the queue's SMS number, recorded as an SMS."""
    return send_reply(interaction=interaction, author_id=author.pk, text=text, channel=Channel.SMS)


@agent_required
@require_POST
def note(request: HttpRequest, interaction_id: int) -> HttpResponse:
    _in_scope(request, interaction_id)
    try:
        do_add_note(
            interaction_id=interaction_id, agent=_agent(request), text=request.POST.get("text", "")
        )
    except ConsoleError:
        return _done(request, _("The note could not be saved."), status=400)
    return _done(request, _("Note saved."))


@agent_required
@require_POST
def wrap_up(request: HttpRequest, interaction_id: int) -> HttpResponse:
    _in_scope(request, interaction_id)
    try:
        do_start_wrap_up(interaction_id=interaction_id, agent=_agent(request))
    except (ConsoleError, IllegalTransition):
        return _done(request, _("This interaction cannot be wrapped up now."), status=409)
    return _done(request, _("Wrap-up started."))


@agent_required
@require_POST
def close(request: HttpRequest, interaction_id: int) -> HttpResponse:
    try:
        answer = answers.close(
            request.user,
            _agent(request),
            interaction_id,
            request.POST.get("code") or "",
            request.POST.get("notes", ""),
        )
    except answers.NotInScope as exc:
        raise Http404 from exc
    return _answer(request, answer)


TRANSFER_ERRORS = {
    "not_yours": gettext_noop("This interaction is no longer yours."),
    "inactive_queue": gettext_noop("This queue is closed."),
    "same_agent": gettext_noop("Choose another agent."),
    "not_available": gettext_noop("This agent is not available right now."),
    "channel_off": gettext_noop("This agent does not take this channel right now."),
    "no_room": gettext_noop("This agent has no free slot on this channel."),
    "note_too_long": gettext_noop("The transfer note is too long (2,000 characters at most)."),
}


@agent_required
@require_POST
def transfer(request: HttpRequest, interaction_id: int) -> HttpResponse:
    _in_scope(request, interaction_id)
    agent = _agent(request)
    target = request.POST.get("target", "")
    kind, _sep, raw_id = target.partition(":")
    org = agent.organisation_id  # the organisation of every interaction the agent holds
    note = request.POST.get("note", "")  # for whoever takes it: an internal note, never sent
    try:
        if kind == "queue" and raw_id.isdigit():
            queue = get_object_or_404(_queues(request, org), pk=int(raw_id))
            do_transfer_to_queue(interaction_id=interaction_id, agent=agent, queue=queue, note=note)
            return _done(request, _("Transferred to the queue %(name)s.") % {"name": queue.name})
        if kind == "agent" and raw_id.isdigit():
            colleague = get_object_or_404(_colleagues(request, org), pk=int(raw_id))
            do_offer_to_agent(
                interaction_id=interaction_id, agent=agent, target=colleague, note=note
            )
            return _done(request, _("Offered to %(name)s.") % {"name": colleague})
    except TransferError as exc:
        # worded for the agent here (a supervisor's reassignment reads them otherwise)
        return _done(
            request,
            _(TRANSFER_ERRORS.get(exc.code) or gettext_noop("Transfer refused.")),
            status=exc.http_status,
            code=exc.code,
        )
    return _done(request, _("Choose a queue or an agent."), status=400)


# --------------------------------------------------------------------------- attachments

# Served inline (shown in the browser, played by the thread's <audio> player) only for these:
# never HTML, SVG or anything a browser could run; everything else is a download.
AUDIO_TYPES = frozenset(
    {"audio/mpeg", "audio/wav", "audio/x-wav", "audio/ogg", "audio/mp4", "audio/amr"}
)
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"}) | AUDIO_TYPES


@agent_required
@require_GET
def attachment(request: HttpRequest, message_id: int, index: int) -> HttpResponse:
    """One stored attachment of a message, to a user allowed to see its interaction (anything
    else, another organisation's included, is "not found")."""
    from interactions.models import Message

    message = get_object_or_404(Message.objects.select_related("interaction"), pk=message_id)
    if not authz.can_view(request.user, message.interaction):
        raise Http404
    entries = message.attachments or []
    if index >= len(entries) or not isinstance(entries[index], dict):
        raise Http404
    entry = entries[index]
    path = entry.get("storage_path")
    if not path or entry.get("refused"):
        raise Http404
    log_access(request.user, AccessAction.VIEW_ATTACHMENT, message, index=index)
    try:
        handle = default_storage.open(path, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404 from exc
    name = str(entry.get("name") or f"attachment-{index + 1}")
    content_type = str(entry.get("content_type") or "")
    if "/" not in content_type or content_type.startswith("text/html"):
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type in ("text/html", "application/xhtml+xml", "image/svg+xml"):
        content_type = "application/octet-stream"  # never a page of ours that runs
    inline = content_type in INLINE_TYPES
    response = FileResponse(
        handle, as_attachment=not inline, filename=name, content_type=content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response  # type: ignore[return-value]  # a streaming response, served as is


# --------------------------------------------------------------------------- citizen panel


def _citizen_for(request: HttpRequest, contact_id: int) -> Contact:
    """A citizen the agent is serving now (the panel is reachable from a workspace only)."""
    contact = get_object_or_404(authz.visible(request.user, Contact), pk=contact_id)
    serving = Interaction.objects.filter(
        contact=contact,
        assigned_agent=_agent(request),
        status__in=(Status.OFFERED, Status.ASSIGNED, Status.WRAP_UP),
    ).exists()
    if not serving:
        raise Http404
    return contact


def _citizen_context(request: HttpRequest, contact: Contact) -> dict[str, Any]:
    # The organisation's own history of this citizen (a record never spans organisations).
    history = (
        authz.visible(request.user, Interaction)
        .filter(contact=contact, organisation_id=contact.organisation_id)
        .select_related("queue", "assigned_agent__user", "wrap_up__code")
        .prefetch_related("messages")
        .order_by("-created_at")[:50]
    )
    in_use = identities_in_use(contact.pk)
    identities = list(contact.identities.order_by("kind", "value"))
    for identity in identities:
        # An open conversation came in on it or replies go to it: it cannot be removed.
        identity.in_use = (identity.kind, identity.value) in in_use  # type: ignore[attr-defined]
    return {
        "contact": contact,
        "identities": identities,
        "open_cases": authz.visible(request.user, Case).filter(
            contact=contact, status=Case.Status.OPEN
        ),
        "history": history,
        "identity_kinds": IdentityKind.choices,
        "languages": settings.LANGUAGES,
        "note_direction": MessageDirection.NOTE,
    }


@agent_required
@require_GET
def citizen(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _citizen_for(request, contact_id)
    log_access(request.user, AccessAction.VIEW_CITIZEN, contact)
    return render(request, "console/_citizen.html", _citizen_context(request, contact))


@agent_required
@require_POST
def citizen_edit(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _citizen_for(request, contact_id)
    language = request.POST.get("preferred_language", contact.preferred_language)
    if language not in dict(settings.LANGUAGES):
        return _done(request, _("Unknown language."), status=400)
    contact.display_name = request.POST.get("display_name", contact.display_name).strip()[:200]
    contact.preferred_language = language
    contact.notes = request.POST.get("notes", contact.notes).strip()
    contact.save(update_fields=["display_name", "preferred_language", "notes", "updated_at"])
    return _done(request, _("Citizen record saved."))


@agent_required
@require_POST
def identity_add(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _citizen_for(request, contact_id)
    try:
        do_add_identity(
            contact=contact, kind=request.POST.get("kind", ""), raw=request.POST.get("value", "")
        )
    except ContactError:
        return _done(
            request,
            _("This identity is not valid or belongs to another citizen: merge the records."),
            status=400,
        )
    return _done(request, _("Identity added."))


@agent_required
@require_POST
def identity_remove(request: HttpRequest, contact_id: int, identity_id: int) -> HttpResponse:
    """Remove a wrong number or address from the record (rule and refusals: contacts.actions,
    IdentityRemovalRefused)."""
    contact = _citizen_for(request, contact_id)
    removal = do_remove_identity(
        contact_id=contact.pk, identity_id=identity_id, actor_id=request.user.pk
    )
    return _done(
        request,
        _("Identity removed: %(value)s. Add it again if this was a mistake.")
        % {"value": removal.value},
    )


@agent_required
@require_POST
def citizen_merge(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Merge another record of the same person (found by number or address) into this one."""
    contact = _citizen_for(request, contact_id)
    raw = request.POST.get("identity", "").strip()
    kind = IdentityKind.EMAIL if "@" in raw else IdentityKind.PHONE
    try:
        other = find_contact(kind, raw, organisation_id=contact.organisation_id)
    except ContactError:
        other = None
    if other is None or other.pk == contact.pk:
        return _done(request, _("No other citizen has this number or address."), status=400)
    try:
        do_merge_contacts(target=contact, source=other, actor=request.user)  # type: ignore[arg-type]
    except ContactError:
        return _done(request, _("These records cannot be merged."), status=409)
    return _done(request, _("Records merged."))


# --------------------------------------------------------------------------- settings


@agent_required
def settings_view(request: HttpRequest) -> HttpResponse:
    agent = _agent(request)
    error = ""
    value = agent.telework_phone
    if request.method == "POST":
        value = request.POST.get("telework_phone", "").strip()
        try:
            if value:
                validate_telework_phone(value)
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            agent.telework_phone = value
            agent.save(update_fields=["telework_phone"])
            messages.success(request, _("Telework number saved."))
            return redirect("console:settings")
    from django_otp import user_has_device

    return render(
        request,
        "console/settings.html",
        {
            "agent": agent,
            "value": value,
            "error": error,
            "has_device": user_has_device(request.user, confirmed=True),
        },
    )
