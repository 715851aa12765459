"""The generated demo dataset: ground truths that are true of the pixels, and a held-out set on new videos.

Scenes come from `versavid_r1.data.demo_scenes` (real H.264 mp4 files written with PyAV, 128x96, 8 fps, 6 s).
`make_demo_dataset(out, n, seed)` writes the training rows, the problem types in the cycle `TYPES_CYCLE`
(MCQA, DarkEventInfer, MixVidQA, caption, MCQA, MCQA: half of the rows multiple choice):

- MCQA: the colour question on a colour scene, "What colour is the big shape?", options always
  A. red, B. green, C. blue, D. yellow; the colours are drawn in turn, so the right letters are spread
  evenly and only the pixels tell which is right;
- DarkEventInfer: `mask_span` = [t - 0.5, t + 0.5] around one event of an event scene, whose description
  is the answer (the frames before and after the span show the state before and after it);
- MixVidQA: two event-scene clips; only one (`target`) contains a circle, and the question is about the circle;
- caption: every motion and event of an event scene in order, also listed in `events`.

`make_heldout_dataset(out, n, seed)` writes `heldout.jsonl`: colour questions (or, with
`problem_type="caption"`, captions in `heldout_caption.jsonl`) on scenes drawn from another random stream,
so no held-out video is a training video; the colours are spread exactly evenly when n is a multiple of 4.

Video paths in a JSONL are relative to its folder, so the folder can be moved. `<name>_meta.json` records
every scene (shapes, motions, event times) so tests can check the answers against decoded pixels. Both
writers are idempotent: a folder that already holds the same dataset (same kind, n, seed and generator
version, all files present) is left as it is.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Callable, Union

from versavid_r1.prompts import CAPTION_QUESTION, DEI_QUESTION
from versavid_r1.tasks import CAPTION, DARK_EVENT_INFER, MCQA, MIX_VID_QA
from versavid_r1.video_writer import write_mp4

from .demo_scenes import (  # noqa: F401  (re-exported: the demo's public names)
    BACKGROUND,
    BIG_HALF,
    COLOUR_OPTIONS,
    FPS,
    HALF,
    HEIGHT,
    KINDS,
    OTHER_COLOURS,
    PALETTE,
    ROLES,
    WIDTH,
    Scene,
    make_colour_scene,
    make_scene,
    render_scene,
)

DEMO_VERSION = 2
MASK_HALF_WIDTH = 0.5  # DarkEventInfer span: [t - 0.5, t + 0.5] around the event
TYPES_CYCLE = (MCQA, DARK_EVENT_INFER, MIX_VID_QA, CAPTION, MCQA, MCQA)
COLOUR_QUESTION = "What colour is the big shape?"
DEMO, HELDOUT, HELDOUT_CAPTION = "demo", "heldout", "heldout_caption"
JSONL_NAME = f"{DEMO}.jsonl"
META_NAME = f"{DEMO}_meta.json"
HELDOUT_JSONL = f"{HELDOUT}.jsonl"


# ------------------------------------------------------------------ rows -------------------------
def _answer(text: str) -> str:
    return f"<answer>{text}</answer>"


def colour_question(scene: Scene) -> tuple[str, str]:
    """(problem with its fixed options, answer letter) of a colour scene."""
    colour = scene.shape_with_role("big").color
    options = "\n".join(f"{'ABCD'[k]}. {c}" for k, c in enumerate(COLOUR_OPTIONS))
    return f"{COLOUR_QUESTION}\nOptions:\n{options}", "ABCD"[COLOUR_OPTIONS.index(colour)]


def _mix_question(scene: Scene, role: str) -> tuple[str, str]:
    shape = scene.shape_with_role(role)
    assert shape.kind == "circle"
    if role == "change":
        return "What colour does the circle turn into?", shape.new_color
    if role == "turn":
        return "In which direction does the circle move after it turns around?", shape.direction_at(scene.duration)
    return "What colour is the circle that appears partway through the video?", shape.color


def caption_text(scene: Scene) -> str:
    """The ground-truth caption: the motions from the start, then each timed event in order."""
    starts = [e.text for e in scene.events if e.role == "start"]
    timed = [e.text for e in scene.events if e.role != "start"]
    parts = [" ".join(starts)]
    for k, text in enumerate(timed):
        conn = "Then" if k == 0 else ("Finally," if k == len(timed) - 1 else "Next,")
        parts.append(f"{conn} {text[0].lower()}{text[1:]}")
    return " ".join(parts)


class _Writer:
    """Writes a dataset's videos into `out_dir` and records their scenes."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.videos: dict[str, dict] = {}

    def video(self, rel: str, scene: Scene) -> str:
        write_mp4(self.out_dir / rel, render_scene(scene), fps=scene.fps)
        self.videos[rel] = scene.to_dict()
        return rel


