"""Roll up past days for reports again from the interactions (after importing history, after a
crash, or nightly for yesterday).

python manage.py rebuild_report_days                  # yesterday (Europe/Paris)
python manage.py rebuild_report_days --days 30        # the 30 days before today
python manage.py rebuild_report_days --date 2026-03-29 --days 1
python manage.py rebuild_report_days --missing --days 400  # only days not rolled up yet
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from supervision.rollup import build_day, ensure_built, today


class Command(BaseCommand):
    help = "Roll up past days for reports from the interactions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=date.fromisoformat, help="the last day (YYYY-MM-DD)")
        parser.add_argument("--days", type=int, default=1, help="days back from --date")
        parser.add_argument(
            "--missing", action="store_true", help="only the days not rolled up (or dropped)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        current = today()
        last = options["date"] or current - timedelta(days=1)
        if last >= current:
            raise CommandError("only days before today are rolled up (today is always live)")
        days = [last - timedelta(days=offset) for offset in range(max(1, options["days"]))]
        if options["missing"]:
            built = ensure_built(days)
            self.stdout.write(f"{len(built)} of {len(days)} days rolled up")
            return
        for day in sorted(days):
            rows = build_day(day)
            self.stdout.write(f"{day}: {rows} rows")
