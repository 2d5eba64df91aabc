"""A small in-memory rate limiter (sliding window per client and bucket).

The portal runs as one process behind the syndicate's nginx; in-memory state is
enough and needs no extra service. Memory is bounded: old clients are dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float


@dataclass
class RateLimiter:
    limits: dict[str, Limit]
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 10_000
    _hits: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, bucket: str, client: str) -> float | None:
        """Count one hit; return None if allowed, else the seconds to wait."""
        limit = self.limits.get(bucket)
        if limit is None:
            return None
        now = self.clock()
        key = (bucket, client)
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_clients:
                    self._forget(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - limit.seconds:
                hits.popleft()
            if len(hits) >= limit.count:
                return max(hits[0] + limit.seconds - now, 1.0)
            hits.append(now)
            return None

    def _forget(self, now: float) -> None:
        longest = max((lim.seconds for lim in self.limits.values()), default=0.0)
        stale = [k for k, v in self._hits.items() if not v or v[-1] <= now - longest]
        for key in stale:
            del self._hits[key]
        if len(self._hits) >= self.max_clients:  # still full: drop the oldest half
            for key in sorted(self._hits, key=lambda k: self._hits[k][-1])[: self.max_clients // 2]:
                del self._hits[key]
