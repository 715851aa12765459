"""Judge model backends: transformers (micro-batching queue), vllm (in-process engine), openai."""
from .base import BackendError, GenRequest, GenResult, JudgeBackend, PromptTooLong, create_backend

__all__ = ["BackendError", "GenRequest", "GenResult", "JudgeBackend", "PromptTooLong", "create_backend"]
