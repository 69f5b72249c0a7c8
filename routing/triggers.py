"""Asking for a routing pass, and the Redis flags that keep passes from overlapping.

Writes that may let an interaction be matched (one waits, an agent frees up, an offer is
declined or expires) call :func:`request_routing`, which queues the ``routing.route_pending``
task once the transaction commits, coalescing requests (docs/routing.md, "Triggers"). The
task's loop (:func:`routing.claims.do_route_passes`) takes the pass lock with
:func:`begin_pass` and ends each pass with :func:`end_pass`, which says whether one more was
asked for meanwhile.
"""

from __future__ import annotations

import logging

from kernel.triggers import CoalescedTrigger
from kernel.triggers import redis_client as _redis

logger = logging.getLogger(__name__)

PASS_QUEUED_KEY = "routing:pass-queued"  # noqa: S105 - a Redis key, not a secret
PASS_RUNNING_KEY = "routing:pass-running"  # noqa: S105 - the running pass's token (its lock)
PASS_AGAIN_KEY = "routing:pass-again"  # noqa: S105 - asked for while a pass ran: one more
PASS_QUEUED_MS = 1000  # a queued pass's flag lives this long: a lost task costs a second
PASS_LOCK_MS = 10_000  # a pass's lock outlives a killed worker by this much at most
MAX_PASSES_PER_TASK = 20  # then the task hands over to a new one (other tasks get a turn)

# Each script is atomic on the Redis server, so no request can fall between two steps of
# another (a request arriving as a pass ends is either seen by its end or queues a new task).
# request: KEYS queued, running, again; ARGV queued ms, lock ms -> 1: queue a task now.
_REQUEST_LUA = """
if redis.call('exists', KEYS[2]) == 1 then
  redis.call('set', KEYS[3], 1, 'px', ARGV[2])
  return 0
end
if redis.call('set', KEYS[1], 1, 'nx', 'px', ARGV[1]) then return 1 end
return 0
"""
# begin: KEYS queued, running, again; ARGV token, lock ms -> 1: this task runs the pass.
_BEGIN_LUA = """
redis.call('del', KEYS[1])
if redis.call('set', KEYS[2], ARGV[1], 'nx', 'px', ARGV[2]) then
  redis.call('del', KEYS[3])
  return 1
end
redis.call('set', KEYS[3], 1, 'px', ARGV[2])
return 0
"""
# end: KEYS running, again; ARGV token, lock ms, release -> 1: run one more pass (lock kept).
_END_LUA = """
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
local again = redis.call('del', KEYS[2])
if again == 1 and ARGV[3] == '0' then
  redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
  return 1
end
if holder then redis.call('del', KEYS[1]) end
return again
"""


def queue_pass() -> None:
    """Queue the routing task now (no coalescing: the caller decided)."""
    from .tasks import route_pending

    route_pending.delay()


def _nothing_waiting() -> bool:
    """Whether no interaction is queued, read after the requesting transaction committed (one
    index probe). A pass would then do nothing but this same probe: most requests come from
    agents freed (a close, a pause ended) with nobody waiting. An interaction queued after
    this look asks for its own pass once it commits, and finds the freed agent. When the
    probe fails, the request goes on."""
    from .selectors import anything_waiting

    try:
        return not anything_waiting()
    except Exception:
        logger.warning("could not look for waiting interactions; asking for a pass anyway")
        return False


def _claim_pass() -> object:
    if _nothing_waiting():
        return 0  # no pass: nothing to route (not even a running pass's "again")
    # queued now (1), or asked of the running pass, or already queued (0): one atomic script
    return _redis().eval(
        _REQUEST_LUA,
        3,
        PASS_QUEUED_KEY,
        PASS_RUNNING_KEY,
        PASS_AGAIN_KEY,
        PASS_QUEUED_MS,
        PASS_LOCK_MS,
    )


PASS_TRIGGER = CoalescedTrigger(
    key=PASS_QUEUED_KEY,
    queued_ms=PASS_QUEUED_MS,
    enqueue=queue_pass,
    what="a routing pass",
    claim=_claim_pass,
)


def request_routing() -> None:
    """Ask for a routing pass once the current transaction commits.

    With a broker, a request made when no interaction is queued (looked up after the commit)
    queues nothing. The first request queues a pass at once: no delay, no countdown. Requests
    are then coalesced without adding latency: while a pass is queued and not yet started,
    more requests add nothing (that pass reads their rows); while a pass runs, they ask for
    exactly one more pass, which the running task starts as soon as it ends (no broker hop,
    passes never overlap). The flags expire (a second for a queued pass, ten for a running
    one), so a lost task or a killed worker delays routing by that at most, and the periodic
    sweep covers everything else (kernel.triggers).
    """
    PASS_TRIGGER.request()


def begin_pass(token: str) -> bool:
    """Take the pass lock for ``token`` (clearing the "queued" flag): False when another task
    runs passes (it is asked for exactly one more instead). Raises when Redis is down."""
    return bool(
        _redis().eval(
            _BEGIN_LUA, 3, PASS_QUEUED_KEY, PASS_RUNNING_KEY, PASS_AGAIN_KEY, token, PASS_LOCK_MS
        )
    )


def ask_again() -> None:
    """The running pass asks for one more after it (its claims lost matches to a concurrent
    transaction)."""
    _redis().set(PASS_AGAIN_KEY, 1, px=PASS_LOCK_MS)


def end_pass(token: str, *, release: bool) -> bool:
    """A pass of ``token`` ended: True when passes were asked for meanwhile. The lock is kept
    for the next pass then, unless ``release`` (the caller hands over to a new task); with
    nothing asked for, the lock is released."""
    return bool(
        _redis().eval(
            _END_LUA, 2, PASS_RUNNING_KEY, PASS_AGAIN_KEY, token, PASS_LOCK_MS, int(release)
        )
    )


def release_pass(token: str) -> None:
    """Let go of the pass lock; a pass requested meanwhile goes to a new task."""
    try:
        if end_pass(token, release=True):
            queue_pass()
    except Exception:
        logger.warning("could not release the routing pass lock; it expires by itself")
