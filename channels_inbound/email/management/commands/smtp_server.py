"""``manage.py smtp_server``: the SMTP server the mail relay delivers citizens' e-mail to."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from channels_inbound.email.smtpd import build_controller


class Command(BaseCommand):
    help = "Run the SMTP server that receives e-mail for our mailboxes (see docs/channels.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.EMAIL_SMTP_SERVER_HOST)
        parser.add_argument("--port", type=int, default=settings.EMAIL_SMTP_SERVER_PORT)
        parser.add_argument("--workers", type=int, default=4, help="database threads")

    def handle(self, *args: Any, **options: Any) -> None:
        controller = build_controller(options["host"], options["port"], workers=options["workers"])
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        controller.start()
        self.stdout.write(
            f"SMTP server listening on {options['host']}:{options['port']} "
            f"(max message {settings.EMAIL_MAX_MESSAGE_BYTES} bytes)",
        )
        self.stdout.flush()
        try:
            stopping.wait()
        finally:
            controller.stop()
            controller.handler.close()
