"""Discrete-event contact-centre simulation in virtual time, with the production routing.

One engine (:mod:`.engine`) for two uses:

* ``manage.py simulate`` (:mod:`.command`; ``python -m routing.simulation`` too): a synthetic
  :class:`Scenario` (:mod:`.scenario`): Poisson arrivals, random handle times and patience,
  agents always logged in; figures and Erlang C's (:mod:`.report`);
* the supervisors' what-if (``supervision.whatif`` reads a recorded period from the database):
  a :class:`ReplayInput`, the period's contacts and agents as they were, replayed with the
  current or a proposed configuration (:func:`replay`).

No Django import in this package (the Django command is a thin wrapper around
:mod:`.command`). Model and definitions: docs/routing.md, section 7.
"""

from .command import (
    DEFAULTS,
    SimulateOptions,
    add_arguments,
    build_scenario,
    expected_arrivals,
    main,
    options_from_mapping,
    run_simulation,
)
from .engine import Engine, ProgressCallback, Replay, Simulator, mean_patience, replay, simulate
from .report import (
    ErlangPrediction,
    QueueResult,
    ReplayOutcome,
    SimulationResult,
    erlang_prediction,
    format_report,
)
from .scenario import (
    HANDLE_DISTS,
    AgentGroupSpec,
    QueueSpec,
    ReplayAgent,
    ReplayContact,
    ReplayInput,
    ReplayQueue,
    Scenario,
    single_skill_scenario,
)

__all__ = [
    "DEFAULTS",
    "HANDLE_DISTS",
    "AgentGroupSpec",
    "Engine",
    "ErlangPrediction",
    "ProgressCallback",
    "QueueResult",
    "QueueSpec",
    "Replay",
    "ReplayAgent",
    "ReplayContact",
    "ReplayInput",
    "ReplayOutcome",
    "ReplayQueue",
    "Scenario",
    "SimulateOptions",
    "SimulationResult",
    "Simulator",
    "add_arguments",
    "build_scenario",
    "erlang_prediction",
    "expected_arrivals",
    "format_report",
    "main",
    "mean_patience",
    "options_from_mapping",
    "replay",
    "run_simulation",
    "simulate",
    "single_skill_scenario",
]
