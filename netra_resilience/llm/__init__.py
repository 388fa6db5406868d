"""The framework-free half of the LLM call path: classification, cache keys, streams, fallbacks.

Nothing here imports openai, httpx or any other SDK; the adapters in
``netra_resilience.integrations`` (``openai``, ``httpx``, ``httpx2``, ``aiocache``) plug these
pieces into real clients.
"""

from netra_resilience.llm._fallback import (
    Alternate,
    CannedReply,
    DegradedAnswers,
    FallbackChain,
    answer_cache_filter,
    breaker_open,
    is_complete_answer,
)
from netra_resilience.llm._presets import standard_llm_pipeline, standard_llm_retry
from netra_resilience.llm._request import (
    LLM_BREAKER_FAILURE,
    LLM_DEPENDENCY_FAILURE,
    NON_OUTPUT_PARAMS,
    TRANSIENT_LLM_FAILURE,
    FirstTokenTimeoutError,
    LlmCacheKey,
    LlmRequest,
    StreamIdleTimeoutError,
    StreamTruncatedError,
    is_transient_failure,
    is_transient_status,
    llm_cache_key,
    llm_retry_after,
    make_llm_cache_key,
    report_failure,
    request_of,
    server_delay,
)
from netra_resilience.llm._stream import (
    TRUNCATED,
    ChatStreamTracker,
    EndOfBodyTracker,
    ResilientStream,
    ResponsesStreamTracker,
    StreamPolicy,
    StreamProviderError,
    StreamTracker,
    open_stream,
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
    "standard_llm_pipeline",
    "standard_llm_retry",
    "tracker_for",
]
