"""The offline tiny Qwen2.5-VL / Qwen2-VL / Qwen2 builders and versavid_r1.modeling."""
from __future__ import annotations

import json
import logging
import os

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)

from versavid_r1 import modeling
from versavid_r1.tiny_model import (
    NON_SPECIAL_ADDED_TOKENS,
    SPECIAL_TOKENS,
    TinyModelDirError,
    build_tiny,
    build_tiny_causal_lm,
    build_tiny_qwen2vl,
    build_tiny_qwen25vl,
    model_summary,
    read_marker,
)
from versavid_r1.video_writer import write_mp4

VIDEO_BLOCK = "<|vision_start|><|video_pad|><|vision_end|>"
IMAGE_BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"
# Small per-frame pixel limits for the generation tests (the paper's defaults make ~1,100 tokens).
SMALL_PIXELS = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "qwen2_5_vl": build_tiny_qwen25vl(root / "qwen25vl", seed=0),
        "qwen2_vl": build_tiny_qwen2vl(root / "qwen2vl", seed=0),
        "causal_lm": build_tiny_causal_lm(root / "lm", seed=0),
    }


@pytest.fixture(scope="module")
def mp4_video(tmp_path_factory):
    """A real H.264 mp4 (8 moving-colour frames, 112x140), decoded with PyAV to uint8 [T, 3, H, W]."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    t = np.arange(8)[:, None, None, None]
    y = np.arange(112)[None, :, None, None]
    x = np.arange(140)[None, None, :, None]
    frames = ((t * 30 + y + x * np.array([1, 2, 3])) % 256).astype(np.uint8)
    write_mp4(path, frames, fps=4.0)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    video = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous()
    assert video.shape == (8, 3, 112, 140) and video.dtype == torch.uint8
    return path, video


def _video_messages(path, question="What happens in the video?"):
    return [{"role": "user", "content": [{"type": "video", "video": str(path)},
                                         {"type": "text", "text": question}]}]


def _generate_with_video(model_cls, model_dir, mp4_video):
    path, video = mp4_video
    processor = AutoProcessor.from_pretrained(model_dir)
    model = model_cls.from_pretrained(model_dir).eval()
    text = processor.apply_chat_template(_video_messages(path), tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], videos=[video], return_tensors="pt", videos_kwargs=SMALL_PIXELS)
    merge = processor.video_processor.merge_size
    n_pad = int((inputs["input_ids"] == model.config.video_token_id).sum())
    assert n_pad == int(inputs["video_grid_thw"].prod()) // merge**2 > 0
    assert inputs["pixel_values_videos"].shape[0] == int(inputs["video_grid_thw"].prod())
    suppress = modeling.vision_special_token_ids(processor.tokenizer)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False, suppress_tokens=suppress)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert new.numel() > 0
    assert not set(new.tolist()) & set(suppress)
    return processor, inputs, new


# --- loading --------------------------------------------------------------------------------------

def test_vl_dir_loads_with_auto_processor_and_model_class(built):
    path = built["qwen2_5_vl"]
    processor = AutoProcessor.from_pretrained(path)
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    # The paper's per-frame video pixel limits are the defaults.
    assert dict(processor.video_processor.size) == {"shortest_edge": 128 * 28 * 28, "longest_edge": 196 * 28 * 28}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
    tok, cfg = processor.tokenizer, model.config
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    assert cfg.image_token_id == ids["<|image_pad|>"]
    assert cfg.video_token_id == ids["<|video_pad|>"]
    assert cfg.vision_start_token_id == ids["<|vision_start|>"]
    assert cfg.vision_end_token_id == ids["<|vision_end|>"]
    assert cfg.text_config.eos_token_id == tok.eos_token_id == ids["<|im_end|>"]
    assert cfg.text_config.pad_token_id == tok.pad_token_id == ids["<|endoftext|>"]
    assert cfg.text_config.bos_token_id == ids["<|endoftext|>"]
    assert model.generation_config.eos_token_id == [ids["<|im_end|>"], ids["<|endoftext|>"]]
    assert len(tok) <= cfg.text_config.vocab_size
    summary = model_summary(path)
    assert summary["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert 150_000 < summary["num_parameters"] < 500_000
    assert summary["weights_bytes"] < 2_000_000
    assert read_marker(path)["arch"] == "qwen2_5_vl"


# --- tokenizer ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "The man opens the red door, then walks away.",
    "<think> first he sits, then he reads </think><answer> B </answer>",
    "Frames 0..15 at 2.5 fps; ids 12345 and 0.125 s.\n\n  indented\ttab",
    "Unicode: café, naïve, 視頻, emoji 🎬 and ŝ",
    "",
])
def test_tokenizer_round_trips_text(built, text):
    tok = AutoTokenizer.from_pretrained(built["qwen2_5_vl"])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_each_special_token_is_one_id(built):
    tok = AutoTokenizer.from_pretrained(built["qwen2_5_vl"])
    seen = set()
    for t in SPECIAL_TOKENS + NON_SPECIAL_ADDED_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (t, ids)
        assert tok.convert_ids_to_tokens(ids[0]) == t
        seen.add(ids[0])
        # Also inside running text, with no spaces around it.
        ids = tok(f"a{t}b", add_special_tokens=False)["input_ids"]
        assert tok.convert_tokens_to_ids(t) in ids
    assert len(seen) == len(SPECIAL_TOKENS) + len(NON_SPECIAL_ADDED_TOKENS)
    # Qwen's layout: the added tokens come right after the BPE vocabulary, in Qwen's order.
    first = tok.convert_tokens_to_ids("<|endoftext|>")
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(first, first + len(SPECIAL_TOKENS)))
    assert tok.decode(tok("<|im_start|>user\nhi<|im_end|>")["input_ids"], skip_special_tokens=True) == "user\nhi"


# --- chat template --------------------------------------------------------------------------------

def test_chat_template_video_part_emits_one_block(built):
    processor = AutoProcessor.from_pretrained(built["qwen2_5_vl"])
    text = processor.apply_chat_template(_video_messages("/x.mp4", "Q?"), tokenize=False, add_generation_prompt=True)
    assert text.count(VIDEO_BLOCK) == 1
    assert text.count("<|vision_start|>") == 1 and IMAGE_BLOCK not in text
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    f"<|im_start|>user\n{VIDEO_BLOCK}Q?<|im_end|>\n<|im_start|>assistant\n")
    no_prompt = processor.apply_chat_template(_video_messages("/x.mp4", "Q?"), tokenize=False)
    assert no_prompt.endswith("Q?<|im_end|>\n")


def test_chat_template_system_image_multi_turn_and_vision_ids(built):
    processor = AutoProcessor.from_pretrained(built["qwen2_5_vl"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image", "image": "a.png"}, {"type": "video", "video": "b.mp4"},
                                     {"type": "text", "text": "Compare."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer> A </answer>"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_vision_id=True)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                    f"<|im_start|>user\nPicture 1: {IMAGE_BLOCK}Video 1: {VIDEO_BLOCK}Compare.<|im_end|>\n"
                    "<|im_start|>assistant\n<answer> A </answer><|im_end|>\n")


def test_chat_template_counts_parts_by_key_like_the_real_one(built):
    """A text part carrying `video: None` (Arrow merges part keys) counts as a video, as with the real
    Qwen2.5-VL template: the tiny model reproduces that trap rather than hiding it from the trainer."""
    processor = AutoProcessor.from_pretrained(built["qwen2_5_vl"])
    messages = [{"role": "user", "content": [{"type": "video", "video": "v.mp4", "text": None},
                                             {"type": "text", "text": "Q", "video": None}]}]
    assert processor.apply_chat_template(messages, tokenize=False).count(VIDEO_BLOCK) == 2


# --- generation with a real mp4 ---------------------------------------------------------------------

def test_qwen25vl_generates_from_real_mp4(built, mp4_video):
    processor, inputs, new = _generate_with_video(Qwen2_5_VLForConditionalGeneration, built["qwen2_5_vl"], mp4_video)
    assert "second_per_grid_ts" in inputs
    assert isinstance(processor.batch_decode(new[None])[0], str)


def test_generate_through_qwen_vl_utils(built, mp4_video):
    """The upstream calling pattern: process_vision_info(..., return_video_metadata=True) then the
    processor with video_metadata and do_resize=False (frames are already sized by qwen_vl_utils; with
    resizing on, the processor's own min_pixels would resize them a second time)."""
    qvu = pytest.importorskip("qwen_vl_utils")
    import dataclasses

    from transformers.video_utils import VideoMetadata

    path, _ = mp4_video
    path_dir = built["qwen2_5_vl"]
    messages = [{"role": "user", "content": [
        {"type": "video", "video": str(path), "nframes": 4, **SMALL_PIXELS},
        {"type": "text", "text": "What happens?"}]}]
    _, videos, video_kwargs = qvu.process_vision_info(messages, return_video_kwargs=True, return_video_metadata=True)
    frames, meta = videos[0]
    # transformers 5.17's VideoMetadata rejects unknown keys; keep only the fields it defines.
    keep = {f.name for f in dataclasses.fields(VideoMetadata)}
    meta = {k: v for k, v in meta.items() if k in keep}
    processor = AutoProcessor.from_pretrained(path_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path_dir).eval()
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], videos=[frames], video_metadata=[meta], do_resize=False,
                       return_tensors="pt", **video_kwargs)
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert (t * 2, h * 14, w * 14) == (frames.shape[0], frames.shape[2], frames.shape[3])
    sampled_fps = len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"]
    assert inputs["second_per_grid_ts"][0].item() == pytest.approx(2 / sampled_fps)
    suppress = modeling.vision_special_token_ids(processor.tokenizer)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False, suppress_tokens=suppress)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_default_video_pixels_follow_the_paper(built, mp4_video):
    _, video = mp4_video
    processor = AutoProcessor.from_pretrained(built["qwen2_5_vl"])
    text = processor.apply_chat_template(_video_messages("v.mp4"), tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], videos=[video], return_tensors="pt")
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == video.shape[0] // 2
    assert 128 * 28 * 28 <= h * 14 * w * 14 <= 196 * 28 * 28
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) == t * h * w // 4


