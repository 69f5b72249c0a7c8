"""Reading a survey answer out of a citizen's text (pure): "4", "5 merci", "3/5"."""

from __future__ import annotations

import re

# A score 1-5 first (after spaces), not part of a longer number ("10", "45 €" are no answer).
_ANSWER = re.compile(r"^\s*([1-5])(?![0-9]|[,.][0-9])\s*(?:/\s*5\b)?[\s.!,;:-]*(.*)$", re.DOTALL)


def parse_answer(text: str) -> tuple[int, str] | None:
    """(score, the rest as a comment), or None when the text is not a survey answer."""
    match = _ANSWER.match(text or "")
    if match is None:
        return None
    return int(match.group(1)), match.group(2).strip()
