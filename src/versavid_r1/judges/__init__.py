"""The judge services: the Qwen2.5 judge (DarkEventInfer, MixVidQA, OpenAI-compatible chat) and the
AutoDQ caption judge. Entry scripts: src/qwen25_judge_service.py and src/gpt35_judge_service.py.

    from versavid_r1.judges import QwenJudgeSettings, create_qwen_judge_app
    app = create_qwen_judge_app(QwenJudgeSettings(model="path/to/model", backend="transformers"))

Names are imported on first use, so that `versavid_r1.judges.settings` (option parsing) loads without
FastAPI: a bad flag is reported at once.
"""
from importlib import import_module

_WHERE = {
    "create_caption_judge_app": "caption_app", "create_qwen_judge_app": "qwen_app",
    "API_KEY_ENV": "settings", "CaptionJudgeSettings": "settings", "QwenJudgeSettings": "settings",
    "ServiceLimits": "settings", "caption_arg_parser": "settings", "caption_settings_from_args": "settings",
    "qwen_arg_parser": "settings", "qwen_settings_from_args": "settings",
    "Verdict": "verdict", "parse_dei_verdict": "verdict", "parse_mixvidqa_verdict": "verdict",
    "parse_verdict": "verdict",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
