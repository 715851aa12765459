"""VersaVid-R1: GRPO training of Qwen2.5-VL to reason then answer about videos.

Modules, one per concept of the method:
  tasks        problem types and which judge scores each
  prompts      every prompt template and keyword list (data, shared by all modules)
  protocol     the judge services' wire format (shared by the judge client and the services)
  data         JSONL rows, validation, video loading with the two proxy tasks
  rewards      format gate, task rewards, the async judge client
  judges       the Qwen2.5 judge and AutoDQ caption judge services
  trainer      the video GRPO trainer subclass and its launch helpers
  families     the policy model families (Qwen2(.5)-VL, Qwen3-VL dense/MoE, Qwen3.5) and how they differ
  tiny_model   offline tiny models of each family (and a text LM) for tests and the demo run
  compat       workarounds for bugs of the pinned libraries, installed on import (see compat/__init__.py)
"""

from versavid_r1 import compat as _compat

__version__ = "0.1.0"

_compat.install()
