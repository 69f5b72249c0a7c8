"""Start the whole app in one process: migrations, static files when needed, demo data, the
ASGI server (HTTP and WebSockets, uvicorn) and, on the embedded default, the periodic scheduler.

    python manage.py serve [--host 127.0.0.1] [--port 8000] [--no-demo]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import uvicorn
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


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
        # The peer address stays the TCP peer's: X-Forwarded-For is read by the application,
        # from TRUSTED_PROXIES only (contactcentre/clientip.py), never rewritten by uvicorn.
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

    def handle(self, *args: Any, **options: Any) -> None:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        if static_files_stale():
            # Pages name the hashed files of the manifest: without it every page would fail.
            self.stdout.write(f"Collecting static files into {settings.STATIC_ROOT} ...")
            call_command("collectstatic", interactive=False, verbosity=0)
        if not options["no_demo"]:
            call_command("demo", if_empty=True)
        scheduler = None
        if settings.CELERY_EMBEDDED:
            from contactcentre.embedded import EmbeddedScheduler

            scheduler = EmbeddedScheduler()
            scheduler.start()
            mode = "embedded (SQLite or DATABASE_URL, in-memory channel layer, in-process tasks)"
        else:
            mode = "Redis broker: start `celery -A contactcentre worker` and `... beat` too"
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"Contact centre running at {url}"))
        self.stdout.write(f"  admin: {url}admin/   API: {url}api/v1/docs/   health: {url}healthz")
        self.stdout.write(f"  mode: {mode}")
        try:
            uvicorn.run(
                "contactcentre.asgi:application",
                **uvicorn_options(options["host"], options["port"], options["workers"]),
            )
        finally:
            if scheduler is not None:
                scheduler.stop()
