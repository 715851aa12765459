#!/usr/bin/env python
"""Reward stage: 64 judged completions (8 prompts x 8 generations: DarkEventInfer, MixVidQA and
caption) scored against judge servers with a fixed 100 ms service time. This project's reward
(`make_versavid_reward` + `JudgeClient`: concurrent, batch endpoint, cache) vs the original design
(one blocking HTTP request per completion, one after another); then, with 50 % repeated answers,
what the cache saves.

    .venv/bin/python scripts/bench/reward_stage.py --quick
    .venv/bin/python scripts/bench/reward_stage.py --service-ms 100 --repeats 5

The judges are tests/judge_stub_server.py (a real FastAPI app served by uvicorn on 127.0.0.1) with
`delay_s = 0.1`: every request, single or batch, takes 100 ms however many are in flight, which
isolates the client side (a real judge's capacity is measured by judge_service.py). The baseline
uses the project's own local logic (format gate, answer extraction, caption reward) and replaces
only the transport by sequential `httpx.Client.post` calls to /predict (keep-alive connection,
stronger than the original's new connection per `requests.post`). Both sides must return the same
rewards, checked on every run.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

C.add_repo_paths(include_tests=True)

# 8 prompts: the judged problem types of the mix (MCQA is rule-based and never reaches a judge).
PROMPT_TYPES = ("DarkEventInfer", "MixVidQA", "caption", "DarkEventInfer", "MixVidQA", "caption",
                "DarkEventInfer", "MixVidQA")


def make_batch(prompts: int = 8, generations: int = 8, repeat_share: float = 0.0, salt: str = "") -> dict:
    """TRL-style reward inputs: completions and per-completion columns. With `repeat_share` s, each
    group's answers are drawn from round(G * (1 - s)) distinct ones, so a share s of them repeat."""
    distinct = max(1, round(generations * (1.0 - repeat_share)))
    completions, solution, problem_type, problem = [], [], [], []
    for p in range(prompts):
        ptype = PROMPT_TYPES[p % len(PROMPT_TYPES)]
        for g in range(generations):
            a = g % distinct
            answer = (f"The person in clip {p} picks up object {a}{salt} and then puts it on the table."
                      if ptype != "caption" else
                      f"First a person walks in{salt}, then picks up item {a}, finally leaves the room {p}.")
            completions.append(f"<think>Looking at frame {g} of prompt {p}.</think><answer>{answer}</answer>")
            solution.append(f"<answer>Ground truth {p}: the person picks up object 0.</answer>")
            problem_type.append(ptype)
            problem.append(f"Question {p}: what does the person do with the object?")
    return {"completions": completions, "solution": solution, "problem_type": problem_type, "problem": problem}


def project_reward(qwen_url: str, caption_url: str, concurrency: int = 32, batch: bool = True):
    """The training reward function exactly as versavid_r1.grpo builds it (RewardConfig -> JudgeClient)."""
    from versavid_r1.rewards import JudgeClient, RewardConfig, make_versavid_reward

    cfg = RewardConfig(qwen_judge_urls=qwen_url, caption_judge_urls=caption_url, timeout_s=30.0,
                       max_concurrency=concurrency, use_batch_endpoint=batch, log_metrics=False, log_extra=False)
    return make_versavid_reward(cfg, JudgeClient.from_config(cfg))


def run_project(reward, batch: dict, clear_cache: bool = True) -> list:
    if clear_cache:
        reward.client.clear_cache()
    return asyncio.run(reward(prompts=None, **batch))


def run_sequential(http, qwen_url: str, caption_url: str, batch: dict) -> list:
    """The original design: one blocking request per completion, in order, no cache."""
    from versavid_r1.answer import extract_answer
    from versavid_r1.rewards import caption_reward, format_ok

    rewards = []
    for text, sol, ptype, question in zip(batch["completions"], batch["solution"], batch["problem_type"],
                                          batch["problem"]):
        if not format_ok(text, "strict"):
            rewards.append(0.0)
            continue
        answer = extract_answer(text)
        if ptype == "caption":
            r = http.post(caption_url + "/predict", json={"content": f"<answer>{answer}</answer>", "sol": sol})
            r.raise_for_status()
            data = r.json()
            rewards.append(caption_reward(f"<answer>{answer}</answer>", data["recall"], data["precision"]))
        else:
            r = http.post(qwen_url + "/predict", json={"content": f"<answer>{answer}</answer>", "sol": sol,
                                                       "problem_type": ptype, "question": question})
            r.raise_for_status()
            rewards.append(float(r.json()["output"]))
    return rewards


