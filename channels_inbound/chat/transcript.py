"""The conversation by e-mail, in the citizen's language (Django's e-mail framework).

It goes only to an address the citizen proves is theirs: asking for it sends a confirmation
link to the address (with nothing of the conversation in it), and the conversation is sent when
the link is opened and confirmed. A conversation has one transcript address, and every address
gets at most ``CHAT_TRANSCRIPTS_PER_ADDRESS_PER_HOUR`` confirmations and as many transcripts an
hour (see the consumer and ``views.transcript_confirm``).
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from .models import ChatSession
from .selectors import transcript_entries

logger = logging.getLogger(__name__)


def render_transcript(session: ChatSession) -> tuple[str, str]:
    """(subject, plain-text body)."""
    title = session.widget.display_title
    with translation.override(session.language):
        names = {"bot": _("Virtual assistant"), "citizen": _("You")}
        lines = [
            _("[%(time)s] %(who)s: %(text)s")
            % {
                "time": at.strftime("%H:%M"),
                "who": names.get(kind) or author or _("Adviser"),
                "text": text,
            }
            for at, kind, author, text in transcript_entries(session)
        ]
        day = formats.date_format(timezone.localtime(session.created_at), "DATE_FORMAT")
        subject = _("Your conversation with %(title)s") % {"title": title}
        body = "\n\n".join(
            [
                _("Hello %(name)s,") % {"name": session.display_name},
                _("Here is your conversation of %(day)s with %(title)s.")
                % {"day": day, "title": title},
                "\n".join(lines),
                _("This e-mail was sent at your request. Please do not reply to it."),
            ]
        )
    return subject, body


def send_transcript(*, session_id: str, email: str) -> bool:
    session = ChatSession.objects.select_related("widget__endpoint").filter(pk=session_id).first()
    if session is None:
        return False
    subject, body = render_transcript(session)
    EmailMessage(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[email]
    ).send()
    logger.info("transcript of chat %s sent", session_id)
    return True


CONFIRM_SALT = "channels_inbound.chat.transcript.confirm"


def address_key(email: str) -> str:
    """The rate limits' and claims' key for an address (not the address itself)."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]


def make_confirmation_token(session_id: str, email: str) -> str:
    return signing.dumps({"s": str(session_id), "e": email}, salt=CONFIRM_SALT, compress=True)


def read_confirmation_token(token: str) -> tuple[str, str]:
    """(session id, address); raises ``signing.BadSignature`` (``SignatureExpired`` too)."""
    data = signing.loads(
        token, salt=CONFIRM_SALT, max_age=settings.CHAT_TRANSCRIPT_CONFIRM_MAX_AGE_SECONDS
    )
    if not isinstance(data, dict) or not isinstance(data.get("s"), str):
        raise signing.BadSignature("not a transcript confirmation")
    if not isinstance(data.get("e"), str):
        raise signing.BadSignature("not a transcript confirmation")
    return data["s"], data["e"]


def confirmation_url(site_url: str, session_id: str, email: str) -> str:
    token = make_confirmation_token(session_id, email)
    return site_url.rstrip("/") + reverse("chat-transcript-confirm", args=[token])


def render_confirmation(session: ChatSession, url: str) -> tuple[str, str]:
    """(subject, plain-text body) of the confirmation e-mail: nothing the visitor typed, so it
    cannot carry someone else's message to this address."""
    title = session.widget.display_title
    hours = max(1, settings.CHAT_TRANSCRIPT_CONFIRM_MAX_AGE_SECONDS // 3600)
    with translation.override(session.language):
        subject = _("Confirm your e-mail address to receive your conversation with %(title)s") % {
            "title": title
        }
        body = "\n\n".join(
            [
                _("Hello,"),
                _(
                    "Someone, probably you, asked on the online chat of %(title)s to receive "
                    "the conversation at this e-mail address."
                )
                % {"title": title},
                _("To receive it, open this link within %(hours)s hours and confirm:")
                % {"hours": hours},
                url,
                _("If you did not ask for it, ignore this e-mail: nothing will be sent."),
            ]
        )
    return subject, body


def send_confirmation(*, session_id: str, email: str, url: str) -> bool:
    session = ChatSession.objects.select_related("widget__endpoint").filter(pk=session_id).first()
    if session is None:
        return False
    subject, body = render_confirmation(session, url)
    EmailMessage(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[email]
    ).send()
    logger.info("transcript confirmation of chat %s sent", session_id)
    return True
