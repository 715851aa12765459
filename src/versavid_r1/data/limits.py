"""Limits a row must respect beyond its schema: everything training or the judges enforce later.

A row that breaks one of these used to pass validation and then stop a run at the step that first
sampled it (out of memory, a judge's HTTP 422, a crash while storing the dataset). Each check returns
`(field, message)` pairs; `schema.validate_row` reports them with the row's line number, and the loader
refuses the same overrides (`override_bound_errors`) so an unvalidated row cannot get past them either.

- `override_bound_errors`: a row may lower the config's frame and pixel budget, never raise it
  (`max_pixels`, `min_pixels`, `total_pixels`, `resized_height` x `resized_width` after rounding, frame
  counts against `max_frames`), and its MixVidQA `segment_seconds` may not go below
  `min_segment_seconds` (the interleaved timeline holds duration / segment pieces).
- `judge_field_errors`: the texts each judge receives (`protocol.py`) within the judges'
  `--max-field-chars` (`RowLimits.judge_max_field_chars`, default the services' own default), at most
  `MAX_PRECOMPUTED_EVENTS` caption events, and the request within the judge's body size and prompt tokens
  as the service counts them (`versavid_r1.judge_units`).
- `text_errors`: every string must be encodable as UTF-8; JSON allows a lone surrogate escape
  (`"\\ud800"`) that Python decodes but Arrow, HTTP clients and tokenizers cannot encode.
- `video_token_errors`: a decoded clip whose video tokens alone reach `max_prompt_length`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import qwen_vl_utils as qvu

from versavid_r1.data.config import VideoConfig, segment_range
from versavid_r1.judge_units import default_limits, item_problems, judge_request
from versavid_r1.protocol import (
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FIELD_CHARS, DEFAULT_MAX_INPUT_TOKENS, MAX_PRECOMPUTED_EVENTS, JudgeLimits,
)
from versavid_r1.tasks import CAPTION_JUDGE, JUDGE_OF_TYPE, QWEN_JUDGE

Problem = tuple[str, str]  # (field, message)

# Frames per temporal token of Qwen2/2.5-VL (two frames make one token).
_TEMPORAL_PATCH = 2


@dataclass(frozen=True)
class RowLimits:
    """Limits of the services a row will meet. The `judge_*` ones are the judges' `--max-field-chars`,
    `--max-body-bytes` and the Qwen judge's `--max-input-tokens` (defaults: theirs; a service's /health
    reports its own, `judge_limits` of a `JudgeLimits` replaces them); `max_prompt_length` is the
    trainer's (None: not checked)."""

    judge_max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    max_prompt_length: Optional[int] = None
    judge_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    judge_max_input_tokens: Optional[int] = DEFAULT_MAX_INPUT_TOKENS
    services: Optional[dict] = None  # judge name -> protocol.JudgeLimits read from its /health

    def judge_limits(self, judge: str) -> JudgeLimits:
        """The limits of `judge`: its /health's when known, else these options'."""
        if self.services and judge in self.services:
            return self.services[judge]
        return default_limits(judge, self.judge_max_field_chars, self.judge_max_body_bytes,
                              self.judge_max_input_tokens)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def override_bound_errors(row: dict, cfg: VideoConfig) -> list[Problem]:
    """Per-row overrides that ask for more frames or pixels than the config, or shorter segments."""
    out: list[Problem] = []
    for key in ("min_pixels", "max_pixels"):
        v = row.get(key)
        if _number(v) and v > cfg.max_pixels:
            out.append((key, f"{v:g} is more than the configured max_pixels {cfg.max_pixels} (a row may lower "
                             "the pixel budget, not raise it)"))
    v = row.get("total_pixels")
    if _number(v) and cfg.total_pixels is not None and v > cfg.total_pixels:
        out.append(("total_pixels", f"{v:g} is more than the configured total_pixels {cfg.total_pixels}"))
    h, w = row.get("resized_height"), row.get("resized_width")
    if _number(h) and _number(w) and h >= 1 and w >= 1:
        factor = qvu.DEFAULTS.patch_factor(cfg.image_patch_size)
        try:
            rh, rw = qvu.smart_resize(int(h), int(w), factor=factor)
        except ValueError as exc:
            out.append(("resized_height", str(exc)))
        else:
            if rh * rw > cfg.max_pixels:
                out.append(("resized_height", f"{int(h)}x{int(w)} (resized to {rh}x{rw} = {rh * rw} px) is more "
                                              f"than the configured max_pixels {cfg.max_pixels}"))
    for key in ("nframes", "min_frames", "max_frames"):
        v = row.get(key)
        if _number(v) and v > cfg.max_frames:
            out.append((key, f"{v:g} frames is more than the configured max_frames {cfg.max_frames}"))
    seg = row.get("segment_seconds")
    if seg is not None:
        try:
            lo, _ = segment_range(seg)
        except ValueError:
            pass  # reported by the schema check
        else:
            if lo < cfg.min_segment_seconds:
                out.append(("segment_seconds", f"{lo:g} s is shorter than min_segment_seconds "
                                               f"{cfg.min_segment_seconds:g} s"))
    return out


