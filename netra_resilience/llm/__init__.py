"""The framework-free half of the LLM call path: classification, cache keys, streams, fallbacks.

Nothing here imports openai, httpx or any other SDK; the adapters in
``netra_resilience.integrations`` (``openai``, ``httpx``, ``httpx2``, ``aiocache``) plug these
pieces into real clients.
"""

from netra_resilience.llm._answers import DegradedAnswers, answer_cache_filter, is_complete_answer
from netra_resilience.llm._classify import (
    LLM_BREAKER_FAILURE,
    LLM_DEPENDENCY_FAILURE,
    TRANSIENT_LLM_FAILURE,
    is_transient_failure,
    is_transient_status,
    llm_retry_after,
    server_delay,
)
from netra_resilience.llm._errors import (
    FirstTokenTimeoutError,
    StreamIdleTimeoutError,
    StreamTruncatedError,
)
from netra_resilience.llm._fallback import Alternate, CannedReply, FallbackChain, breaker_open
from netra_resilience.llm._keys import (
    NON_OUTPUT_PARAMS,
    LlmCacheKey,
    llm_cache_key,
    make_llm_cache_key,
)
from netra_resilience.llm._report import report_failure
from netra_resilience.llm._request import LlmRequest, request_of
from netra_resilience.llm._stream import TRUNCATED, ResilientStream, StreamPolicy, open_stream
from netra_resilience.llm._trackers import (
    ChatStreamTracker,
    EndOfBodyTracker,
    ResponsesStreamTracker,
    StreamProviderError,
    StreamTracker,
    tracker_for,
)

__all__ = [
    "LLM_BREAKER_FAILURE",
    "LLM_DEPENDENCY_FAILURE",
    "NON_OUTPUT_PARAMS",
    "TRANSIENT_LLM_FAILURE",
    "TRUNCATED",
    "Alternate",
    "CannedReply",
    "ChatStreamTracker",
    "DegradedAnswers",
    "EndOfBodyTracker",
    "FallbackChain",
    "FirstTokenTimeoutError",
    "LlmCacheKey",
    "LlmRequest",
    "ResilientStream",
    "ResponsesStreamTracker",
    "StreamIdleTimeoutError",
    "StreamPolicy",
    "StreamProviderError",
    "StreamTracker",
    "StreamTruncatedError",
    "answer_cache_filter",
    "breaker_open",
    "is_complete_answer",
    "is_transient_failure",
    "is_transient_status",
    "llm_cache_key",
    "llm_retry_after",
    "make_llm_cache_key",
    "open_stream",
    "report_failure",
    "request_of",
    "server_delay",
    "tracker_for",
]
