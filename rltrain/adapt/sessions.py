"""Per-session adaptation state: δ and its Adam moments keyed by session id, with a TTL and LRU eviction.

A session is one episode (or one user turn, where the caller resets per turn): the rollout worker names it, the
engine looks it up at every prefill. Sessions never see each other's δ (spec §7.5 T1: per request, not global).
An idle session expires after `ttl_s`; past `max_sessions` the least recently used one is evicted. An evicted or
expired session restarts from δ = 0, which is the state a new episode starts from anyway, so eviction loses
adaptation but never correctness.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import torch

from rltrain.adapt.vector import AdaptState


class SessionStore:
    """δ states by session id. Not thread-safe: one engine thread owns it."""

    def __init__(self, hidden: int, *, device: torch.device | str = "cpu", ttl_s: float = 3600.0,
                 max_sessions: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0 or max_sessions < 1:
            raise ValueError(f"adapt.session_ttl_s={ttl_s} must be > 0 and adapt.max_sessions={max_sessions} >= 1")
        self.hidden, self.device, self.ttl_s, self.max_sessions, self.clock = hidden, device, ttl_s, max_sessions, clock
        self._states: OrderedDict[str, tuple[AdaptState, float]] = OrderedDict()
        self.evicted = 0
        self.expired = 0

    def __contains__(self, session: str) -> bool:
        self._expire()
        return session in self._states

    def __len__(self) -> int:
        return len(self._states)

    def get(self, session: str) -> AdaptState:
        """The session's state, created at δ = 0 when new (or expired/evicted); marks it used."""
        self._expire()
        now = self.clock()
        if session in self._states:
            state, _ = self._states.pop(session)
        else:
            state = AdaptState.zeros(self.hidden, self.device)
            while len(self._states) >= self.max_sessions:
                self._states.popitem(last=False)  # least recently used first
                self.evicted += 1
        self._states[session] = (state, now)
        return state

    def peek(self, session: str) -> AdaptState | None:
        """The state if the session exists, without creating or touching it."""
        self._expire()
        entry = self._states.get(session)
        return entry[0] if entry else None

    def reset(self, session: str) -> bool:
        """δ = 0 and Adam zeroed for this session (episode or turn start); False if it did not exist."""
        entry = self._states.pop(session, None)
        return entry is not None

    def _expire(self) -> None:
        limit = self.clock() - self.ttl_s
        while self._states:
            key, (_, used) = next(iter(self._states.items()))
            if used >= limit:
                return
            del self._states[key]
            self.expired += 1