def _colour_row(w: _Writer, rid: str, rng: random.Random, k: int) -> dict:
    """The k-th colour question of a dataset: the colours are taken in turn (even answers)."""
    scene = make_colour_scene(rng, COLOUR_OPTIONS[k % len(COLOUR_OPTIONS)])
    problem, letter = colour_question(scene)
    return {"problem": problem, "solution": _answer(letter), "problem_type": MCQA,
            "video": w.video(f"videos/{rid}.mp4", scene), "demo_role": "colour"}


def _caption_row(w: _Writer, rid: str, rng: random.Random) -> dict:
    scene = make_scene(rng)
    return {"problem": CAPTION_QUESTION, "solution": _answer(caption_text(scene)), "problem_type": CAPTION,
            "video": w.video(f"videos/{rid}.mp4", scene), "events": [e.text for e in scene.events],
            "demo_role": "all"}


def _event_row(w: _Writer, rid: str, rng: random.Random, ptype: str, role: str) -> dict:
    """A DarkEventInfer or MixVidQA row about the `role` event of an event scene."""
    if ptype == DARK_EVENT_INFER:
        scene = make_scene(rng)
        event = scene.event_of(role)
        return {"problem": DEI_QUESTION, "solution": _answer(event.text), "problem_type": DARK_EVENT_INFER,
                "video": w.video(f"videos/{rid}.mp4", scene),
                "mask_span": [event.time - MASK_HALF_WIDTH, event.time + MASK_HALF_WIDTH], "demo_role": role}
    with_circle = make_scene(rng, circle_role=role)
    without = make_scene(rng, no_circle=True)
    target = "a" if rng.random() < 0.5 else "b"
    a, b = (with_circle, without) if target == "a" else (without, with_circle)
    question, answer = _mix_question(with_circle, role)
    return {"problem": question, "solution": _answer(answer), "problem_type": MIX_VID_QA,
            "video": [w.video(f"videos/{rid}-a.mp4", a), w.video(f"videos/{rid}-b.mp4", b)],
            "target": target, "demo_role": role}


def _demo_rows(w: _Writer, n: int, seed: int) -> list[dict]:
    rows: list[dict] = []
    seen = {ptype: 0 for ptype in TYPES_CYCLE}  # rows of each type so far: colours and event roles go in turn
    for i in range(n):
        rng = random.Random(f"versavid-demo:{seed}:{i}")
        ptype = TYPES_CYCLE[i % len(TYPES_CYCLE)]
        k, seen[ptype] = seen[ptype], seen[ptype] + 1
        rid = f"demo-{i:04d}"
        if ptype == MCQA:
            row = _colour_row(w, rid, rng, k)
        elif ptype == CAPTION:
            row = _caption_row(w, rid, rng)
        else:
            row = _event_row(w, rid, rng, ptype, ROLES[k % len(ROLES)])
        rows.append({"id": rid, **row})
    return rows


def _heldout_rows(w: _Writer, n: int, seed: int, problem_type: str) -> list[dict]:
    """Held-out rows: their own random stream (`versavid-heldout`), never the training scenes."""
    rows = []
    for i in range(n):
        rng = random.Random(f"versavid-heldout:{problem_type}:{seed}:{i}")
        rid = f"heldout-{i:04d}"
        row = _colour_row(w, rid, rng, i) if problem_type == MCQA else _caption_row(w, rid, rng)
        rows.append({"id": rid, **row})
    return rows


