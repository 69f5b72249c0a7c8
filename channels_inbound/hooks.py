"""Hooks the channels offer to the apps above them (docs/architecture.md, "Channel hooks").

A channel asks here what an upper app (surveys, publicquality) has to add, without importing
it: each app registers its function with one of the hooks below from its ``AppConfig.ready()``.
The hooks run synchronously, where the channel asks, in its transaction; with no hook
registered the channel does what it does alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from channels_inbound.providers.base import VoiceInstruction
    from channels_inbound.voice.models import Call
    from interactions.models import Interaction

Hook = TypeVar("Hook")


class Hooks(Generic[Hook]):
    """The functions registered for one hook, in the order they were registered."""

    def __init__(self) -> None:
        self._hooks: list[Hook] = []

    def register(self, hook: Hook) -> None:
        """Add ``hook`` once (``ready()`` may run again, e.g. in tests)."""
        if hook not in self._hooks:
            self._hooks.append(hook)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self._hooks)


# A sentence of an acknowledgement, rendered in the active language when called ("" for none):
# the e-mail renders it in French then in English, the SMS in the interaction's language.
AcknowledgementLine = Callable[[], str]

# Sentences appended to the acknowledgement of a new conversation (SMS and e-mail), in this
# order. Each hook is called once per acknowledgement sent, with its interaction, and may store
# something then (e.g. the "Follow my request" link, publicquality).
ACKNOWLEDGEMENT_LINES: Hooks[Callable[[Interaction], AcknowledgementLine]] = Hooks()

# What a reloaded chat window whose conversation is over shows again (the ``survey`` of its
# snapshot): the first hook that gives a form for the interaction (its id, None for a chat
# that never reached a queue) wins (e.g. the satisfaction survey awaiting a rating, surveys).
CHAT_ENDED_FORMS: Hooks[Callable[[int | None], dict[str, Any] | None]] = Hooks()


class AfterConversation(Protocol):
    """What the caller hears once the conversation with the agent is over, instead of the
    hang-up: the instructions, or None (nothing to add)."""

    def __call__(
        self, *, call: Call, interaction: Interaction, provider: str
    ) -> list[VoiceInstruction] | None: ...


# Asked in order when the agent's leg ends after a conversation; the first hook that answers
# keeps the caller on the line (e.g. the post-call survey, "tapez 1 à 5", surveys).
AFTER_CONVERSATION: Hooks[AfterConversation] = Hooks()


def acknowledgement_lines(interaction: Interaction) -> list[AcknowledgementLine]:
    """The extra sentences of the acknowledgement about to be sent for ``interaction``."""
    return [hook(interaction) for hook in ACKNOWLEDGEMENT_LINES]


def chat_ended_form(interaction_id: int | None) -> dict[str, Any] | None:
    """The form an ended chat window shows again, if any."""
    for hook in CHAT_ENDED_FORMS:
        form = hook(interaction_id)
        if form is not None:
            return form
    return None


def after_conversation(
    *, call: Call, interaction: Interaction, provider: str
) -> list[VoiceInstruction] | None:
    """What the caller hears after the conversation, or None (the channel hangs up)."""
    for hook in AFTER_CONVERSATION:
        instructions = hook(call=call, interaction=interaction, provider=provider)
        if instructions is not None:
            return instructions
    return None
