"""``manage.py purge [--dry-run]``: apply the retention durations now (the nightly task does
the same), or say what would go."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from privacy.retention import purge


class Command(BaseCommand):
    help = "Remove or anonymise the personal data whose retention duration has passed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would go, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        lines = purge(dry_run=dry_run)
        verb = "would go" if dry_run else "removed"
        for line in lines:
            org = line.organisation_id if line.organisation_id is not None else "-"
            self.stdout.write(
                f"organisation {org}\t{line.data_class}\t{line.step}\t"
                f"older than {line.days} d\t{line.count} {verb}"
            )
        total = sum(line.count for line in lines)
        self.stdout.write(f"total: {total} {verb}" + (" (dry run)" if dry_run else ""))
