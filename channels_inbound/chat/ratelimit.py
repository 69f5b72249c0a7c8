"""Token buckets against floods: per visitor and per IP address (and per e-mail address for
transcripts), and short-lived claims (the one transcript address of a conversation).

A bucket holds up to ``burst`` tokens and gains ``per_minute / 60`` tokens a second; each
frame costs one. With ``REDIS_URL`` the buckets live in Redis (one atomic Lua script, Redis's
own clock), so every web process shares them; otherwise in this process's memory.

If Redis does not answer, frames are allowed (and a warning logged): losing flood protection
for a moment is better than refusing every citizen.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "chat:rl:"

_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


@dataclass(frozen=True)
class Limit:
    burst: int
    per_minute: float

    @property
    def per_second(self) -> float:
        return max(self.per_minute, 0.001) / 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0


class MemoryBuckets:
    """Buckets in this process (the embedded default)."""

    MAX_KEYS = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, limit: Limit, cost: float = 1.0) -> Verdict:
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self.MAX_KEYS:
                self._prune(now)
            tokens, ts = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - ts) * limit.per_second)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return Verdict(True)
            self._buckets[key] = (tokens, now)
            return Verdict(False, (cost - tokens) / limit.per_second)

    def _prune(self, now: float) -> None:
        # Buckets idle for ten minutes are full again under any sane limit: forget them.
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


class MemoryClaims:
    """First-come values with an expiry, in this process (the embedded default)."""

    MAX_KEYS = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[str, float]] = {}

    def claim(self, key: str, value: str, ttl: float) -> str:
        now = time.monotonic()
        with self._lock:
            if len(self._values) > self.MAX_KEYS:
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
            current = self._values.get(key)
            if current is not None and current[1] > now:
                return current[0]
            self._values[key] = (value, now + ttl)
            return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


_memory = MemoryBuckets()
_claims = MemoryClaims()
# One asyncio Redis client per event loop (a client's connections belong to one loop).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _redis_client() -> Any:
    import redis.asyncio as aioredis

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        _clients[loop] = client
    return client


async def take(bucket: str, ident: str, limit: Limit, cost: float = 1.0) -> Verdict:
    """Spend ``cost`` tokens of ``bucket`` for ``ident`` (a visitor id, an IP address)."""
    key = f"{KEY_PREFIX}{bucket}:{ident}"
    if not settings.REDIS_URL:
        return _memory.take(key, limit, cost)
    try:
        allowed, retry = await _redis_client().eval(
            _LUA, 1, key, limit.burst, limit.per_second, cost
        )
    except Exception as exc:  # Redis down: do not lock every citizen out
        logger.warning("chat rate limit unavailable (%s); frame allowed", exc)
        return Verdict(True)
    return Verdict(bool(int(allowed)), float(retry))


async def claim(name: str, ident: str, value: str, ttl_seconds: float) -> str:
    """The value held under ``name`` for ``ident``: ``value`` if there was none (it is kept
    ``ttl_seconds``), else the earlier one. If Redis does not answer, ``value``."""
    key = f"{KEY_PREFIX}claim:{name}:{ident}"
    if not settings.REDIS_URL:
        return _claims.claim(key, value, ttl_seconds)
    try:
        client = _redis_client()
        await client.set(key, value, nx=True, ex=max(1, int(ttl_seconds)))
        held = await client.get(key)
    except Exception as exc:
        logger.warning("chat claims unavailable (%s); %s allowed", exc, name)
        return value
    return held.decode() if isinstance(held, bytes) else str(held or value)


def limit_from_settings(name: str) -> Limit:
    burst, per_minute = getattr(settings, name)
    return Limit(int(burst), float(per_minute))


def reset_memory_buckets() -> None:
    """Tests: forget every in-memory bucket and claim."""
    _memory.clear()
    _claims.clear()
