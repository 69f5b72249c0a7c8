"""Recording accesses to personal data: the port every app calls, the privacy app's adapter
behind it.

``log_access(request.user, AccessAction.VIEW_THREAD, interaction)`` records who saw what and
when; the console, the contacts and interactions APIs and the privacy app itself call it. The
line is written by the *access recorder* that one app registers with
:func:`set_access_recorder`: the privacy app does, in its ``AppConfig.ready()``
(``privacy.audit.record_access`` writes one ``privacy.AccessLog`` row). The call is
synchronous, in the caller's transaction, and an error of the recorder propagates to the
caller as before. Without a recorder an access cannot be recorded, so :func:`log_access`
raises ``ImproperlyConfigured`` rather than drop the line, and the system check
``kernel.E001`` fails ``manage.py check`` (and ``runserver``, ``migrate``) at start-up.

No model import here: the access log's table belongs to the privacy app, above every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, TextChoices
from django.utils.translation import gettext_lazy as _


class AccessAction(TextChoices):
    """What a line of the access log records (``privacy.AccessLog.action``)."""

    VIEW_CITIZEN = "view_citizen", _("viewed a citizen record")
    VIEW_THREAD = "view_thread", _("viewed a conversation")
    VIEW_ATTACHMENT = "view_attachment", _("opened an attachment")
    SEARCH = "search", _("searched citizens")
    EXPORT = "export", _("exported a citizen's data")
    RECTIFY = "rectify", _("rectified a citizen record")
    ERASE = "erase", _("erased a citizen")
    ERASE_REFUSED = "erase_refused", _("erasure refused")
    CONFIG = "config", _("changed the configuration")
    RETENTION = "retention", _("changed a retention duration")
    PURGE = "purge", _("retention purge")


# (user or None, action, object or None, organisation id or None, details) -> None.
AccessRecorder = Callable[[Any, str, Model | None, int | None, dict[str, Any]], None]
_recorder: AccessRecorder | None = None


def set_access_recorder(recorder: AccessRecorder | None) -> None:
    """Register the function that writes a line of the access log (``privacy.audit``)."""
    global _recorder
    _recorder = recorder


# user id -> a context manager: the changes made inside it are that user's in the audit log.
ActorScope = Callable[[int], AbstractContextManager[None]]
_actor_scope: ActorScope | None = None


def set_actor_scope(scope: ActorScope | None) -> None:
    """Register how a user is named behind changes made outside a request
    (``privacy.middleware.acting_as``)."""
    global _actor_scope
    _actor_scope = scope


def acting_as(user_id: int) -> AbstractContextManager[None]:
    """Changes made inside are ``user_id``'s in the configuration audit log, as a request's
    are (the privacy app's middleware names the user of a request that may write): for an
    action that reaches the app another way, such as the console socket's."""
    if _actor_scope is None:
        raise ImproperlyConfigured(
            "No actor scope is registered: a change could not be attributed to its user "
            "(is 'privacy' in INSTALLED_APPS?)."
        )
    return _actor_scope(user_id)


def log_access(
    user: Any,
    action: AccessAction | str,
    obj: Model | None = None,
    *,
    organisation_id: int | None = None,
    **details: Any,
) -> None:
    """Append one line to the access log (in the caller's transaction).

    ``user`` is the request's user, an API principal (a service token) or ``None`` (the
    system); ``obj`` names the object seen (by type and id only); ``organisation_id`` defaults
    to the object's organisation.
    """
    if _recorder is None:
        raise ImproperlyConfigured(
            "No access recorder is registered: an access to personal data cannot be recorded "
            "(is 'privacy' in INSTALLED_APPS?)."
        )
    _recorder(user, str(action), obj, organisation_id, details)


def check_access_recorder(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """An error when no app registered an access recorder (registered by ``KernelConfig``)."""
    if _recorder is not None:
        return []
    return [
        Error(
            "No access recorder is registered: every access to personal data would fail.",
            hint="Add 'privacy' to INSTALLED_APPS (its AppConfig.ready() registers it).",
            id="kernel.E001",
        )
    ]
