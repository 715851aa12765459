"""Small copies of the paper's twelve benchmarks, each written in its own released layout (the files, field
names and folders its converter's docstring documents), with tiny generated videos. Used by the converter,
scoring and suite tests. `write_all(base)` returns {benchmark: the converter flags for that copy}.

Each copy has a few rows, one missing video where the layout allows it (listed, not fatal), and the hard
cases of its scoring: 4 and 5 options, a prediction unit whose answer and reason come apart (Causal-VidQA),
an open-ended question (MMVU).
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

from versavid_r1.video_writer import solid_color_frames, write_mp4

SIDE = 56


class Videos:
    """Copies of one tiny mp4 (2 s, 4 fps): encoding once keeps the fixtures cheap."""

    def __init__(self, base: Path):
        self.source = write_mp4(base / "_source.mp4", solid_color_frames((40, 120, 200), 8, SIDE, SIDE), fps=4)

    def put(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source, path)
        return path


def _json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def videomme(root: Path, v: Videos) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        dict(video_id="001", duration="short", domain="Knowledge", sub_category="Astronomy", url="u", videoID="aaa",
             question_id="001-1", task_type="Counting Problem", question="How many planets are shown?",
             options=["A. One.", "B. Two.", "C. Three.", "D. Four."], answer="C"),
        dict(video_id="301", duration="medium", domain="Sports Competition", sub_category="Football", url="u",
             videoID="bbb", question_id="301-1", task_type="Action Recognition", question="What does the player do?",
             options=["A. Runs.", "B. Kicks.", "C. Falls.", "D. Waves."], answer="B"),
        dict(video_id="601", duration="long", domain="Knowledge", sub_category="Law", url="u", videoID="gone",
             question_id="601-1", task_type="Information Synopsis", question="What is the video about?",
             options=["A. Law.", "B. Art.", "C. Food.", "D. Pets."], answer="A"),
    ]
    (root / "videomme").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "videomme" / "test-00000-of-00001.parquet")
    v.put(root / "data" / "aaa.mp4")
    v.put(root / "data" / "bbb.mkv")  # another container: found by its stem
    return ["--root", str(root)]


def longvideobench(root: Path, v: Videos) -> list[str]:
    base = dict(topic_category="NP-News-Programs", level="L1-Perception", duration=2.0, subtitle_path="s.json",
                starting_timestamp_for_subtitles=0, view_count=1, position=[0, 1])
    _json(root / "lvb_val.json", [
        dict(base, id="q4", video_id="v1", video_path="v1.mp4", question="Which colour is the screen?",
             candidates=["red", "blue", "green", "black"], correct_choice=1, duration_group=15,
             question_category="S2A"),
        dict(base, id="q5", video_id="v2", video_path="v2.mp4", question="What happens after the subtitle?",
             candidates=["a", "b", "c", "d", "e"], correct_choice=4, duration_group=3600, question_category="E2O"),
    ])
    v.put(root / "videos" / "v1.mp4")
    v.put(root / "videos" / "v2.mp4")
    return ["--root", str(root)]


def mvbench(root: Path, v: Videos) -> list[str]:
    _json(root / "json" / "action_sequence.json", [
        {"video": "AB12.mp4", "question": "What did the person do first?", "candidates": ["Sat.", "Ran.", "Ate."],
         "answer": "Ran.", "start": 0.0, "end": 1.5}])
    _json(root / "json" / "object_existence.json", [
        {"video": "video_1.mp4", "question": "Is there a cube?", "candidates": ["yes", "no"], "answer": "no"}])
    v.put(root / "video" / "star" / "Charades_v1_480" / "AB12.mp4")
    v.put(root / "video" / "clevrer" / "video_validation" / "video_1.mp4")
    return ["--root", str(root)]


def mmvu(root: Path, v: Videos) -> list[str]:
    url = "https://huggingface.co/datasets/yale-nlp/MMVU/resolve/main/videos/{}/0.mp4"
    meta = lambda s: {"subject": s, "textbook": "t", "rationale": "r", "knowledge": []}  # noqa: E731
    _json(root / "validation.json", [
        {"id": "validation_0", "video": url.format("Art"), "youtube_url": "y", "question_type": "open-ended",
         "metadata": meta("Art"), "question": "Which shooting technique is shown?",
         "choices": {k: "" for k in "ABCDE"}, "answer": "Dolly Zoom"},
        {"id": "validation_1", "video": url.format("Computer_Science"), "youtube_url": "y",
         "question_type": "multiple-choice", "metadata": meta("Computer Science"), "question": "Which sort is shown?",
         "choices": {"A": "bubble", "B": "merge", "C": "quick", "D": "heap", "E": "radix"}, "answer": "B"},
    ])
    v.put(root / "videos" / "Art" / "0.mp4")
    v.put(root / "videos" / "Computer_Science" / "0.mp4")
    return ["--root", str(root)]


CSV_HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4"


def nextqa(root: Path, v: Videos) -> list[str]:
    lines = [CSV_HEADER, "4010069381,369,640,480,how do the two men play the instrument,2,6,CH,roll the handle,"
             "tap their feet,strum the string,hit with sticks,pat with hand",
             "2574374895,719,320,240,what did the baby do after throwing the cup,2,8,TP,clap,sit down,lay on floor,"
             "pick it up,crawl"]
    root.mkdir(parents=True)
    (root / "test.csv").write_text("\n".join(lines) + "\n")
    (root / "val.csv").write_text(CSV_HEADER + "\n")
    _json(root / "map_vid_vidorID.json", {"4010069381": "0001/4010069381", "2574374895": "1000/2574374895"})
    v.put(root / "NExTVideo" / "0001" / "4010069381.mp4")
    v.put(root / "NExTVideo" / "1000" / "2574374895.mp4")
    return ["--root", str(root)]


def intentqa(root: Path, v: Videos) -> list[str]:
    header = CSV_HEADER.replace("video,", "video_id,", 1) + ",action,lemma,lemma_id"
    lines = [header, "6102982194,1266,640,360,why does the man go near the keytar player,2,2,CW,talk,make music,"
             "energise him,hit him,annoy him,playing,play,141",
             "2927552798,780,500,375,what does the man do before leaving,0,3,TP,put on jacket,sit,eat,sleep,run,"
             "put,put,160"]
    root.mkdir(parents=True)
    (root / "test.csv").write_text("\n".join(lines) + "\n")
    v.put(root / "Videos" / "6102982194.mp4")
    v.put(root / "Videos" / "2927552798.mp4")
    return ["--root", str(root)]


CAUSAL_TEXT = {
    "descriptive": {"question": "What is the man holding?", "answer": ["a cup", "a ball", "a pen", "a hat", "a dog"]},
    "explanatory": {"question": "Why does the man smile?", "answer": ["he won", "he lost", "it rains", "he is cold",
                                                                      "he sleeps"]},
    "predictive": {"question": "What will the man do next?", "answer": ["drink", "run", "sing", "swim", "fly"],
                   "reason": ["he holds a cup", "he is tired", "he is sad", "it is dark", "it is loud"]},
    "counterfactual": {"question": "What if the cup were empty?", "answer": ["he refills it", "he cries", "he jumps",
                                                                              "he leaves", "he sleeps"],
                       "reason": ["he is thirsty", "he is happy", "he is late", "he is tall", "he is old"]},
}
CAUSAL_ANSWER = {"descriptive": {"answer": 0}, "explanatory": {"answer": 0},
                 "predictive": {"answer": 0, "reason": 0}, "counterfactual": {"answer": 0, "reason": 0}}


def causal_vidqa(root: Path, v: Videos) -> list[str]:
    (root / "split").mkdir(parents=True)
    with open(root / "split" / "test.pkl", "wb") as f:
        pickle.dump(["vid_a"], f)
    _json(root / "QA" / "vid_a" / "text.json", CAUSAL_TEXT)
    _json(root / "QA" / "vid_a" / "answer.json", CAUSAL_ANSWER)
    v.put(root / "videos" / "vid_a.mp4")
    return ["--root", str(root)]


def video_holmes(root: Path, v: Videos) -> list[str]:
    opts = {k: f"option {k}" for k in "ABCDEF"}
    _json(root / "test_Video-Holmes.json", [
        {"video ID": "RSmjqss0XKQ", "Question ID": "1", "Question Type": "TCI", "Question": "Why does she run?",
         "Options": opts, "Answer": "C", "Explanation": "e"},
        {"video ID": "dGS48Kcax5k", "Question ID": "2", "Question Type": "SR", "Question": "Who is her friend?",
         "Options": opts, "Answer": "F", "Explanation": "e"},
    ])
    v.put(root / "videos_cropped" / "RSmjqss0XKQ.mp4")
    v.put(root / "videos_cropped" / "dGS48Kcax5k.mp4")
    return ["--root", str(root)]


def dream1k(root: Path, v: Videos) -> list[str]:
    _json(root / "json" / "metadata.json", [
        {"idx": 1, "video_file": "video/1.mp4", "description": "A man opens a door. He walks in.",
         "events": ["A man opens a door.", "The man walks in."], "source": "live_action"},
        {"idx": 2, "video_file": "video/2.mp4", "description": "A cat jumps. The cat sleeps.",
         "events": ["A cat jumps.", "The cat sleeps."], "source": "animation"},
    ])
    v.put(root / "video" / "DREAM-1K_videos" / "1.mp4")
    v.put(root / "video" / "DREAM-1K_videos" / "2.mp4")
    return ["--annotations", str(root / "json" / "metadata.json"), "--video_dir",
            str(root / "video" / "DREAM-1K_videos")]


def vidcapbench(root: Path, v: Videos) -> list[str]:
    root.mkdir(parents=True)
    lines = [{"video_dir": "videos_qa_80.mp4", "QA_pairs": [
        {"question": "What colour is the sky?", "answer": "blue", "sub_category": "color"},
        {"question": "Does the camera move?", "answer": "no", "sub_category": "cinematography"},
        {"question": "Does the ball fall down?", "answer": "yes", "sub_category": "common sense"}]}]
    (root / "VidCapBench-AE_QA.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    v.put(root / "videos" / "videos_qa_80.mp4")
    return ["--root", str(root)]


def proxy_test(root: Path, v: Videos, ptype: str, rows: list[tuple[str, str]]) -> list[str]:
    root.mkdir(parents=True)
    v.put(root / "videos" / "p1.mp4")
    lines = [{"id": str(k), "problem": q, "solution": f"<answer>{a}</answer>", "problem_type": ptype,
              "video": "videos/p1.mp4"} for k, (q, a) in enumerate(rows)]
    lines.append({"problem": "x", "solution": "<answer>A</answer>", "problem_type": "MCQA", "video": "videos/p1.mp4"})
    (root / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return ["--annotations", str(root / "test.jsonl")]


WRITERS = {
    "videomme": videomme, "longvideobench": longvideobench, "mvbench": mvbench, "mmvu": mmvu, "nextqa": nextqa,
    "intentqa": intentqa, "causal_vidqa": causal_vidqa, "video_holmes": video_holmes, "dream1k": dream1k,
    "vidcapbench": vidcapbench,
    "dei_test": lambda r, v: proxy_test(r, v, "DarkEventInfer", [("What happened in the black segment?",
                                                                  "pour water"), ("And here?", "cut bread")]),
    "mixvidqa_test": lambda r, v: proxy_test(r, v, "MixVidQA", [("What is the man holding?", "a guitar"),
                                                                ("What colour is the car?", "red")]),
}
# Rows each converted copy has, and how many of them have no video.
EXPECTED_ROWS = {"videomme": (3, 1), "longvideobench": (2, 0), "mvbench": (2, 0), "mmvu": (2, 0), "nextqa": (2, 0),
                 "intentqa": (2, 0), "causal_vidqa": (6, 0), "video_holmes": (2, 0), "dream1k": (2, 0),
                 "vidcapbench": (1, 0), "dei_test": (2, 0), "mixvidqa_test": (2, 0)}


def write_all(base: Path) -> dict[str, list[str]]:
    """Every benchmark's copy under base/<name>/; {name: its converter flags (without --out)}."""
    videos = Videos(base)
    return {name: write(base / name, videos) for name, write in WRITERS.items()}
