"""Attachments: what a file really is (its bytes, not its name or declared type), the limits,
and storage under ``MEDIA_ROOT``.

:func:`check_attachments` is pure: it decides, for each part, "store" or "refuse, because...".
:func:`store_attachments` writes the accepted ones and returns the ``Message.attachments``
entries. A refused file is listed too (``"refused"`` holds the reason code), so the agent knows
the citizen sent it.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from .parsing import ParsedPart

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
ODT = "application/vnd.oasis.opendocument.text"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEXT = "text/plain"
EXECUTABLE = "application/x-executable"

# What a file name's extension promises.
EXTENSION_TYPES = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".jpe": JPEG,
    ".gif": GIF,
    ".odt": ODT,
    ".docx": DOCX,
    ".xlsx": XLSX,
    ".txt": TEXT,
    ".text": TEXT,
}
# Names no public service should open, whatever the content looks like.
DANGEROUS_EXTENSIONS = frozenset(
    {
        ".exe",
        ".com",
        ".bat",
        ".cmd",
        ".scr",
        ".pif",
        ".msi",
        ".msp",
        ".dll",
        ".cpl",
        ".js",
        ".jse",
        ".vbs",
        ".vbe",
        ".wsf",
        ".wsh",
        ".hta",
        ".ps1",
        ".psm1",
        ".jar",
        ".sh",
        ".bash",
        ".app",
        ".lnk",
        ".reg",
        ".iso",
        ".img",
        ".html",
        ".htm",
        ".xhtml",
        ".svg",
        ".docm",
        ".xlsm",
        ".pptm",
    }
)
# Declared types that say nothing.
GENERIC_TYPES = frozenset({"application/octet-stream", "application/x-download", ""})
TYPE_ALIASES = {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "application/x-pdf": PDF,
    "application/acrobat": PDF,
    "image/x-png": PNG,
}


def sniff_type(content: bytes) -> str:
    """The type the bytes are, from their magic numbers and structure."""
    head = content[:8]
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith(b"MZ") or head.startswith(b"\x7fELF"):
        return EXECUTABLE
    if head[:4] in {
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    }:
        return EXECUTABLE  # Mach-O
    if head.startswith(b"#!"):
        return "text/x-script"
    if content.startswith(b"PK\x03\x04"):
        return _sniff_zip(content)
    if content.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"  # legacy Office, possibly with macros
    return _sniff_text(content)


def _sniff_zip(content: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                declared = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if declared.startswith("application/vnd.oasis.opendocument."):
                    return declared
            if "[Content_Types].xml" in names:
                if any(name.lower().endswith("vbaproject.bin") for name in names):
                    return "application/vnd.ms-office.macroenabled"
                if "word/document.xml" in names:
                    return DOCX
                if "xl/workbook.xml" in names:
                    return XLSX
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, KeyError):
        return "application/octet-stream"
    return "application/zip"


def _sniff_text(content: bytes) -> str:
    sample = content[:8192]
    if b"\x00" in sample:
        return "application/octet-stream"
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = sample.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
            return "application/octet-stream"
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html", "<svg", "<?xml")) or re.search(
        r"<\s*(script|html|svg|iframe|body)\b", lowered[:4096]
    ):
        return "text/html"
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t\f")
    if controls > len(text) // 100 + 1:
        return "application/octet-stream"
    return TEXT


def _normalise_type(declared: str) -> str:
    declared = declared.split(";")[0].strip().lower()
    return TYPE_ALIASES.get(declared, declared)


def safe_filename(name: str, fallback: str = "piece-jointe") -> str:
    """A file name fit to show and to offer for download: no path, no control characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*')
    name = name.strip(" .")
    if not name:
        name = fallback
    if len(name) > 150:
        suffix = PurePosixPath(name).suffix[:10]
        name = name[: 150 - len(suffix)] + suffix
    return name


@dataclass(frozen=True)
class AttachmentLimits:
    max_bytes: int
    max_count: int
    allowed_types: frozenset[str]

    @classmethod
    def from_settings(cls) -> AttachmentLimits:
        from django.conf import settings

        return cls(
            max_bytes=settings.EMAIL_MAX_ATTACHMENT_BYTES,
            max_count=settings.EMAIL_MAX_ATTACHMENTS,
            allowed_types=frozenset(t.lower() for t in settings.EMAIL_ALLOWED_ATTACHMENT_TYPES),
        )


@dataclass(frozen=True)
class AttachmentDecision:
    part: ParsedPart
    name: str
    detected_type: str
    refused: str | None  # None: store it; else a reason code (see REFUSAL_CODES)

    @property
    def size(self) -> int:
        return len(self.part.content)


# Reason codes, explained to the citizen in outbound.refusal_text.
REFUSAL_CODES = ("too_large", "too_many", "type_not_allowed", "type_mismatch", "dangerous_name")


def check_attachments(
    parts: Iterable[ParsedPart], limits: AttachmentLimits
) -> list[AttachmentDecision]:
    decisions = []
    accepted = 0
    for part in parts:
        name = safe_filename(part.filename)
        detected = sniff_type(part.content)
        suffix = PurePosixPath(name.lower()).suffix
        declared = _normalise_type(part.declared_type)
        reason: str | None = None
        if len(part.content) > limits.max_bytes:
            reason = "too_large"
        elif suffix in DANGEROUS_EXTENSIONS:
            reason = "dangerous_name"
        elif detected not in limits.allowed_types:
            reason = "type_not_allowed"
        elif suffix and EXTENSION_TYPES.get(suffix, detected) != detected:
            reason = "type_mismatch"  # "facture.pdf" that is not a PDF
        elif declared not in GENERIC_TYPES and declared != detected:
            reason = "type_mismatch"
        elif accepted >= limits.max_count:
            reason = "too_many"
        if reason is None:
            accepted += 1
        decisions.append(AttachmentDecision(part, name, detected, reason))
    return decisions


def oversized(decisions: Iterable[AttachmentDecision]) -> list[AttachmentDecision]:
    return [d for d in decisions if d.refused == "too_large"]


def store_attachments(
    decisions: list[AttachmentDecision], *, directory: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Write the accepted files; return the ``Message.attachments`` entries (refused ones too)
    and the Content-ID -> entry index map for inline images."""
    entries: list[dict[str, Any]] = []
    content_ids: dict[str, int] = {}
    today = timezone.localdate()
    for decision in decisions:
        part = decision.part
        entry: dict[str, Any] = {
            "name": decision.name,
            "content_type": decision.detected_type,
            "declared_type": part.declared_type,
            "size": decision.size,
            "inline": part.inline,
        }
        if decision.refused:
            entry["refused"] = decision.refused
        else:
            suffix = PurePosixPath(decision.name.lower()).suffix
            suffix = suffix if suffix in EXTENSION_TYPES else ""
            path = f"{directory}/{today:%Y/%m}/{uuid.uuid4().hex}{suffix}"
            entry["storage_path"] = default_storage.save(path, ContentFile(part.content))
            entry["sha256"] = hashlib.sha256(part.content).hexdigest()
            if part.content_id:
                entry["content_id"] = part.content_id
                content_ids[part.content_id] = len(entries)
        entries.append(entry)
    return entries, content_ids


def delete_stored(entries: Iterable[dict[str, Any]]) -> None:
    for entry in entries:
        path = entry.get("storage_path")
        if path:
            default_storage.delete(path)