def _meta_matches(out_dir: Path, kind: str, n: int, seed: int) -> bool:
    meta_path, jsonl = out_dir / f"{kind}_meta.json", out_dir / f"{kind}.jsonl"
    if not (meta_path.is_file() and jsonl.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if (meta.get("version"), meta.get("kind", DEMO), meta.get("n"), meta.get("seed")) != (DEMO_VERSION, kind, n, seed):
        return False
    return all((out_dir / rel).is_file() and (out_dir / rel).stat().st_size > 0 for rel in meta.get("videos", {}))


def _write_dataset(out_dir: Union[str, os.PathLike], kind: str, n: int, seed: int,
                   make_rows: Callable[[_Writer], list[dict]]) -> Path:
    """Write (or find) `<kind>.jsonl` and `<kind>_meta.json` in `out_dir`; returns the JSONL path."""
    if n < 1:
        raise ValueError("n must be >= 1")
    out_dir = Path(out_dir)
    jsonl, meta_path = out_dir / f"{kind}.jsonl", out_dir / f"{kind}_meta.json"
    if _meta_matches(out_dir, kind, n, seed):
        return jsonl
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)  # written last: its presence marks a complete dataset
    writer = _Writer(out_dir)
    rows = make_rows(writer)
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, jsonl)
    meta = {
        "version": DEMO_VERSION,
        "kind": kind,
        "n": n,
        "seed": seed,
        "jsonl": jsonl.name,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "background": list(BACKGROUND),
        "palette": {k: list(v) for k, v in PALETTE.items()},
        "videos": writer.videos,
    }
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, meta_path)
    return jsonl


def make_demo_dataset(out_dir: Union[str, os.PathLike], n: int = 32, seed: int = 0) -> Path:
    """Write (or find) the demo's training rows in `out_dir`; returns the JSONL path (module docstring)."""
    return _write_dataset(out_dir, DEMO, n, seed, lambda w: _demo_rows(w, n, seed))


def make_heldout_dataset(out_dir: Union[str, os.PathLike], n: int = 128, seed: int = 0,
                         problem_type: str = MCQA) -> Path:
    """Write (or find) the held-out rows (colour questions, or captions) in `out_dir`; returns the JSONL path."""
    if problem_type not in (MCQA, CAPTION):
        raise ValueError(f"held-out rows are {MCQA} or {CAPTION}, got {problem_type!r}")
    kind = HELDOUT if problem_type == MCQA else HELDOUT_CAPTION
    return _write_dataset(out_dir, kind, n, seed, lambda w: _heldout_rows(w, n, seed, problem_type))


def load_demo_meta(out_dir: Union[str, os.PathLike], kind: str = DEMO) -> dict:
    """A demo folder's metadata (of `kind`: demo, heldout, heldout_caption) with each video's `Scene` under
    `scenes[relpath]`."""
    meta = json.loads((Path(out_dir) / f"{kind}_meta.json").read_text())
    meta["scenes"] = {rel: Scene.from_dict(d) for rel, d in meta["videos"].items()}
    return meta


def blank_demo_videos(out_dir: Union[str, os.PathLike], kind: str = DEMO) -> int:
    """Overwrite every video of a demo folder with a constant grey clip of the same size, length and rate.

    The learning control: a policy trained on these rows never sees a pixel that tells the answer, so on the
    held-out questions its real frames must leave it at chance. The metadata stays, so
    `make_demo_dataset` finds the folder complete and keeps it. Returns the number of videos blanked."""
    import numpy as np

    meta = load_demo_meta(out_dir, kind)
    for rel, scene in meta["scenes"].items():
        grey = np.full((scene.num_frames, scene.height, scene.width, 3), 128, np.uint8)
        write_mp4(Path(out_dir) / rel, grey, fps=scene.fps)
    return len(meta["scenes"])
