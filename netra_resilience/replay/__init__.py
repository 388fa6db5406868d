"""Resumable event streams: a bounded per-run replay buffer keyed by run id.

A WebSocket (or SSE) client that reconnects with its run id and the last ``seq`` it saw gets
the missed events exactly once, in order, then the live ones (:meth:`ReplayBuffer.follow`).
"""

from netra_resilience.replay._buffer import ReplayBuffer, ReplayUnavailableError

__all__ = ["ReplayBuffer", "ReplayUnavailableError"]
