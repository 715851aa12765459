"""The policy's prompt for a row (docs/method.md, "The prompt"; docs/deviations.md): one user turn, no system prompt.

    [{"role": "user", "content": [
        {"type": "video", "video": <absolute path, or [a, b] for a MixVidQA pair>},
        {"type": "text", "text": <problem>[\n<MCQA_SUFFIX>]\n<THINK_ANSWER_INSTRUCTION>},
    ]}]

MCQA rows get `prompts.MCQA_SUFFIX` after the question unless the question already contains it, so
the answer is an option letter (the reward compares letters). All prompt text comes from
versavid_r1.prompts. The video part only names the video; its frames come from `load_video`.

`clean_messages` drops `None`-valued keys: when messages go through an Arrow table (datasets) the
keys of all content parts are merged, so a text part gains `"video": None` and Qwen's chat template
then emits a second video placeholder. Call it on messages read back from a dataset.
"""
from __future__ import annotations

from typing import Any, Optional

from versavid_r1 import prompts
from versavid_r1.data.config import VideoConfig
from versavid_r1.data.rows import resolve_video_paths
from versavid_r1.tasks import MCQA


def prompt_text(row: dict, mcqa_suffix: bool = True, instruction: Optional[str] = None) -> str:
    """The text part: the question, the MCQA suffix when due, then the think/answer instruction."""
    text = str(row["problem"]).strip()
    if mcqa_suffix and row.get("problem_type") == MCQA and prompts.MCQA_SUFFIX.lower() not in text.lower():
        text = f"{text}\n{prompts.MCQA_SUFFIX}"
    return f"{text}\n{instruction if instruction is not None else prompts.THINK_ANSWER_INSTRUCTION}"


def clean_messages(messages: Any) -> Any:
    """A copy of chat messages (or of any nesting of dicts and lists) without `None`-valued keys."""
    if isinstance(messages, dict):
        return {k: clean_messages(v) for k, v in messages.items() if v is not None}
    if isinstance(messages, (list, tuple)):
        return [clean_messages(m) for m in messages]
    return messages


def make_conversation(
    row: dict,
    cfg: Optional[VideoConfig] = None,
    *,
    mcqa_suffix: bool = True,
    instruction: Optional[str] = None,
) -> list[dict]:
    """The chat messages of a row (see the module docstring)."""
    cfg = cfg or VideoConfig()
    paths = resolve_video_paths(row, cfg.video_root)
    video: Any = paths[0] if len(paths) == 1 else paths
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": video},
                {"type": "text", "text": prompt_text(row, mcqa_suffix, instruction)},
            ],
        }
    ]
    return clean_messages(messages)
