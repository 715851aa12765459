"""The synthetic scenes of the demo dataset (`versavid_r1.data.demo`): shapes on a grey background.

Two kinds of scene, 128x96, 8 fps, 6 s:

- *event scenes* (`make_scene`): three small coloured shapes, each in its own horizontal lane, and three
  events at known times (1.5 s, 3.0 s, 4.5 s, in a random order): a moving shape changes colour (*change*),
  a moving shape reverses its direction (*turn*), a static shape appears (*appear*). The DarkEventInfer,
  MixVidQA and caption rows are made of them.
- *colour scenes* (`make_colour_scene`): one big shape moving through the middle of the frame, in one of
  `COLOUR_OPTIONS`, and two small shapes at the top and the bottom in colours that are not options. The
  multiple-choice question "What colour is the big shape?" is made of them: its options are always
  `COLOUR_OPTIONS` in the same order, so the right letter follows the colour, which is drawn evenly; a policy
  that does not look at the pixels can only guess.

`render_scene` draws the frames (RGB uint8); `Scene.to_dict` / `from_dict` round-trip through JSON.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

WIDTH, HEIGHT = 128, 96
FPS = 8
DURATION = 6.0
NUM_FRAMES = int(DURATION * FPS)
HALF = 10  # half the size of a small shape, in pixels
BIG_HALF = 26  # half the size of a colour scene's big shape
LANES = (20, 48, 76)  # y centre of each shape's lane (event scenes)
COLOUR_LANES = (11, 48, 85)  # top small shape, big shape, bottom small shape (colour scenes)
EVENT_TIMES = (1.5, 3.0, 4.5)
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
COLOUR_OPTIONS = ("red", "green", "blue", "yellow")  # the colour question's options, in this order
OTHER_COLOURS = tuple(c for c in PALETTE if c not in COLOUR_OPTIONS)  # the small shapes of colour scenes


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
    half: float = HALF  # half its size, in pixels

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


def make_scene(rng: random.Random, circle_role: Optional[str] = None, no_circle: bool = False) -> Scene:
    """A random event scene with one shape per role. `circle_role`: that role's shape is the only circle;
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


def make_colour_scene(rng: random.Random, colour: str) -> Scene:
    """A colour scene (module docstring) whose big shape has `colour` (one of COLOUR_OPTIONS)."""
    if colour not in COLOUR_OPTIONS:
        raise ValueError(f"colour must be one of {COLOUR_OPTIONS}, got {colour!r}")
    top, bottom = rng.sample(OTHER_COLOURS, 2)
    kinds = [rng.choice(KINDS) for _ in range(3)]
    speed = rng.choice((-8.0, 8.0))
    margin = BIG_HALF + 2 + abs(speed) * DURATION  # the big shape stays whole inside the frame
    x0 = float(rng.uniform(margin, WIDTH - BIG_HALF - 2)) if speed < 0 else \
        float(rng.uniform(BIG_HALF + 2, WIDTH - margin))
    big = Shape(kinds[0], colour, COLOUR_LANES[1], x0, speed, role="big", half=BIG_HALF)
    drift = rng.choice((-6.0, 6.0))
    small_x = float(rng.randint(48, WIDTH - 48))
    shapes = [big, Shape(kinds[1], top, COLOUR_LANES[0], small_x, drift, role="top"),
              Shape(kinds[2], bottom, COLOUR_LANES[2], float(rng.randint(20, WIDTH - 20)), 0.0, role="bottom")]
    events = [Event(0.0, "start", 0, f"A big {colour} {big.kind} moves to the {big.direction_at(0)}."),
              Event(0.0, "start", 1, f"A small {top} {kinds[1]} moves to the {shapes[1].direction_at(0)}.")]
    return Scene(shapes=shapes, events=events)


def _shape_mask(kind: str, cx: float, cy: float, half: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if kind == "square":
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if kind == "circle":
        return dx * dx + dy * dy <= half * half
    if kind == "triangle":  # apex up
        return (dy >= -half) & (dy <= half) & (np.abs(dx) <= (dy + half) / 2.0)
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
                frame[_shape_mask(s.kind, s.x(t), s.lane, s.half, xx, yy)] = PALETTE[s.color_at(t)]
    return frames
