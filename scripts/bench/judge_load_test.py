#!/usr/bin/env python
"""Load test of the Qwen2.5 judge: N concurrent clients for T seconds; prints p50/p99 latency, req/s.

    # against a running judge
    python scripts/bench/judge_load_test.py --url http://127.0.0.1:5000 --clients 64 --duration 30
    # self-contained: builds the offline tiny causal LM and serves it in-process (transformers backend)
    python scripts/bench/judge_load_test.py --clients 64 --duration 30

Exit status 1 if any request failed or was not answered.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running judge; default: start one on the tiny model")
    p.add_argument("--model", default=None, help="model for the in-process judge (default: tiny LM)")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--path", default="/predict", help="endpoint taking one JudgeRequest per call")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--api-key", default=os.environ.get("VERSAVID_JUDGE_API_KEY"))
    p.add_argument("--json", action="store_true", help="print the full result as JSON too")
    a = p.parse_args(argv)

    from versavid_r1.judges.loadtest import format_report, run_load

    if a.url:
        result = asyncio.run(run_load(a.url, a.clients, a.duration, a.path, a.api_key))
        metrics = None
    else:
        import httpx

        from versavid_r1.judges import QwenJudgeSettings, create_qwen_judge_app
        from versavid_r1.judges.server import BackgroundServer

        model = a.model
        if model is None:
            from versavid_r1.tiny_model import build_tiny_causal_lm
            model = str(build_tiny_causal_lm(os.path.join(tempfile.gettempdir(), "versavid-tiny-judge-lm")))
        settings = QwenJudgeSettings(model=model, backend="transformers", device="auto",
                                     max_batch_size=a.max_batch_size, max_wait_ms=a.max_wait_ms,
                                     api_key=a.api_key)
        with BackgroundServer(create_qwen_judge_app(settings), log_level="error") as srv:
            result = asyncio.run(run_load(srv.url, a.clients, a.duration, a.path, a.api_key))
            metrics = httpx.get(srv.url + "/metrics").json()
    print(format_report(result))
    if metrics:
        print(f"server: {metrics['requests']} generations in {metrics['generate_calls']} generate calls "
              f"(mean batch {metrics['mean_batch_size']:.1f}, max {metrics['max_batch_seen']}); "
              f"verdicts {metrics['verdicts']}")
    if a.json:
        print(json.dumps({"result": result, "server_metrics": metrics}, indent=2))
    ok = result["errors"] == 0 and result["ok"] == result["requests"] and result["requests"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
