"""The policy's prompt for a row (docs/method.md, "The prompt"; docs/deviations.md): one user turn, no system prompt.

    [{"role": "user", "content": [
        {"type": "video", "video": <absolute path, or [a, b] for a MixVidQA pair>},
        {"type": "text", "text": <problem>[\n<MCQA_SUFFIX>]\n<THINK_ANSWER_INSTRUCTION>},
    ]}]

MCQA rows get `prompts.MCQA_SUFFIX` after the question unless the question already contains it, so
the answer is an option letter (the reward compares letters). All prompt text comes from
versavid_r1.prompts. The video part only names the video; its frames come from `load_video`.

Which instruction and whether the MCQA line is added is a `PolicyPrompt`, resolved once from the shared
options `policy_prompt` (a preset of `prompts.POLICY_PROMPT_PRESETS`: "project" or "authors"),
`prompt_instruction` and `mcqa_suffix` (`resolve_policy_prompt`), so training and evaluation build the
same text. The differences from the authors' template are listed in docs/deviations.md.

`clean_messages` drops `None`-valued keys: when messages go through an Arrow table (datasets) the
keys of all content parts are merged, so a text part gains `"video": None` and Qwen's chat template
then emits a second video placeholder. Call it on messages read back from a dataset.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from versavid_r1 import prompts
from versavid_r1.data.config import VideoConfig
from versavid_r1.data.rows import resolve_video_paths
from versavid_r1.tasks import MCQA


@dataclass(frozen=True)
class PolicyPrompt:
    """The resolved policy prompt settings: the instruction after the question, and whether a
    multiple-choice question gets the option-letter line."""

    preset: str
    instruction: str
    mcqa_suffix: bool
    strip_question: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_policy_prompt(preset: str = "project", instruction: Optional[str] = None,
                          mcqa_suffix: Optional[bool] = None) -> PolicyPrompt:
    """`preset`'s instruction and MCQA line, each replaced by `instruction` / `mcqa_suffix` when given. The
    instruction is used exactly as given (whitespace included), so any template can be written out."""
    if preset not in prompts.POLICY_PROMPT_PRESETS:
        raise ValueError(f"policy_prompt must be one of {sorted(prompts.POLICY_PROMPT_PRESETS)}, got {preset!r}")
    base = prompts.POLICY_PROMPT_PRESETS[preset]
    if instruction is not None and not str(instruction).strip():
        raise ValueError("prompt_instruction is empty: leave it unset to use the preset's instruction")
    return PolicyPrompt(
        preset=preset,
        instruction=str(instruction) if instruction is not None else base["instruction"],
        mcqa_suffix=bool(base["mcqa_suffix"] if mcqa_suffix is None else mcqa_suffix),
        strip_question=bool(base["strip_question"]),
    )


def prompt_text(row: dict, mcqa_suffix: bool = True, instruction: Optional[str] = None,
                strip_question: bool = True) -> str:
    """The text part: the question (stripped unless the preset keeps it as stored), the MCQA suffix when
    due, a newline, then the think/answer instruction."""
    text = str(row["problem"])
    if strip_question:
        text = text.strip()
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
    prompt: Optional[PolicyPrompt] = None,
) -> list[dict]:
    """The chat messages of a row (see the module docstring). `prompt`, when given, sets the instruction
    and the MCQA line (an explicit `instruction` still wins, e.g. evaluation's direct-answer mode)."""
    cfg = cfg or VideoConfig()
    strip_question = True
    if prompt is not None:
        mcqa_suffix = prompt.mcqa_suffix
        instruction = instruction if instruction is not None else prompt.instruction
        strip_question = prompt.strip_question
    paths = resolve_video_paths(row, cfg.video_root)
    video: Any = paths[0] if len(paths) == 1 else paths
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": video},
                {"type": "text", "text": prompt_text(row, mcqa_suffix, instruction, strip_question)},
            ],
        }
    ]
    return clean_messages(messages)
