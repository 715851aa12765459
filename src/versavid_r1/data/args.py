"""`VideoArguments`: the video sampling/sizing and policy prompt options as command-line flags and YAML keys.

One dataclass shared by training (`versavid_r1.trainer.args.ScriptArguments`) and evaluation
(`versavid_r1.eval.config.EvalConfig`), both of which inherit it, so a training YAML's video section
can be copied into an eval YAML unchanged. Defaults are the paper's training recipe (docs/method.md); a
subclass re-declares a field only to change its default (evaluation samples QA at 1 fps, up to 128
frames). Names must not clash with TRL's GRPOConfig / ModelConfig, which are parsed next to them by
the same `TrlParser` (hence `video_fps`, `video_seed`, not `fps`, `seed`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from versavid_r1 import prompts
from versavid_r1.data.config import DEFAULT_READ_TIMEOUT_S, TIME_ENCODINGS, VideoConfig
from versavid_r1.data.conversation import PolicyPrompt, resolve_policy_prompt


@dataclass
class VideoArguments:
    video_root: Optional[str] = field(
        default=None,
        metadata={"help": "Folder relative video paths are resolved against (default: the JSONL's folder)."},
    )
    nframes: Optional[int] = field(
        default=16, metadata={"help": "Frames sampled uniformly per video (used when video_fps is unset). Paper: 16."}
    )
    video_fps: Optional[float] = field(
        default=None,
        metadata={"help": "Sample this many frames per second instead of `nframes` (clamped to min_frames.."
                          "max_frames). 0 or null: use nframes."},
    )
    min_frames: int = field(default=4, metadata={"help": "Fewest frames in fps mode."})
    max_frames: int = field(default=768, metadata={"help": "Most frames in fps mode."})
    min_pixels: int = field(default=128 * 28 * 28, metadata={"help": "Minimum pixels per frame. Paper: 128x28x28."})
    max_pixels: int = field(default=196 * 28 * 28, metadata={"help": "Maximum pixels per frame. Paper: 196x28x28."})
    total_pixels: Optional[int] = field(
        default=None, metadata={"help": "Optional pixel budget of a whole video (frames x pixels)."}
    )
    segment_seconds: list[float] = field(
        default_factory=lambda: [1.5, 2.0],
        metadata={"help": "MixVidQA segment length in seconds, for rows given as two clips: one value or a min "
                          "max pair."},
    )
    min_segment_seconds: float = field(
        default=0.25,
        metadata={"help": "Shortest MixVidQA segment a row (or segment_seconds) may ask for; shorter rows are invalid."},
    )
    video_seed: int = field(default=42, metadata={"help": "Data seed of the proxy tasks (MixVidQA segments)."})
    video_cache_size: int = field(
        default=32, metadata={"help": "Decoded clips kept per process (LRU); 0 turns the cache off."}
    )
    video_cache_mb: int = field(
        default=1024, metadata={"help": "Most MB of decoded frames the clip cache holds per process."}
    )
    video_backend: Optional[str] = field(
        default=None, metadata={"help": "Video reader: decord, pyav or torchvision (default: best available)."}
    )
    video_read_timeout_s: float = field(
        default=DEFAULT_READ_TIMEOUT_S,
        metadata={"help": "Seconds one video read (open, header, sampled frames) may take; a read that has not "
                          "returned by then (a hung network mount) fails like an unreadable file: training skips "
                          "and counts the row, validation and evaluation report it."},
    )
    # --- the policy prompt (the same text in training and evaluation; docs/deviations.md) ---------------
    policy_prompt: str = field(
        default="project",
        metadata={"help": "Policy prompt preset: 'project' (the think/answer instruction with one extra sentence, "
                          "and an option-letter line after multiple-choice questions) or 'authors' (the authors' "
                          "template character for character: the question as stored, a newline, their "
                          "think/answer sentence).",
                  "choices": sorted(prompts.POLICY_PROMPT_PRESETS)},
    )
    prompt_instruction: Optional[str] = field(
        default=None,
        metadata={"help": "Instruction text after the question, replacing the preset's (unset: the preset's); used "
                          "exactly as given, whitespace included."},
    )
    mcqa_suffix: Optional[bool] = field(
        default=None,
        metadata={"help": "Add the option-letter line after multiple-choice questions (unset: the preset's; "
                          "project: yes, authors: no)."},
    )
    image_patch_size: Optional[int] = field(
        default=None,
        metadata={"help": "Vision patch size in pixels: frames are sized to multiples of patch x 2, as the model's own "
                          "pipeline sizes them. Unset: the model's (its config.json: 14 for Qwen2/2.5-VL, 16 for "
                          "Qwen3-VL / Qwen3.5)."},
    )
    video_time_encoding: str = field(
        default="absolute",
        metadata={
            "help": "How video time enters Qwen2.5-VL's temporal positions: 'absolute' = the real sampling rate "
            "(seconds per temporal grid = temporal_patch_size / sampled fps, as the model was pretrained); "
            "'reference' = 1.0 s per grid for every video whatever its length (the authors' code). Qwen3-VL and "
            "Qwen3.5 always print each frame group's real time (absolute only).",
            "choices": list(TIME_ENCODINGS),
        },
    )

    def __post_init__(self) -> None:
        if self.video_fps is not None and float(self.video_fps) == 0.0:
            self.video_fps = None  # a flag cannot say null
        if isinstance(self.segment_seconds, (int, float)):
            self.segment_seconds = [float(self.segment_seconds)]
        if len(self.segment_seconds) not in (1, 2):
            raise ValueError("segment_seconds takes one value or a min max pair")
        self.video_config()  # bad frame / pixel / segment settings fail at parse time, before anything loads
        self.policy_prompt_config()

    def policy_prompt_config(self) -> PolicyPrompt:
        """The resolved policy prompt (preset, instruction text, MCQA line) these options describe."""
        return resolve_policy_prompt(self.policy_prompt, self.prompt_instruction, self.mcqa_suffix)

    def video_config(self, video_root: Optional[str] = None, cache_size: Optional[int] = None) -> VideoConfig:
        """The `VideoConfig` these options describe; `video_root` / `cache_size` override the fields."""
        seg = [float(x) for x in self.segment_seconds]
        return VideoConfig(
            nframes=self.nframes,
            fps=self.video_fps,
            min_frames=self.min_frames,
            max_frames=self.max_frames,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            total_pixels=self.total_pixels,
            video_root=video_root if video_root is not None else self.video_root,
            segment_seconds=seg[0] if len(seg) == 1 else tuple(seg),
            seed=self.video_seed,
            cache_size=cache_size if cache_size is not None else self.video_cache_size,
            cache_bytes=int(self.video_cache_mb) << 20,
            min_segment_seconds=self.min_segment_seconds,
            backend=self.video_backend,
            image_patch_size=self.image_patch_size or self._model_patch_size() or VideoConfig.image_patch_size,
            time_encoding=self.video_time_encoding,
            read_timeout_s=self.video_read_timeout_s,
        )

    def _model_patch_size(self) -> Optional[int]:
        """The patch size of the model these options go with, when the options name it (evaluation's `model` /
        `base_model`, the warm start's `model_name_or_path`; GRPO training sets `image_patch_size` from its model
        before building the video config)."""
        from versavid_r1.modeling import vision_patch_size

        return vision_patch_size(getattr(self, "base_model", None) or getattr(self, "model", None)
                                 or getattr(self, "model_name_or_path", None))