def judge_field_errors(row: dict, limits: RowLimits) -> list[Problem]:
    """What the row's judge would refuse (HTTP 413 / 422), in its own units: characters per field, bytes of
    the request, prompt tokens (see `versavid_r1.judge_units`), with an empty prediction."""
    judge = JUDGE_OF_TYPE.get(row.get("problem_type"))  # type: ignore[arg-type]
    if judge is None:
        return []
    service = limits.judge_limits(judge)
    lim = service.max_field_chars
    hint = f"more than the judge accepts ({lim}, its --max-field-chars; judge_max_field_chars here)"
    sent = [("solution", row.get("solution"))]  # sent as `sol`
    if judge == QWEN_JUDGE:
        sent.append(("problem", row.get("problem")))  # sent as `question`
    out = [(name, f"{len(v)} characters, {hint}") for name, v in sent if isinstance(v, str) and len(v) > lim]
    events = row.get("events")
    if judge == CAPTION_JUDGE and isinstance(events, list):
        if len(events) > MAX_PRECOMPUTED_EVENTS:
            out.append(("events", f"{len(events)} events, more than the caption judge accepts "
                                  f"({MAX_PRECOMPUTED_EVENTS})"))
        out += [("events", f"event {j} has {len(e)} characters, {hint}")
                for j, e in enumerate(events) if isinstance(e, str) and len(e) > lim]
    return out + judge_unit_errors(row, service)


def judge_unit_errors(row: dict, service: JudgeLimits) -> list[Problem]:
    """The row's request (empty prediction) against the judge's byte and token limits."""
    texts = [row.get(k) for k in ("solution", "problem")]
    events = row.get("events")
    if not all(isinstance(t, str) for t in texts) or (events is not None and not isinstance(events, list)):
        return []  # a malformed row is reported by the schema check
    if any(not isinstance(e, str) for e in events or []):
        return []
    try:
        request = judge_request(row["problem_type"], "", texts[0], texts[1], events)
    except ValueError:  # e.g. a lone surrogate: text_errors reports it
        return []
    field = "events" if events else "solution"
    return [(field if name == "request" else "solution", msg) for name, msg in item_problems(request, service)]


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, f"{path}{'.' if path else ''}<key>")
            yield from _strings(v, f"{path}{'.' if path else ''}{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def text_errors(row: dict) -> list[Problem]:
    """Strings of the row (keys and values, nested) that are not encodable as UTF-8."""
    out: list[Problem] = []
    for path, text in _strings(row, ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            out.append((path.split("[")[0].split(".")[0] or "row",
                        f"{path}: character {exc.start} is a lone surrogate {text[exc.start]!r} (an escaped "
                        "\\ud800-\\udfff without its pair), which cannot be encoded as UTF-8"))
    return out


def video_token_errors(clips: Sequence[Any], max_prompt_length: Optional[int], factor: int = 28) -> list[Problem]:
    """Decoded clips (`frames` [T, 3, H, W]) whose video tokens alone reach `max_prompt_length`."""
    if not max_prompt_length:
        return []
    tokens = sum(math.ceil(c.frames.shape[0] / _TEMPORAL_PATCH) * (c.frames.shape[-2] // factor)
                 * (c.frames.shape[-1] // factor) for c in clips)
    if tokens < max_prompt_length:
        return []
    return [("video", f"the video alone is {tokens} tokens, not below max_prompt_length {max_prompt_length}; "
                      "lower the row's frames or pixels (nframes / max_pixels)")]
