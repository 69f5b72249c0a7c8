"""The channels a citizen reaches us on: the one list of their names.

A plain ``StrEnum`` that imports nothing, so every layer uses it, the pure routing policy and
the simulation engine included (``.importlinter``, "pure" contracts). Its members are strings
(``Channel.VOICE == "voice"``): they go into JSON, settings and database rows as they are.
The model field's choices, with their translated labels, are ``interactions.models.Channel``,
whose values are these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Channel(StrEnum):
    # The order of the model field's choices (changing it changes a migration).
    VOICE = "voice"
    SMS = "sms"
    EMAIL = "email"
    CHAT = "chat"


# The channels whose citizen is a phone number (a call's or an SMS's caller).
PHONE_CHANNELS: Final = frozenset({Channel.VOICE, Channel.SMS})
