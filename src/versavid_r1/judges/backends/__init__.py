"""Judge model backends: transformers (micro-batching queue), vllm (in-process engine), openai, and
lexical (no model: content-word coverage, a stand-in for smoke tests)."""
from .base import BackendError, GenRequest, GenResult, JudgeBackend, JudgeTask, PromptTooLong, create_backend

__all__ = [
    "BackendError", "GenRequest", "GenResult", "JudgeBackend", "JudgeTask", "PromptTooLong", "create_backend",
]
