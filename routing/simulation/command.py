"""The ``simulate`` command's options, for ``manage.py simulate`` (a thin wrapper:
``routing/management/commands/simulate.py``) and ``python -m routing.simulation``.

Pure: no Django (the Django command passes its own ``gettext`` to the report).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from .engine import ProgressCallback, simulate
from .report import SimulationResult, format_report
from .scenario import HANDLE_DISTS, Scenario, single_skill_scenario

__all__ = [
    "DEFAULTS",
    "SimulateOptions",
    "add_arguments",
    "build_scenario",
    "expected_arrivals",
    "main",
    "options_from_mapping",
    "run_simulation",
]


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """Options of ``manage.py simulate`` (None = the default, or the scenario's value)."""

    agents: int | None = None
    calls_per_hour: float | None = None
    aht: float | None = None
    sl_seconds: float | None = None
    hours: float | None = None
    seed: int | None = None
    json: bool = False
    scenario: str | None = None
    patience: float | None = None
    handle_dist: str | None = None
    handle_cv: float | None = None
    warmup_hours: float | None = None
    progress: bool = True


DEFAULTS: Final[Mapping[str, Any]] = {
    "agents": 50,
    "calls_per_hour": 500.0,
    "aht": 300.0,
    "sl_seconds": 20.0,
    "hours": 8.0,
    "seed": 1,
    "patience": 0.0,
    "handle_dist": "exp",
    "handle_cv": 1.0,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``simulate`` options on an argparse (or Django) parser."""
    d = DEFAULTS
    parser.add_argument("--agents", type=int, help=f"single-skill agents (default {d['agents']})")
    parser.add_argument(
        "--calls-per-hour", type=float, help=f"arrivals per hour (default {d['calls_per_hour']:g})"
    )
    parser.add_argument("--aht", type=float, help=f"average handle time, s (default {d['aht']:g})")
    parser.add_argument(
        "--sl-seconds", type=float, help=f"service-level threshold, s (default {d['sl_seconds']:g})"
    )
    parser.add_argument("--hours", type=float, help=f"simulated hours (default {d['hours']:g})")
    parser.add_argument("--warmup-hours", type=float, help="discarded start (default 10%%, <=1 h)")
    parser.add_argument("--seed", type=int, help=f"random seed (default {d['seed']})")
    parser.add_argument(
        "--patience", type=float, help="mean patience before hanging up, s (0 = infinite)"
    )
    parser.add_argument("--handle-dist", choices=HANDLE_DISTS, help="handle-time distribution")
    parser.add_argument("--handle-cv", type=float, help="lognormal coefficient of variation")
    parser.add_argument("--scenario", help="multi-skill scenario JSON file (see scenarios/)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_mapping(options: Mapping[str, Any] | argparse.Namespace) -> SimulateOptions:
    """Build :class:`SimulateOptions` from argparse results or Django's ``**options``."""
    m = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
    return SimulateOptions(
        agents=m.get("agents"),
        calls_per_hour=m.get("calls_per_hour"),
        aht=m.get("aht"),
        sl_seconds=m.get("sl_seconds"),
        hours=m.get("hours"),
        seed=m.get("seed"),
        json=bool(m.get("json", False)),
        scenario=m.get("scenario"),
        patience=m.get("patience"),
        handle_dist=m.get("handle_dist"),
        handle_cv=m.get("handle_cv"),
        warmup_hours=m.get("warmup_hours"),
        progress=not m.get("no_progress", False) and m.get("progress", True) is not False,
    )


def build_scenario(opts: SimulateOptions) -> Scenario:
    """The scenario a set of options describes (raises ValueError on bad options)."""
    if opts.scenario:
        clash = [
            name for name in ("agents", "calls_per_hour", "aht") if getattr(opts, name) is not None
        ]
        if clash:
            raise ValueError(
                "--" + ", --".join(c.replace("_", "-") for c in clash) + " do not apply "
                "to --scenario (edit the scenario file instead)"
            )
        sc = Scenario.load(opts.scenario)
        changes: dict[str, Any] = {}
        for name in ("hours", "seed", "sl_seconds", "warmup_hours"):
            if getattr(opts, name) is not None:
                changes[name] = getattr(opts, name)
        queue_changes: dict[str, Any] = {}
        if opts.patience is not None:
            queue_changes["patience_s"] = opts.patience or None
        if opts.handle_dist is not None:
            queue_changes["handle_dist"] = opts.handle_dist
        if opts.handle_cv is not None:
            queue_changes["handle_cv"] = opts.handle_cv
        if queue_changes:
            changes["queues"] = tuple(replace(q, **queue_changes) for q in sc.queues)
        return replace(sc, **changes) if changes else sc

    def pick(name: str) -> Any:
        v = getattr(opts, name)
        return DEFAULTS[name] if v is None else v

    agents = int(pick("agents"))
    if agents < 1:
        raise ValueError("--agents must be >= 1")
    return single_skill_scenario(
        agents,
        float(pick("calls_per_hour")),
        float(pick("aht")),
        sl_seconds=float(pick("sl_seconds")),
        hours=float(pick("hours")),
        seed=int(pick("seed")),
        patience_s=float(pick("patience")) or None,
        handle_dist=str(pick("handle_dist")),
        handle_cv=float(pick("handle_cv")),
        warmup_hours=opts.warmup_hours,
    )


def expected_arrivals(scenario: Scenario) -> float:
    return sum(q.arrivals_per_hour for q in scenario.queues) * scenario.hours


def run_simulation(
    args: SimulateOptions | Mapping[str, Any] | argparse.Namespace,
    progress: ProgressCallback | None = None,
) -> SimulationResult:
    """What ``manage.py simulate`` does, minus printing."""
    opts = args if isinstance(args, SimulateOptions) else options_from_mapping(args)
    return simulate(build_scenario(opts), progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m routing.simulation`` (same options as ``manage.py simulate``)."""
    parser = argparse.ArgumentParser(prog="python -m routing.simulation")
    add_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        result = run_simulation(ns)
    except ValueError as exc:
        parser.error(str(exc))
    print(format_report(result))
    if ns.json:
        print(json.dumps(result.to_dict(), sort_keys=False))
    return 0
