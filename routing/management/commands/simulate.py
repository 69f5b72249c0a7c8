"""``python manage.py simulate``: discrete-event simulation of the routing policy.

Thin wrapper: options, progress bar and printing only; the simulation itself is
:mod:`routing.simulation` (no Django there: scenario, engine, report and command modules).

Examples::

    python manage.py simulate --agents 55 --calls-per-hour 900 --aht 180 --hours 8
    python manage.py simulate --scenario scenarios/caf_allocations.json --json
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from routing.simulation import (
    add_arguments,
    build_scenario,
    expected_arrivals,
    format_report,
    options_from_mapping,
    simulate,
)

PROGRESS_BAR_FROM_ARRIVALS = 20_000
"""Show a progress bar when the run is expected to have at least this many contacts."""


class Command(BaseCommand):
    help = _(
        "Simulate the contact centre in virtual time with the production routing policy "
        "and report service level, speed of answer, abandonment, occupancy and agent "
        "proficiency (compared with Erlang C for single-skill runs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        opts = options_from_mapping(options)
        try:
            scenario = build_scenario(opts)
        except (ValueError, OSError, KeyError) as exc:
            raise CommandError(str(exc)) from exc

        bar: Any = None
        progress = None
        if opts.progress and expected_arrivals(scenario) >= PROGRESS_BAR_FROM_ARRIVALS:
            from tqdm import tqdm

            total_s = scenario.hours * 3600.0
            bar = tqdm(total=round(total_s), unit="s", desc=_("virtual time"), leave=False)

            def progress(now: float, end: float) -> None:
                bar.update(max(0, round(now) - bar.n))

        try:
            result = simulate(scenario, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(format_report(result, gettext=_))
        if opts.json:
            self.stdout.write(json.dumps(result.to_dict()))
