"""Start the whole app in one process: migrations, static files when needed, demo data, the
ASGI server (HTTP and WebSockets, uvicorn) and, on the embedded default, on the same event loop:
the periodic scheduler, the outbox poller and (``EMAIL_SMTP_SERVER_EMBEDDED`` or ``--smtp``) the
inbound SMTP server (``contactcentre/embedded.py``).

    python manage.py serve [--host 127.0.0.1] [--port 8000] [--no-demo] [--smtp]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import uvicorn
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

logger = logging.getLogger(__name__)


def static_files_stale() -> bool:
    """With the hashed-names storage (production settings), pages need ``collectstatic``'s
    manifest: is it missing, or older than one of the source files? (Served from the apps'
    directories otherwise, in DEBUG or with STATIC_MANIFEST=false: nothing to collect.)"""
    storage = storages["staticfiles"]
    if not isinstance(storage, ManifestFilesMixin):
        return False
    manifest = Path(storage.manifest_storage.path(storage.manifest_name))
    if not manifest.is_file():
        return True
    collected_at = manifest.stat().st_mtime
    for finder in finders.get_finders():
        for path, source in finder.list([]):
            if Path(source.path(path)).stat().st_mtime > collected_at:
                return True
    return False


def uvicorn_options(host: str, port: int, workers: int) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "workers": workers if not settings.CELERY_EMBEDDED else 1,
        "lifespan": "off",
        "log_level": "warning",
        # Our LOGGING formats uvicorn's lines too (kernel/logs.py); no access log: one
        # contactcentre.requests line per request instead, without the query string.
        "log_config": None,
        "access_log": False,
        # The peer address stays the TCP peer's: X-Forwarded-For is read by the application,
        # from TRUSTED_PROXIES only (kernel/clientip.py), never rewritten by uvicorn.
        "proxy_headers": False,
        # WebSocket compression off, as in the Docker image (docs/operations.md)
        "ws_per_message_deflate": os.environ.get("UVICORN_WS_PER_MESSAGE_DEFLATE", "false").lower()
        in {"1", "true", "yes"},
    }


class Command(BaseCommand):
    help = "Run the contact centre (ASGI server; embedded Celery scheduler without Redis)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="Do not create demo data.")
        parser.add_argument("--workers", type=int, default=1)
        parser.add_argument(
            "--smtp",
            action="store_true",
            help="Embedded default: also run the inbound SMTP server (EMAIL_SMTP_SERVER_EMBEDDED).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        if static_files_stale():
            # Pages name the hashed files of the manifest: without it every page would fail.
            self.stdout.write(f"Collecting static files into {settings.STATIC_ROOT} ...")
            call_command("collectstatic", interactive=False, verbosity=0)
        if not options["no_demo"]:
            call_command("demo", if_empty=True)
        url = f"http://{options['host']}:{options['port']}/"
        app_options = uvicorn_options(options["host"], options["port"], options["workers"])
        if not settings.CELERY_EMBEDDED:
            self.banner(
                url, "Redis broker: start `celery -A contactcentre worker` and `... beat` too"
            )
            if options["smtp"] or settings.EMAIL_SMTP_SERVER_EMBEDDED:
                self.stdout.write("  SMTP: with Redis, run `manage.py smtp_server` (not --smtp)")
            uvicorn.run("contactcentre.asgi:application", **app_options)
            return
        smtp = options["smtp"] or settings.EMAIL_SMTP_SERVER_EMBEDDED
        self.banner(
            url, "embedded (SQLite or DATABASE_URL, in-memory channel layer, in-process tasks)"
        )
        if smtp:
            where = f"{settings.EMAIL_SMTP_SERVER_HOST}:{settings.EMAIL_SMTP_SERVER_PORT}"
            self.stdout.write(f"  SMTP: e-mail received on {where} (in this process)")
        config = uvicorn.Config("contactcentre.asgi:application", **app_options)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn re-raises it once stopped
            asyncio.run(serve_embedded(config, smtp=smtp))

    def banner(self, url: str, mode: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"Contact centre running at {url}"))
        self.stdout.write(f"  admin: {url}admin/   API: {url}api/v1/docs/   health: {url}healthz")
        self.stdout.write(f"  mode: {mode}")
        self.stdout.flush()


async def serve_embedded(config: uvicorn.Config, *, smtp: bool) -> None:
    """The web server and the embedded services on one event loop; they stop with it."""
    from contactcentre.embedded import EmbeddedServices

    services = EmbeddedServices(smtp=smtp)
    # uvicorn handles SIGTERM, then raises it again once stopped: without a handler of ours
    # the process would end there, before the services below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        try:
            await services.start()
        except OSError as exc:  # e.g. the SMTP port is taken (another smtp_server?)
            raise CommandError(f"could not start the embedded services: {exc}") from exc
        await uvicorn.Server(config).serve()
    finally:
        # Ctrl-C: uvicorn stops, then hands the signal back to asyncio.run, which cancels this
        # task once; the services still finish stopping (scheduler, poller, SMTP server).
        stopping = asyncio.ensure_future(services.stop())
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await stopping
            raise
        finally:
            logger.info("embedded services stopped")
