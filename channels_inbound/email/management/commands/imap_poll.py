"""``manage.py imap_poll [--once]``: read new mail from an existing IMAP mailbox."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_inbound.email.imap import ImapSettings, poll_mailbox


class Command(BaseCommand):
    help = "Poll the IMAP mailbox set by IMAP_* (see docs/channels.md); --once for one pass."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=settings.IMAP_POLL_SECONDS)

    def handle(self, *args: Any, **options: Any) -> None:
        config = ImapSettings.from_settings()
        if config is None:
            raise CommandError("IMAP_HOST and IMAP_USER are not set")
        stopping = threading.Event()
        if not options["once"]:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stopping.set())
        while True:
            try:
                outcome = poll_mailbox(config)
                self.stdout.write(
                    f"{config.key}: {outcome.ingested} new, {outcome.duplicates} already known, "
                    f"{outcome.failed} failed"
                    + (" (UIDVALIDITY changed: folder read again)" if outcome.rescanned else "")
                )
            except Exception as exc:
                if options["once"]:
                    raise CommandError(f"IMAP poll failed: {exc}") from exc
                self.stderr.write(f"IMAP poll failed: {exc}")
            if options["once"] or stopping.wait(options["interval"]):
                return
