"""MVBench's own layout: its 20 tasks, where each task's videos are, and its frame-folder task read as a video.

The benchmark (OpenGVLab/MVBench on the Hugging Face hub) ships `json/<task>.json` (a list of `{video,
question, candidates, answer}`, some tasks with `start`/`end` seconds) and `video/<source>.zip` archives that
unpack into one folder per source dataset. `MVBENCH_TASKS` records, for every task, its json file, its video
folder under `video/`, the kind of media (a video file, or a folder of frames) and whether the benchmark
bounds the clip with `start`/`end` — as the benchmark's own evaluation code lists them (its `data_list`). Later
uploads renamed two folders (`ssv2_video_mp4`, `nturgbd_convert`, with .mp4 files in place of .webm/.avi):
those are tried too, by the same file stem. NTU RGB+D videos (fine_grained_pose) are not distributed by
MVBench itself (licence): download them from the NTU site into `video/nturgbd/`.

**Frame folders.** Episodic Reasoning (TVQA) gives each clip as a folder of JPEGs (`00001.jpg`, …) sampled at
3 fps. The converter turns each folder into a video file once, on the fly, by *remuxing* the JPEGs into a
Motion-JPEG .mkv at that rate (`versavid_r1.video_writer.remux_jpeg_folder`): the JPEG bytes are copied,
nothing is re-encoded, so decoding the video gives exactly the pixels of decoding each JPEG. The row then
points at that file and the loader, the validation and vLLM treat it as any other video. Frame k (1-based) is
at (k - 1) / 3 s, where a video decoder puts it; the benchmark's own reader maps second t to file round(3 t),
one frame (1/3 s) later, which shifts `start`/`end` by a third of a second at most.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from versavid_r1.rewards.mcqa import OPTION_LETTERS
from versavid_r1.video_writer import remux_jpeg_folder

from .converters import VIDEO_SUFFIXES, ConversionReport, VideoIndex, read_json_or_jsonl, task_category

FRAME_FOLDER_FPS = 3.0  # tvqa/frames_fps3_hq: the benchmark reads these folders at 3 fps


@dataclass(frozen=True)
class MVBenchTask:
    name: str  # the json file's stem
    folder: str  # under video/
    media: str = "video"  # "video" (a file per row) or "frames" (a folder of JPEGs per row)
    bounded: bool = False  # the benchmark samples only start..end seconds
    other_folders: tuple[str, ...] = ()


MVBENCH_TASKS: tuple[MVBenchTask, ...] = (
    MVBenchTask("action_sequence", "star/Charades_v1_480", bounded=True),
    MVBenchTask("action_prediction", "star/Charades_v1_480", bounded=True),
    MVBenchTask("action_antonym", "ssv2_video", other_folders=("ssv2_video_mp4",)),
    MVBenchTask("fine_grained_action", "Moments_in_Time_Raw/videos"),
    MVBenchTask("unexpected_action", "FunQA_test/test"),
    MVBenchTask("object_existence", "clevrer/video_validation"),
    MVBenchTask("object_interaction", "star/Charades_v1_480", bounded=True),
    MVBenchTask("object_shuffle", "perception/videos"),
    MVBenchTask("moving_direction", "clevrer/video_validation"),
    MVBenchTask("action_localization", "sta/sta_video", bounded=True),
    MVBenchTask("scene_transition", "scene_qa/video"),
    MVBenchTask("action_count", "perception/videos"),
    MVBenchTask("moving_count", "clevrer/video_validation"),
    MVBenchTask("moving_attribute", "clevrer/video_validation"),
    MVBenchTask("state_change", "perception/videos"),
    MVBenchTask("fine_grained_pose", "nturgbd", other_folders=("nturgbd_convert",)),
    MVBenchTask("character_order", "perception/videos"),
    MVBenchTask("egocentric_navigation", "vlnqa"),
    MVBenchTask("episodic_reasoning", "tvqa/frames_fps3_hq", media="frames", bounded=True),
    MVBenchTask("counterfactual_inference", "clevrer/video_validation"),
)
TASKS_BY_NAME = {t.name: t for t in MVBENCH_TASKS}


@dataclass
class FrameRenderer:
    """Frame folders -> Motion-JPEG videos under `out_dir/<task>/<folder>.mkv`, each made once (kept across runs)."""

    out_dir: Path
    fps: float = FRAME_FOLDER_FPS
    rendered: int = 0
    reused: int = 0

    def video_of(self, task: str, folder: Path) -> Path:
        target = self.out_dir / task / f"{folder.name}.mkv"
        if target.is_file():
            self.reused += 1
            return target
        remux_jpeg_folder(folder, target, self.fps)
        self.rendered += 1
        return target


def _in_folder(folder: Path, video: str, media: str) -> Optional[Path]:
    """The row's file (or frame folder) in one candidate folder: the name as given, else (videos) the same stem
    with another video suffix (re-uploads converted .webm/.avi to .mp4)."""
    path = folder / video
    if media == "frames":
        return path if path.is_dir() else None
    if path.is_file():
        return path
    for suffix in VIDEO_SUFFIXES:
        other = path.with_suffix(suffix)
        if other.is_file():
            return other
    return None


def locate(task: MVBenchTask, video: str, video_dir: Path, task_dir: Optional[str]) -> Optional[Path]:
    """Where a known task's row media is: `task_dir` when given, else its folder, else its renamed folders."""
    folders = [task_dir] if task_dir else [task.folder, *task.other_folders]
    for folder in folders:
        found = _in_folder(video_dir / folder, video, task.media)
        if found is not None:
            return found
    return None


