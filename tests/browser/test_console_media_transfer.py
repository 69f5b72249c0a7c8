"""Issue 15's "Must show" in Chromium: an attachment opens from the thread (a picture is
downloaded with its own bytes, a voicemail recording plays in the thread's audio player), and
the transfer list names only the colleagues who can take the conversation now (an offline
colleague and one marked available without a live console are left out)."""

from __future__ import annotations

import io
import uuid
import wave
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from agents.models import AgentPresence, AgentSkill, AgentState
from configuration.models import Skill

from .test_console import _axe_serious, _email, _in_thread, centre

__all__ = ["centre"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]
PICTURE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the bytes the agent must get back


def _recording(seconds: float = 1.0) -> bytes:
    """A real WAV file (silence), so the browser's player can read its length."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return buffer.getvalue()


@pytest.fixture
def stored() -> Iterator[Callable[[str, bytes], str]]:
    """Files saved where the live server reads them (MEDIA_ROOT), removed afterwards."""
    paths: list[str] = []
    folder = f"test-attachments/browser-{uuid.uuid4().hex}"

    def save(name: str, data: bytes) -> str:
        path = default_storage.save(f"{folder}/{name}", ContentFile(data))
        paths.append(path)
        return path

    yield save
    for path in paths:
        default_storage.delete(path)


def test_a_picture_and_a_voicemail_open_from_the_thread(
    centre: dict[str, Any], console_page: Callable[..., Any], stored: Callable[[str, bytes], str]
) -> None:
    from contacts.actions import resolve_contact
    from interactions.actions import do_create_interaction, do_record_message
    from interactions.models import Interaction

    picture = stored("photo.png", PICTURE)
    recording = stored("messagerie.wav", _recording())

    def arrived() -> int:
        contact = resolve_contact("phone", "+33612345671").contact
        interaction = do_create_interaction(
            channel="sms", contact=contact, queue=centre["caf"], subject="MMS", enqueue=False
        )
        Interaction.objects.filter(pk=interaction.pk).update(
            status="assigned", assigned_agent=centre["alice"]
        )
        interaction.refresh_from_db()
        do_record_message(
            interaction=interaction,
            direction="inbound",
            text="Voici la photo et mon message vocal",
            attachments=[
                {"name": "photo.png", "content_type": "image/png", "storage_path": picture},
                {"name": "messagerie.wav", "content_type": "audio/wav", "storage_path": recording},
            ],
        )
        return interaction.pk

    interaction_id = _in_thread(arrived)
    page = console_page("alice")
    thread = f"#thread-{interaction_id}"
    page.locator(thread, has_text="Voici la photo").wait_for()

    # The picture: a link in the thread; following it gives the agent the file itself.
    with page.expect_download() as download:
        page.click(f"{thread} a:text-is('photo.png')")
    assert download.value.suggested_filename == "photo.png"
    assert Path(download.value.path()).read_bytes() == PICTURE

    # The recording: a player in the thread, which reads it (its length: one second).
    player = page.locator(f"{thread} audio[controls]")
    assert player.get_attribute("aria-label") == "messagerie.wav"
    player.evaluate("(audio) => { audio.preload = 'auto'; audio.load(); }")
    page.wait_for_function(
        "(s) => { const a = document.querySelector(s); return a && a.readyState >= 1; }",
        arg=f"{thread} audio",
        timeout=10_000,
    )
    duration = player.evaluate("(audio) => audio.duration")
    assert abs(duration - 1.0) < 0.05
    assert player.evaluate("(audio) => audio.error") is None
    assert _axe_serious(page) == []


def test_the_transfer_list_leaves_out_colleagues_who_cannot_take_it_now(
    centre: dict[str, Any], console_page: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    from agents.presence import do_set_agent_state

    rsa = Skill.objects.get(code="rsa")
    carol = make_user("carol", first_name="Carol", last_name="Petit").agent_profile
    dave = make_user("dave", first_name="Dave", last_name="Roux").agent_profile
    for colleague in (carol, dave):
        AgentSkill.objects.create(agent=colleague, skill=rsa, level=5)
    # Carol went available ten minutes ago and her console has been silent since (closed
    # without logging out); Dave is offline.
    gone = timezone.now() - timedelta(minutes=10)
    _in_thread(lambda: do_set_agent_state(agent=carol, state=AgentState.AVAILABLE, now=gone))
    _in_thread(lambda: do_set_agent_state(agent=dave, state=AgentState.OFFLINE))

    alice_page = console_page("alice")
    console_page("bob")  # Bob: available, console open, the skill, room
    mail = _email("Changement d’adresse")
    alice_page.wait_for_selector(".offer-card")
    alice_page.click("[data-accept]")
    alice_page.wait_for_selector(f"#panel-{mail.pk} [data-composer]")
    alice_page.click(f"#panel-{mail.pk} [data-open-dialog='transfer-dialog-{mail.pk}']")
    alice_page.wait_for_selector(f"#transfer-dialog-{mail.pk}[open]")

    options = alice_page.locator(f"#transfer-{mail.pk} optgroup option[value^='agent:']")
    assert options.all_inner_texts() == ["Bob Durand"]
    group = alice_page.locator(f"#transfer-{mail.pk} optgroup:has(option[value^='agent:'])")
    assert "Collègues disponibles" in (group.get_attribute("label") or "")
    listed = alice_page.inner_text(f"#transfer-{mail.pk}")
    assert "Carol" not in listed
    # left out for her silent console, not her state: she is still marked available
    assert AgentPresence.objects.get(agent=carol).state == AgentState.AVAILABLE
    assert "Dave" not in listed
    assert _axe_serious(alice_page) == []
