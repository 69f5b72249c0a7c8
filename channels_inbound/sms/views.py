"""SMS webhooks (``/webhooks/twilio/sms/...``): thin, they parse and call the actions."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from channels_inbound.providers.base import Provider
from channels_inbound.providers.webhooks import markup, provider_webhook

from . import actions, spool


@provider_webhook
def sms_inbound(request: HttpRequest, provider: Provider) -> HttpResponse:
    sms = provider.parse_sms(request.POST)
    # Stored once, or spooled to disk while the database is unreachable (spool.py).
    received = spool.receive_sms(sms=sms, provider=provider.name)
    return markup(provider, provider.render_sms_reply(received.reply))


@provider_webhook
def sms_status(request: HttpRequest, provider: Provider) -> HttpResponse:
    status = provider.parse_message_status(request.POST)
    actions.do_record_sms_status(status=status)
    return markup(provider, provider.render_sms_reply(None))