def test_qwen2vl_variant_loads_and_generates(built, mp4_video):
    processor, inputs, _ = _generate_with_video(Qwen2VLForConditionalGeneration, built["qwen2_vl"], mp4_video)
    assert isinstance(processor, Qwen2VLProcessor)
    assert read_marker(built["qwen2_vl"])["arch"] == "qwen2_vl"


def test_causal_lm_loads_and_generates(built):
    path = built["causal_lm"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert type(model).__name__ == "Qwen2ForCausalLM"
    messages = [{"role": "user", "content": "Ground truth: a dog runs. Prediction: a dog walks. Score:"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                                   tokenize=False).endswith("<|im_start|>user\nx<|im_end|>\n")
    inputs = tok(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert model.config.eos_token_id == tok.eos_token_id


# --- determinism, idempotence, atomicity ------------------------------------------------------------

def test_same_seed_same_weights_and_tokenizer(built, tmp_path):
    again = build_tiny_qwen25vl(tmp_path / "again", seed=0)
    a, b = load_file(built["qwen2_5_vl"] / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (built["qwen2_5_vl"] / name).read_bytes(), name
    other = load_file(build_tiny_qwen25vl(tmp_path / "other", seed=1) / "model.safetensors")
    assert any(not torch.equal(a[k], other[k]) for k in a)


def test_build_is_idempotent_and_guards_foreign_dirs(tmp_path):
    out = build_tiny_causal_lm(tmp_path / "m", seed=0)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_causal_lm(out, seed=0) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # returned, not rebuilt
    with pytest.raises(TinyModelDirError, match="different tiny build"):
        build_tiny_causal_lm(out, seed=1)
    assert build_tiny(out, "causal_lm", seed=1, overwrite=True) == out
    assert read_marker(out)["seed"] == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(TinyModelDirError, match="not a tiny model build"):
        build_tiny_causal_lm(foreign, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert read_marker(build_tiny_causal_lm(empty)) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "foreign", "m"]  # no temp dirs left


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    from versavid_r1.tiny_model import build as build_mod

    def boom(tmp, *args):
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("simulated crash mid-build")

    monkeypatch.setattr(build_mod, "_build_into", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        build_tiny_qwen25vl(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_overrides(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny-model override"):
        build_tiny_qwen25vl(tmp_path / "bad", hidden_sise=32)
    out = build_tiny_qwen25vl(tmp_path / "wide", hidden_size=128, num_attention_heads=8,
                              video_max_pixels=256 * 28 * 28, vocab_size=1024)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["text_config"]["hidden_size"] == 128 and cfg["text_config"]["vocab_size"] == 1024
    assert cfg["vision_config"]["out_hidden_size"] == 128
    assert json.loads((out / "processor_config.json").read_text())["video_processor"]["size"]["longest_edge"] == 256 * 28 * 28


def test_cli_builds_and_reports(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_tiny_qwen25vl.py"
    spec = importlib.util.spec_from_file_location("make_tiny_qwen25vl", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--out", str(tmp_path / "lm"), "--arch", "causal_lm", "--seed", "3",
                     "--num-hidden-layers", "1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["arch"] == "causal_lm" and report["num_parameters"] > 0
    assert read_marker(tmp_path / "lm")["spec"]["num_hidden_layers"] == 1
    assert cli.main(["--out", str(tmp_path / "lm"), "--arch", "causal_lm"]) == 2  # different build: refused


# --- versavid_r1.modeling -------------------------------------------------------------------------

def test_attn_implementation_without_flash(monkeypatch, caplog):
    monkeypatch.setattr(modeling, "flash_attn_available", lambda: False)
    monkeypatch.setattr(modeling, "_logged", set())
    assert modeling.attn_implementation() == "sdpa"
    assert modeling.attn_implementation("auto") == "sdpa"
    with caplog.at_level(logging.WARNING, logger="versavid_r1.modeling"):
        assert modeling.attn_implementation("flash_attention_2") == "sdpa"
        assert modeling.attn_implementation("flash_attention_2") == "sdpa"
    warnings = [r for r in caplog.records if "falling back to sdpa" in r.getMessage()]
    assert len(warnings) == 1  # logged once
    assert modeling.attn_implementation("eager") == "eager"


def test_attn_implementation_with_flash(monkeypatch):
    monkeypatch.setattr(modeling, "flash_attn_available", lambda: True)
    assert modeling.attn_implementation() == "flash_attention_2"
    assert modeling.attn_implementation("flash_attention_2") == "flash_attention_2"
    assert modeling.attn_implementation("sdpa") == "sdpa"


def test_flash_attn_unavailable_on_this_machine_without_cuda():
    if not torch.cuda.is_available():
        assert modeling.flash_attn_available() is False


def test_load_vl_model_picks_class_and_dtype(built):
    m = modeling.load_vl_model(built["qwen2_5_vl"], dtype="bf16")
    assert type(m) is Qwen2_5_VLForConditionalGeneration and m.dtype == torch.bfloat16
    assert m.config._attn_implementation == modeling.attn_implementation()
    m = modeling.load_vl_model(str(built["qwen2_vl"]), attn_implementation="flash_attention_2")
    assert type(m) is Qwen2VLForConditionalGeneration
    if not modeling.flash_attn_available():
        assert m.config._attn_implementation == "sdpa"
    assert isinstance(modeling.load_processor(built["qwen2_vl"]), Qwen2VLProcessor)


def test_load_vl_model_errors(built, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        modeling.load_vl_model(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        modeling.load_vl_model(tmp_path)
    with pytest.raises(ValueError, match="unsupported model_type 'qwen2'"):
        modeling.load_vl_model(built["causal_lm"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(OSError, match="HF_HUB_OFFLINE is set"):
        modeling.load_vl_model("Qwen/Qwen2.5-VL-7B-Instruct")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