def run_reward_bench(service_ms: float = 100.0, repeats: int = 3, prompts: int = 8, generations: int = 8,
                     report: "C.Report | None" = None) -> dict:
    import httpx
    from judge_stub_server import StubJudge

    report = report or C.Report("reward stage")
    delay = service_ms / 1000.0
    plain = make_batch(prompts, generations, 0.0)
    repeated = make_batch(prompts, generations, 0.5, salt=" (r)")
    n = len(plain["completions"])
    with StubJudge("qwen", delay_s=delay) as qwen, StubJudge("caption", delay_s=delay) as caption, \
            httpx.Client(timeout=30.0, trust_env=False) as http:
        reward = project_reward(qwen.url, caption.url)
        singles = project_reward(qwen.url, caption.url, batch=False)
        stubs = (qwen, caption)

        def sent() -> int:
            return sum(len(s.items) for s in stubs)

        expected = run_sequential(http, qwen.url, caption.url, plain)
        got = run_project(reward, plain)
        if [round(x, 9) for x in got] != [round(x, 9) for x in expected]:
            raise RuntimeError("the project's rewards differ from the sequential baseline's")
        cases = {
            "project": lambda: run_project(reward, plain),
            "project_no_batch_endpoint": lambda: run_project(singles, plain),
            "sequential": lambda: run_sequential(http, qwen.url, caption.url, plain),
        }
        times = C.interleaved(cases, repeats, warmup=0)

        # The cache: 50 % repeated answers within each group, then the same batch again (next step).
        s0 = sent()
        t_rep = C.median([C.timed(lambda: run_project(reward, repeated))[0] for _ in range(repeats)])
        sent_repeated = (sent() - s0) / repeats
        s1 = sent()
        t_again = C.timed(lambda: run_project(reward, repeated, clear_cache=False))[0]
        sent_again = sent() - s1
        requests_project = [p for s in stubs for p, _ in s.requests]

    med = {k: C.median(v) for k, v in times.items()}
    f = {"completions": n, "service_ms": service_ms, "repeats": repeats, "times": times,
         "project_s": med["project"], "project_no_batch_s": med["project_no_batch_endpoint"],
         "sequential_s": med["sequential"], "ratio": med["sequential"] / med["project"],
         "ratio_no_batch": med["sequential"] / med["project_no_batch_endpoint"],
         "repeated_s": t_rep, "repeated_items_sent": sent_repeated, "repeat_share": 0.5,
         "cache_saving": 1.0 - sent_repeated / n, "next_step_items_sent": sent_again, "next_step_s": t_again,
         "batch_requests_seen": requests_project.count("/predict_batch")}
    report.add(f"{n} judged completions ({prompts} prompts x {generations}), judge service time {service_ms:g} ms")
    report.add(f"project (JudgeClient, batch endpoint, 32 in flight): {C.spread(times['project'])}")
    report.add(f"project without the batch endpoint (64 single requests, 32 in flight): "
               f"{C.spread(times['project_no_batch_endpoint'])}")
    report.add(f"original (one blocking request per completion):    {C.spread(times['sequential'])}")
    report.add(f"50% repeated answers: {sent_repeated:.0f} of {n} items sent to the judges "
               f"(saving {100 * f['cache_saving']:.0f}%), {C.fmt_s(t_rep)}; the same batch again (next step): "
               f"{sent_again} items sent, {C.fmt_s(t_again)}")
    return f


def main(argv=None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--service-ms", type=float, default=100.0, help="judge service time per request")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--generations", type=int, default=8)
    a = p.parse_args(argv)
    report = C.Report("Reward stage: JudgeClient vs sequential blocking requests")
    C.header(report, a)
    f = run_reward_bench(a.service_ms, C.repeats_of(a), a.prompts, a.generations, report)
    report.data = f
    report.ratio("reward_stage_no_batch_endpoint_vs_sequential", f["ratio_no_batch"])
    report.ratio("reward_cache_saving_at_50pct_repeats", 100 * f["cache_saving"], 45.0, unit="%",
                 note="share of judge items not sent; ideal = the 50% share of repeats")
    report.ratio("reward_stage_vs_sequential", f["ratio"], 20.0)
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
