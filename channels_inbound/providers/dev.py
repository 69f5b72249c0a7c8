"""Development backends: nothing leaves the machine (like Django's console and file e-mail
backends). ``TELEPHONY_BACKEND`` selects one:

- ``channels_inbound.providers.dev.ConsoleBackend`` prints each SMS and call update to stdout;
- ``channels_inbound.providers.dev.FileBackend`` appends them as JSON lines to
  ``TELEPHONY_FILE_PATH`` (one file per day).

Both answer like the provider would: a message id in Twilio's format and the status "queued".
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from .base import Backend, SentMessage, sms_text


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class ConsoleBackend(Backend):
    lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        with self.lock:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    def send_sms(self, *, to: str, from_: str, body: str, status_callback: str) -> SentMessage:
        sid = new_sid("SM")
        self.write({"kind": "sms", "sid": sid, "to": to, "from": from_, "body": sms_text(body)})
        return SentMessage(sid=sid, status="queued")

    def update_call(self, *, call_sid: str, instructions: str) -> None:
        self.write({"kind": "call_update", "call_sid": call_sid, "twiml": instructions})


class FileBackend(ConsoleBackend):
    def write(self, record: dict[str, Any]) -> None:
        folder = Path(settings.TELEPHONY_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"at": timezone.now().isoformat(), **record}
        path = folder / f"{timezone.localdate().isoformat()}.jsonl"
        with self.lock, path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
