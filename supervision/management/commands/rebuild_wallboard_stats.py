"""Recompute the wallboard's daily counters from the interactions (after a crash, or nightly).

python manage.py rebuild_wallboard_stats              # today (Europe/Paris)
python manage.py rebuild_wallboard_stats --days 7     # today and the 6 days before
python manage.py rebuild_wallboard_stats --date 2026-03-29
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from supervision.periods import PARIS
from supervision.stats import rebuild_day


class Command(BaseCommand):
    help = "Recompute the wallboard's daily counters from the interactions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=date.fromisoformat, help="a local day (YYYY-MM-DD)")
        parser.add_argument("--days", type=int, default=1, help="days back from --date or today")

    def handle(self, *args: Any, **options: Any) -> None:
        last = options["date"] or timezone.now().astimezone(PARIS).date()
        for offset in range(max(1, options["days"])):
            day = last - timedelta(days=offset)
            rows = rebuild_day(day)
            self.stdout.write(f"{day}: {rows} queue/channel rows")
