"""openai integration: resilient clients, failure classification, call-level resilience.

Two layers, use one or both:

* **Transport** (:func:`resilient_async_openai`, :func:`make_resilient`): every HTTP request
  of an ``AsyncOpenAI`` runs through a pipeline (retry with ``Retry-After``, breaker,
  timeouts, rate limit, bulkhead); the SDK's own retries are off. Call sites do not change.
* **Call** (:class:`ResilientOpenAI`): ``chat.completions.create`` / ``responses.create``
  through a pipeline that may also hold a response cache (stale answer when the provider
  fails), a fallback chain (:func:`openai_alternate`, :func:`canned_reply`) and the streaming
  policy (retry/fall back only before the first chunk; TTFT and idle timeouts; truncation is
  a :class:`~netra_resilience.llm.StreamTruncatedError`, never a clean end). Both
  :class:`StreamPolicy` and :class:`StreamTruncatedError` are re-exported here: they are what
  a caller of :class:`ResilientOpenAI` configures and catches.

Do not put a retry in both layers: nested retries multiply.
"""

from netra_resilience.integrations import missing_extra
from netra_resilience.llm import StreamPolicy, StreamTruncatedError

try:
    from netra_resilience.integrations.openai._calls import ResilientOpenAI, canned_reply
    from netra_resilience.integrations.openai._client import (
        OPENAI_TRANSIENT,
        decode_answer,
        encode_answer,
        invoke_openai,
        is_openai_transient,
        make_resilient,
        openai_alternate,
        resilient_async_openai,
    )
except ImportError as error:
    if error.name not in ("openai", "httpx2"):
        raise
    raise missing_extra("openai", error) from error

__all__ = [
    "OPENAI_TRANSIENT",
    "ResilientOpenAI",
    "StreamPolicy",
    "StreamTruncatedError",
    "canned_reply",
    "decode_answer",
    "encode_answer",
    "invoke_openai",
    "is_openai_transient",
    "make_resilient",
    "openai_alternate",
    "resilient_async_openai",
]
