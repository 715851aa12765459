"""The judge services: the Qwen2.5 judge (DarkEventInfer, MixVidQA, OpenAI-compatible chat) and the
AutoDQ caption judge. Entry scripts: src/qwen25_judge_service.py and src/gpt35_judge_service.py.

    from versavid_r1.judges import QwenJudgeSettings, create_qwen_judge_app
    app = create_qwen_judge_app(QwenJudgeSettings(model="path/to/model", backend="transformers"))
"""
from .caption_app import create_caption_judge_app
from .qwen_app import create_qwen_judge_app
from .settings import (
    API_KEY_ENV, CaptionJudgeSettings, QwenJudgeSettings, ServiceLimits, caption_arg_parser,
    caption_settings_from_args, qwen_arg_parser, qwen_settings_from_args,
)
from .verdict import Verdict, parse_dei_verdict, parse_mixvidqa_verdict, parse_verdict

__all__ = [
    "API_KEY_ENV", "CaptionJudgeSettings", "QwenJudgeSettings", "ServiceLimits", "Verdict",
    "caption_arg_parser", "caption_settings_from_args", "create_caption_judge_app",
    "create_qwen_judge_app", "parse_dei_verdict", "parse_mixvidqa_verdict", "parse_verdict",
    "qwen_arg_parser", "qwen_settings_from_args",
]
