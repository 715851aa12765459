"""Closed-loop load test of a judge service: N concurrent clients send requests back to back for a
fixed time; reports latency percentiles, throughput and errors (scripts/bench/judge_load_test.py)."""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from typing import Optional

from ..protocol import PREDICT_PATH

_PAIRS = [
    ("The man slices the bread with a knife.", "A man cuts bread."),
    ("She pours water into the green cup.", "A woman fills a cup with water."),
    ("The child throws the ball to the dog.", "A kid kicks a ball."),
    ("He tightens the screws of the shelf.", "Someone assembles a bookshelf."),
]


def judge_payload(rng: random.Random) -> dict:
    pred, gt = rng.choice(_PAIRS)
    if rng.random() < 0.5:
        return {"content": f"<think>...</think><answer>{pred}</answer>", "sol": f"<answer>{gt}</answer>",
                "problem_type": "DarkEventInfer"}
    return {"content": f"<answer>{pred}</answer>", "sol": f"<answer>{gt}</answer>",
            "problem_type": "MixVidQA", "question": "What does the person do?"}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[k]


async def run_load(url: str, clients: int = 64, duration_s: float = 30.0, path: str = PREDICT_PATH,
                   api_key: Optional[str] = None, timeout_s: float = 60.0, seed: int = 0) -> dict:
    """Run the load and return {requests, errors, status counts, p50/p99/max latency (ms), req_per_s}."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, limits=limits) as client:
        start = time.perf_counter()
        stop_at = start + duration_s

        async def worker(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=judge_payload(rng))
                    statuses[r.status_code] += 1
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    else:
                        r.json()
                except Exception as exc:  # counted and reported, never raised mid-run
                    statuses["exception"] += 1
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    ms = [x * 1000.0 for x in latencies]
    return {
        "clients": clients, "duration_s": round(elapsed, 3), "requests": len(latencies),
        "ok": statuses.get(200, 0), "errors": len(errors), "error_samples": errors[:5],
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": round(percentile(ms, 50), 2), "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
        "req_per_s": round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
    }


def format_report(r: dict) -> str:
    return (f"{r['clients']} clients, {r['duration_s']} s: {r['requests']} requests "
            f"({r['ok']} ok, {r['errors']} errors), {r['req_per_s']} req/s, "
            f"latency p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms")
