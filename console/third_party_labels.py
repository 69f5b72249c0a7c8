"""French (and better English) labels for the second-factor and lockout apps' admin pages.

django-otp writes its model and field labels as plain strings, so no catalogue can translate
them: they are replaced here, at start-up, by lazy translations of the same English text (the
migrations see the same strings, since commands run untranslated). django-axes translates its
own, but its French catalogue misses some and breaks French typography: the entries of this
app's catalogue (listed below for ``makemessages``) come first, ``console`` being before
``axes`` in ``INSTALLED_APPS``. Called from ``ConsoleConfig.ready``; covered by
``tests/integration/console/test_security_labels.py``.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.utils.translation import gettext_lazy, gettext_noop, pgettext_lazy

# django-axes' own strings, translated in this app's catalogue (they are looked up by axes).
AXES_STRINGS = (
    # missing from its French catalogue
    gettext_noop("Locked Out"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Not set"),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Access Attempt"),
    gettext_noop("Expires At"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("Session key hash (sha256)"),
    # left in English there
    gettext_noop("User Agent"),
    gettext_noop("HTTP Accept"),
    # no non-breaking space before the colon there
    gettext_noop("Account locked: too many login attempts. Please try again later."),
    gettext_noop(
        "Account locked: too many login attempts. Contact an admin to unlock your account."
    ),
)

# django-otp's TOTP device: field -> (verbose name, help text), the package's English words.
TOTP_FIELDS = {
    "user": (
        pgettext_lazy("totp", "user"),
        gettext_lazy("The user that this device belongs to."),
    ),
    "name": (
        pgettext_lazy("totp", "name"),
        gettext_lazy("The human-readable name of this device."),
    ),
    "confirmed": (
        pgettext_lazy("totp", "confirmed"),
        gettext_lazy("Is this device ready for use?"),
    ),
    "throttling_failure_timestamp": (
        pgettext_lazy("totp", "throttling failure timestamp"),
        gettext_lazy(
            "A timestamp of the last failed verification attempt. Null if last attempt succeeded."
        ),
    ),
    "throttling_failure_count": (
        pgettext_lazy("totp", "throttling failure count"),
        gettext_lazy("Number of successive failed attempts."),
    ),
    "created_at": (
        pgettext_lazy("totp", "created at"),
        gettext_lazy("The date and time when this device was initially created in the system."),
    ),
    "last_used_at": (
        pgettext_lazy("totp", "last used at"),
        gettext_lazy("The most recent date and time this device was used."),
    ),
    "key": (
        pgettext_lazy("totp", "key"),
        gettext_lazy("A hex-encoded secret key of up to 40 bytes."),
    ),
    "step": (
        pgettext_lazy("totp", "step"),
        gettext_lazy("The time step in seconds."),
    ),
    "t0": (
        pgettext_lazy("totp", "t0"),
        gettext_lazy("The Unix time at which to begin counting steps."),
    ),
    "digits": (
        pgettext_lazy("totp", "digits"),
        gettext_lazy("The number of digits to expect in a token."),
    ),
    "tolerance": (
        pgettext_lazy("totp", "tolerance"),
        gettext_lazy("The number of time steps in the past or future to allow."),
    ),
    "drift": (
        pgettext_lazy("totp", "drift"),
        gettext_lazy("The number of time steps the prover is known to deviate from our clock."),
    ),
    "last_t": (
        pgettext_lazy("totp", "last t"),
        gettext_lazy(
            "The t value of the latest verified token. "
            "The next token must be at a higher time step."
        ),
    ),
}

# The TOTP device admin's fieldset titles (plain strings in django-otp).
TOTP_FIELDSETS = {
    "Identity": pgettext_lazy("second factor", "Identity"),
    "Timestamps": pgettext_lazy("second factor", "Timestamps"),
    "Configuration": pgettext_lazy("second factor", "Configuration"),
    "State": pgettext_lazy("second factor", "State"),
    "Throttling": pgettext_lazy("second factor", "Throttling"),
}


def translate_security_labels() -> None:
    """Give django-otp's and django-axes' admin their translated labels (idempotent)."""
    _totp()
    _axes()


def _totp() -> None:
    from django_otp.plugins.otp_totp import admin as totp_admin
    from django_otp.plugins.otp_totp.models import TOTPDevice

    apps.get_app_config("otp_totp").verbose_name = gettext_lazy("Second factor (TOTP)")
    meta: Any = TOTPDevice._meta
    meta.verbose_name = gettext_lazy("TOTP device")
    meta.verbose_name_plural = gettext_lazy("TOTP devices")
    for name, (verbose_name, help_text) in TOTP_FIELDS.items():
        field: Any = meta.get_field(name)
        field.verbose_name = verbose_name
        field.help_text = help_text
    model_admin: Any = totp_admin.TOTPDeviceAdmin
    if getattr(model_admin, "_cc_translated", False):
        return
    original = model_admin.get_fieldsets

    def get_fieldsets(self: Any, request: Any, obj: Any = None) -> list[Any]:
        return [
            (TOTP_FIELDSETS.get(title, title) if isinstance(title, str) else title, options)
            for title, options in original(self, request, obj)
        ]

    model_admin.get_fieldsets = get_fieldsets
    model_admin.qrcode_link.short_description = gettext_lazy("QR code")
    model_admin._cc_translated = True


def _axes() -> None:
    from axes import admin as axes_admin
    from axes.models import AccessLog

    apps.get_app_config("axes").verbose_name = gettext_lazy("Login lockouts")
    # "access log" is also the privacy app's access log (journal des accès): not this one.
    meta: Any = AccessLog._meta
    meta.verbose_name = pgettext_lazy("axes", "access log")
    meta.verbose_name_plural = pgettext_lazy("axes", "access logs")
    attempts: Any = axes_admin.AccessAttemptAdmin
    attempts.status.short_description = gettext_lazy("Lockout status")
    attempts.expiration.short_description = gettext_lazy("Expires at")
