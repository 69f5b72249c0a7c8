"""The conversation by e-mail, in the citizen's language (Django's e-mail framework)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
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
