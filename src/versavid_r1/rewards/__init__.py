"""VersaVid-R1 rewards (docs/method.md, "Rewards"): format gate × task reward, and the async judge client.

Public API:
  extract_answer(text)                        text inside the first <answer> ("" if none)
  format_reward(completions, **kw)            TRL reward: the format gate (strict full match)
  multiple_choice_reward(completion, solution) MCQA 1.0/0.0 (math-verify, then option letters;
                                              an answer naming two letters gets 0)
  keyword_reward(completion)                  caption keyword term (temporal bonus, hedge clamp, cap 0.4)
  caption_reward(completion, recall, precision) recall + 0.5 × precision + keyword term
  versavid_reward                             async TRL reward (default config: judges on localhost)
  make_versavid_reward(RewardConfig(...))     the same, configured, bound to one JudgeClient
  RewardConfig, JudgeClient, JudgeError, JudgeFailure, JudgeItem, JudgeStats
"""
from versavid_r1.answer import extract_answer
from versavid_r1.rewards.caption import CAPTION_MAX, KEYWORD_MAX, KEYWORD_MIN, caption_reward, keyword_reward
from versavid_r1.rewards.composite import (
    RewardConfig,
    RowScore,
    log_reward_metrics,
    make_versavid_reward,
    score_rows,
    versavid_reward,
)
from versavid_r1.rewards.format import answer_text, completion_text, format_ok, format_reward
from versavid_r1.rewards.judge_client import JudgeClient, JudgeError, JudgeItem, JudgeStats
from versavid_r1.rewards.judge_items import JudgeFailure
from versavid_r1.rewards.mcqa import multiple_choice_reward, option_letters, symbolic_equal

__all__ = [
    "extract_answer",
    "answer_text",
    "completion_text",
    "format_ok",
    "format_reward",
    "multiple_choice_reward",
    "option_letters",
    "symbolic_equal",
    "keyword_reward",
    "caption_reward",
    "KEYWORD_MAX",
    "KEYWORD_MIN",
    "CAPTION_MAX",
    "versavid_reward",
    "make_versavid_reward",
    "score_rows",
    "log_reward_metrics",
    "RewardConfig",
    "RowScore",
    "JudgeClient",
    "JudgeError",
    "JudgeFailure",
    "JudgeItem",
    "JudgeStats",
]
