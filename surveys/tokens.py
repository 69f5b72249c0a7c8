"""The signed, expiring token of a survey link (e-mail) or of the chat window's answer.

``TimestampSigner`` signs the invitation's id with the time it was made: the link needs no
login, cannot be forged or pointed at another interaction, and expires after
``SURVEY_ANSWER_MAX_AGE_SECONDS``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner

SALT = "surveys.answer"

__all__ = ["BadSignature", "SignatureExpired", "make_token", "read_token"]


def make_token(invitation_id: int) -> str:
    return TimestampSigner(salt=SALT).sign_object({"i": invitation_id})


def read_token(token: str) -> int:
    """The invitation's id; raises ``SignatureExpired`` (too old) or ``BadSignature``."""
    data = TimestampSigner(salt=SALT).unsign_object(
        token, max_age=settings.SURVEY_ANSWER_MAX_AGE_SECONDS
    )
    if not isinstance(data, dict) or not isinstance(data.get("i"), int):
        raise BadSignature("not a survey token")
    return int(data["i"])
