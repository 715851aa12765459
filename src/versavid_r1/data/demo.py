"""A generated demo dataset whose ground truths are true of the pixels.

Each video is a small synthetic scene (128x96, 8 fps, 6 s, real H.264 mp4 written with PyAV): three
coloured shapes on a grey background, each in its own horizontal lane, and three events at known
times (1.5 s, 3.0 s, 4.5 s, in a random order):

- *change*: a moving shape changes colour;
- *turn*: a moving shape reverses its direction;
- *appear*: a static shape appears.

The JSONL cycles through the four problem types:

- MCQA: "What colour does the red square turn into?", "In which direction is the green circle moving
  at the end of the video?" or "Which shape appears partway through the video?", options A-D;
- DarkEventInfer: `mask_span` = [t - 0.5, t + 0.5] around one event, whose description is the answer
  (the frames before and after the span show the state before and after it);
- MixVidQA: two clips; only one (`target`) contains a circle, and the question is about the circle;
- caption: every motion and event in order, also listed in `events`.

Video paths in the JSONL are relative to its folder, so the folder can be moved. `demo_meta.json`
records every scene (shapes, motions, event times) so tests can check the answers against decoded
pixels. `make_demo_dataset` is idempotent: a folder that already holds the same dataset (same n,
seed and generator version, all files present) is left as it is.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from versavid_r1.prompts import CAPTION_QUESTION, DEI_QUESTION
from versavid_r1.tasks import CAPTION, DARK_EVENT_INFER, MCQA, MIX_VID_QA
from versavid_r1.video_writer import write_mp4

DEMO_VERSION = 1
WIDTH, HEIGHT = 128, 96
FPS = 8
DURATION = 6.0
NUM_FRAMES = int(DURATION * FPS)
HALF = 10  # half the size of a shape, in pixels
LANES = (20, 48, 76)  # y centre of each shape's lane
EVENT_TIMES = (1.5, 3.0, 4.5)
MASK_HALF_WIDTH = 0.5  # DarkEventInfer span: [t - 0.5, t + 0.5] around the event
BACKGROUND = (64, 64, 64)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 70),
    "blue": (40, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 70, 210),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
    "cyan": (40, 210, 220),
}
KINDS = ("square", "circle", "triangle")
ROLES = ("change", "turn", "appear")
TYPES_CYCLE = (MCQA, DARK_EVENT_INFER, MIX_VID_QA, CAPTION)
JSONL_NAME = "demo.jsonl"
META_NAME = "demo_meta.json"



@dataclass
class Shape:
    kind: str
    color: str
    lane: int  # y centre
    x0: float  # x centre at the moment it starts (0 s, or its appearance)
    vx: float  # px/s, sign = direction
    appear_at: Optional[float] = None
    turn_at: Optional[float] = None
    change_at: Optional[float] = None
    new_color: Optional[str] = None
    role: str = ""

    def visible(self, t: float) -> bool:
        return self.appear_at is None or t >= self.appear_at - 1e-9

    def x(self, t: float) -> float:
        t0 = self.appear_at or 0.0
        if self.turn_at is None or t <= self.turn_at:
            return self.x0 + self.vx * (t - t0)
        return self.x0 + self.vx * (self.turn_at - t0) - self.vx * (t - self.turn_at)

    def color_at(self, t: float) -> str:
        if self.change_at is not None and t >= self.change_at - 1e-9:
            return self.new_color
        return self.color

    def direction_at(self, t: float) -> Optional[str]:
        if self.vx == 0:
            return None
        v = self.vx if (self.turn_at is None or t < self.turn_at) else -self.vx
        return "right" if v > 0 else "left"

    def name(self, t: float = 0.0) -> str:
        return f"{self.color_at(t)} {self.kind}"


@dataclass
class Event:
    time: float
    role: str  # "start" (motion from the beginning), "change", "turn", "appear"
    shape: int
    text: str


@dataclass
class Scene:
    shapes: list[Shape]
    events: list[Event] = field(default_factory=list)
    fps: int = FPS
    duration: float = DURATION
    width: int = WIDTH
    height: int = HEIGHT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(
            shapes=[Shape(**s) for s in d["shapes"]],
            events=[Event(**e) for e in d["events"]],
            fps=d["fps"],
            duration=d["duration"],
            width=d["width"],
            height=d["height"],
        )

    def shape_with_role(self, role: str) -> Shape:
        return next(s for s in self.shapes if s.role == role)

    def event_of(self, role: str) -> Event:
        return next(e for e in self.events if e.role == role)

    @property
    def num_frames(self) -> int:
        return int(round(self.duration * self.fps))


# ------------------------------------------------------------------ scenes -----------------------
def make_scene(rng: random.Random, circle_role: Optional[str] = None, no_circle: bool = False) -> Scene:
    """A random scene with one shape per role. `circle_role`: that role's shape is the only circle;
    `no_circle`: no circle at all."""
    if circle_role is not None:
        others = ["square", "triangle"]
        rng.shuffle(others)
        kinds = {circle_role: "circle"}
        for role in ROLES:
            if role != circle_role:
                kinds[role] = others.pop()
    elif no_circle:
        kinds = {role: rng.choice(("square", "triangle")) for role in ROLES}
    else:
        kinds = dict(zip(ROLES, rng.sample(KINDS, 3)))
    colors = rng.sample(list(PALETTE), 4)  # change-old, change-new, turn, appear: all distinct
    times = dict(zip(ROLES, rng.sample(EVENT_TIMES, 3)))
    lanes = dict(zip(ROLES, rng.sample(LANES, 3)))

    right = rng.random() < 0.5
    speed = 10.0
    x0 = 24.0 if right else WIDTH - 24.0
    change = Shape(kinds["change"], colors[0], lanes["change"], x0, speed if right else -speed,
                   change_at=times["change"], new_color=colors[1], role="change")

    right = rng.random() < 0.5
    speed, tt = 12.0, times["turn"]
    x0 = max(22.0, 14.0 + speed * (DURATION - 2 * tt) + 4.0)  # stays inside [14, 114] after the turn
    if not right:
        x0 = WIDTH - x0
    turn = Shape(kinds["turn"], colors[2], lanes["turn"], x0, speed if right else -speed,
                 turn_at=tt, role="turn")

    appear = Shape(kinds["appear"], colors[3], lanes["appear"], float(rng.randint(32, WIDTH - 32)), 0.0,
                   appear_at=times["appear"], role="appear")
    shapes = [change, turn, appear]

    events = [
        Event(0.0, "start", 0, f"A {change.color} {change.kind} moves to the {change.direction_at(0)}."),
        Event(0.0, "start", 1, f"A {turn.color} {turn.kind} moves to the {turn.direction_at(0)}."),
        Event(change.change_at, "change", 0, f"The {change.color} {change.kind} turns {change.new_color}."),
        Event(tt, "turn", 1,
              f"The {turn.color} {turn.kind} turns around and moves to the {turn.direction_at(DURATION)}."),
        Event(appear.appear_at, "appear", 2, f"A {appear.color} {appear.kind} appears."),
    ]
    events.sort(key=lambda e: (e.time, e.shape))
    return Scene(shapes=shapes, events=events)


def _shape_mask(kind: str, cx: float, cy: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if kind == "square":
        return (np.abs(dx) <= HALF) & (np.abs(dy) <= HALF)
    if kind == "circle":
        return dx * dx + dy * dy <= HALF * HALF
    if kind == "triangle":  # apex up
        return (dy >= -HALF) & (dy <= HALF) & (np.abs(dx) <= (dy + HALF) / 2.0)
    raise ValueError(f"unknown shape kind {kind!r}")


def render_scene(scene: Scene) -> np.ndarray:
    """RGB uint8 frames `[T, H, W, 3]` of a scene; frame i shows time i / fps."""
    yy, xx = np.mgrid[0 : scene.height, 0 : scene.width].astype(np.float32) + 0.5
    frames = np.empty((scene.num_frames, scene.height, scene.width, 3), dtype=np.uint8)
    for i in range(scene.num_frames):
        t = i / scene.fps
        frame = frames[i]
        frame[...] = BACKGROUND
        for s in scene.shapes:
            if s.visible(t):
                frame[_shape_mask(s.kind, s.x(t), s.lane, xx, yy)] = PALETTE[s.color_at(t)]
    return frames


# ------------------------------------------------------------------ rows -------------------------
def _options(correct: str, distractors: list[str], rng: random.Random) -> tuple[str, str]:
    """Options text `A. …\\nB. …` with the correct option at a random place, and its letter."""
    opts = [correct, *distractors[:3]]
    rng.shuffle(opts)
    letter = "ABCD"[opts.index(correct)]
    return "\n".join(f"{'ABCD'[k]}. {o}" for k, o in enumerate(opts)), letter


def _answer(text: str) -> str:
    return f"<answer>{text}</answer>"


def _mcqa(scene: Scene, role: str, rng: random.Random) -> tuple[str, str]:
    shape = scene.shape_with_role(role)
    if role == "change":
        question = f"What colour does the {shape.color} {shape.kind} turn into?"
        pool = [c for c in PALETTE if c not in (shape.color, shape.new_color)]
        options, letter = _options(shape.new_color, rng.sample(pool, 3), rng)
    elif role == "turn":
        question = f"In which direction is the {shape.color} {shape.kind} moving at the end of the video?"
        correct = shape.direction_at(scene.duration)
        options, letter = _options(correct, [d for d in ("left", "right", "up", "down") if d != correct], rng)
    else:
        question = "Which shape appears partway through the video?"
        present = {(s.kind, c) for s in scene.shapes for c in (s.color, s.new_color) if c}
        pool = [f"a {c} {k}" for k in KINDS for c in PALETTE if (k, c) not in present]
        options, letter = _options(f"a {shape.color} {shape.kind}", rng.sample(pool, 3), rng)
    return f"{question}\nOptions:\n{options}", letter


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


def _write_video(out_dir: Path, rel: str, scene: Scene, videos: dict) -> str:
    write_mp4(out_dir / rel, render_scene(scene), fps=scene.fps)
    videos[rel] = scene.to_dict()
    return rel


def _demo_rows(out_dir: Path, n: int, seed: int) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    videos: dict[str, dict] = {}
    for i in range(n):
        rng = random.Random(f"versavid-demo:{seed}:{i}")
        ptype = TYPES_CYCLE[i % 4]
        role = ROLES[(i // 4) % 3]
        rid = f"demo-{i:04d}"
        row: dict = {"id": rid}
        if ptype == MCQA:
            scene = make_scene(rng)
            problem, letter = _mcqa(scene, role, rng)
            row.update(problem=problem, solution=_answer(letter), problem_type=MCQA,
                       video=_write_video(out_dir, f"videos/{rid}.mp4", scene, videos))
        elif ptype == DARK_EVENT_INFER:
            scene = make_scene(rng)
            event = scene.event_of(role)
            row.update(problem=DEI_QUESTION, solution=_answer(event.text), problem_type=DARK_EVENT_INFER,
                       video=_write_video(out_dir, f"videos/{rid}.mp4", scene, videos),
                       mask_span=[event.time - MASK_HALF_WIDTH, event.time + MASK_HALF_WIDTH])
        elif ptype == MIX_VID_QA:
            with_circle = make_scene(rng, circle_role=role)
            without = make_scene(rng, no_circle=True)
            target = "a" if rng.random() < 0.5 else "b"
            a, b = (with_circle, without) if target == "a" else (without, with_circle)
            question, answer = _mix_question(with_circle, role)
            row.update(problem=question, solution=_answer(answer), problem_type=MIX_VID_QA,
                       video=[_write_video(out_dir, f"videos/{rid}-a.mp4", a, videos),
                              _write_video(out_dir, f"videos/{rid}-b.mp4", b, videos)],
                       target=target)
        else:
            scene = make_scene(rng)
            row.update(problem=CAPTION_QUESTION, solution=_answer(caption_text(scene)), problem_type=CAPTION,
                       video=_write_video(out_dir, f"videos/{rid}.mp4", scene, videos),
                       events=[e.text for e in scene.events])
        row["demo_role"] = role if ptype != CAPTION else "all"
        rows.append(row)
    return rows, videos


def _meta_matches(out_dir: Path, n: int, seed: int) -> bool:
    meta_path = out_dir / META_NAME
    if not (meta_path.is_file() and (out_dir / JSONL_NAME).is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if (meta.get("version"), meta.get("n"), meta.get("seed")) != (DEMO_VERSION, n, seed):
        return False
    return all((out_dir / rel).is_file() and (out_dir / rel).stat().st_size > 0 for rel in meta.get("videos", {}))


def make_demo_dataset(out_dir: Union[str, os.PathLike], n: int = 32, seed: int = 0) -> Path:
    """Write (or find) the demo dataset in `out_dir`; returns the JSONL path (see module docstring)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    out_dir = Path(out_dir)
    jsonl = out_dir / JSONL_NAME
    if _meta_matches(out_dir, n, seed):
        return jsonl
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META_NAME).unlink(missing_ok=True)  # written last: its presence marks a complete dataset
    rows, videos = _demo_rows(out_dir, n, seed)
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, jsonl)
    meta = {
        "version": DEMO_VERSION,
        "n": n,
        "seed": seed,
        "jsonl": JSONL_NAME,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "background": list(BACKGROUND),
        "palette": {k: list(v) for k, v in PALETTE.items()},
        "videos": videos,
    }
    tmp = out_dir / (META_NAME + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out_dir / META_NAME)
    return jsonl


def load_demo_meta(out_dir: Union[str, os.PathLike]) -> dict:
    """The demo folder's metadata with each video's `Scene` under `scenes[relpath]`."""
    meta = json.loads((Path(out_dir) / META_NAME).read_text())
    meta["scenes"] = {rel: Scene.from_dict(d) for rel, d in meta["videos"].items()}
    return meta