def _search(video: str, video_dir: Path, task_dir: Optional[str], index: Callable[[], VideoIndex]):
    """(path, problem) of a row of a task this module does not know: `task_dir` if given, else the file under
    `video_dir` whose path ends with the row's `video` (an ambiguous match is an error)."""
    if task_dir is not None:
        path = video_dir / task_dir / video
        return path, (None if path.is_file() else f"{path} does not exist")
    direct = video_dir / video
    if direct.is_file():
        return direct, None
    found = index().find(video)
    if len(found) == 1:
        return found[0], None
    if len(found) > 1:
        raise ValueError(
            f"video {video!r} matches {len(found)} files under {video_dir} ({', '.join(map(str, found[:3]))}...); "
            "name the task's sub-folder with --task_dir TASK=SUBDIR"
        )
    return direct, f"{video} not found under {video_dir}"


def convert_mvbench(
    json_files: Iterable[str | os.PathLike],
    video_dir: str | os.PathLike,
    task_dirs: Optional[dict[str, str]] = None,
    drop_missing: bool = False,
    frames_dir: Optional[str | os.PathLike] = None,
    frame_fps: float = FRAME_FOLDER_FPS,
) -> ConversionReport:
    """MVBench task files -> mcqa evaluation rows (options = candidates, answer = the right one's letter,
    category = the task, id = "<task>/<index>", clip bounds for the bounded tasks). Known tasks find their
    videos in their own folders; frame-folder rows become videos under `frames_dir` (see the module docstring).
    Other task files: videos are searched under `video_dir` by file name, and `start`/`end` are used when
    present."""
    video_dir = Path(video_dir).resolve()
    task_dirs = dict(task_dirs or {})
    renderer = FrameRenderer(Path(frames_dir).resolve(), frame_fps) if frames_dir is not None else None
    report = ConversionReport()
    built: list[VideoIndex] = []

    def index() -> VideoIndex:  # walked once, and only when a video is not where it is expected
        if not built:
            built.append(VideoIndex(video_dir))
        return built[0]

    for json_file in sorted(Path(p) for p in json_files):
        name = json_file.stem
        task = TASKS_BY_NAME.get(name)
        for k, item in enumerate(read_json_or_jsonl(json_file)):
            where = f"{json_file.name}[{k}]"
            try:
                row = mvbench_row(item, name, k, bounded=task.bounded if task else None)
            except ValueError as exc:
                report.skipped.append(f"{where}: {exc}")
                continue
            # An ambiguous file name raises (the run stops and asks for --task_dir); a row's own problem does not.
            path, problem = _row_media(item, task, name, video_dir, task_dirs.get(name), index, renderer)
            row["video"] = str(path)
            report.add(row, where, problem, drop_missing)
    if renderer is not None:
        report.notes.append(f"frame folders: {renderer.rendered} turned into videos under {renderer.out_dir}, "
                            f"{renderer.reused} reused from an earlier run")
    return report


def _row_media(item: dict, task: Optional[MVBenchTask], name: str, video_dir: Path, task_dir: Optional[str],
               index: Callable[[], VideoIndex], renderer: Optional[FrameRenderer]):
    """(video path, why it is missing or None) of one row; frame folders are turned into videos here."""
    video = str(item["video"])
    if task is None:
        return _search(video, video_dir, task_dir, index)
    found = locate(task, video, video_dir, task_dir)
    if found is None and task.media == "video" and task_dir is None:
        found = _search(video, video_dir, None, index)[0]  # unpacked somewhere else under video_dir
        found = found if found.is_file() else None
    if found is None:
        where = task_dir or " or ".join((task.folder, *task.other_folders))
        kind = "frame folder" if task.media == "frames" else "video"
        return video_dir / (task_dir or task.folder) / video, f"{kind} {video} not found in {video_dir}/{where}"
    if task.media != "frames":
        return found, None
    if renderer is None:
        return found, f"{found} is a folder of frames: pass frames_dir to turn it into a video"
    try:
        return renderer.video_of(name, found), None
    except (OSError, ValueError) as exc:  # no JPEGs, frames of different sizes, an unreadable file
        return found, f"frame folder {found} could not be turned into a video: {exc}"


def mvbench_row(item: object, task: str, k: int, bounded: Optional[bool] = None) -> dict:
    """One MVBench item as an mcqa evaluation row (without its video path). `bounded`: whether the task's
    `start`/`end` bound the clip (None: whenever they are present)."""
    if not isinstance(item, dict):
        raise ValueError(f"expected an object, got {type(item).__name__}")
    for key in ("video", "question", "candidates", "answer"):
        if item.get(key) in (None, "", []):
            raise ValueError(f"missing {key!r}")
    candidates = [str(c).strip() for c in item["candidates"]]
    if not 2 <= len(candidates) <= len(OPTION_LETTERS):
        raise ValueError(f"{len(candidates)} candidates (2 to {len(OPTION_LETTERS)} supported)")
    answer = str(item["answer"]).strip()
    if candidates.count(answer) != 1:
        raise ValueError(f"answer {answer!r} is not exactly one of the candidates {candidates}")
    row = {
        "id": f"{task}/{k}",
        "video": item["video"],
        "question": str(item["question"]).strip(),
        "options": candidates,
        "answer": OPTION_LETTERS[candidates.index(answer)],
        "category": task_category(task),
    }
    if bounded is False:
        return row
    # Clip bounds (seconds): the loader samples only that clip (versavid_r1.data.schema).
    for key, out in (("start", "video_start"), ("end", "video_end")):
        value = item.get(key)
        if value is None:
            continue
        try:
            if isinstance(value, bool):
                raise TypeError(key)
            row[out] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key!r} must be a number of seconds, got {value!r}") from None
    return row
