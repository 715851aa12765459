#!/usr/bin/env python
"""Judge service: the Qwen2.5 judge with the `transformers` backend and micro-batching (this project)
vs a one-request-at-a-time server (the original design), same model, same prompts, at 1, 8, 32 and 64
concurrent clients: requests/s, p50/p99 latency and the throughput ratio.

    .venv/bin/python scripts/bench/judge_service.py --quick
    .venv/bin/python scripts/bench/judge_service.py                 # 8 s per point, 3 repeats
    .venv/bin/python scripts/bench/judge_service.py --model DIR     # another causal LM (default: tiny)

Both servers are the project's own service (src/qwen25_judge_service.py, one process each, started
here on 127.0.0.1): same app, same prompt building, same verdict parsing, same `max_new_tokens`.
The baseline runs with `--max-batch-size 1 --max-wait-ms 0 --no-prefix-cache`: one generate call per
request over the whole prompt, one request at a time, in arrival order - the serial design of the
original Flask judge. The project runs with its defaults (prompt-prefix KV cache on). (Its HTTP
parsing still overlaps the running generate, which favours the baseline slightly.) The load is the
closed-loop client of versavid_r1.judges.loadtest (N clients sending back to back, the payloads of
scripts/bench/judge_load_test.py). Runs alternate between the two servers within each repeat.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

LEVELS = (1, 8, 32, 64)


class JudgeProcess:
    """src/qwen25_judge_service.py in a child process on a free port (a context manager)."""

    def __init__(self, model: str, max_batch_size: int, max_wait_ms: float, max_new_tokens: int = 8,
                 threads: int = 1, startup_timeout: float = 180.0, prefix_cache: bool = True):
        from versavid_r1.judges.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, str(C.REPO_ROOT / "src" / "qwen25_judge_service.py"), "--model", model,
                    "--backend", "transformers", "--device", "cpu", "--dtype", "float32",
                    "--port", str(self.port), "--max-batch-size", str(max_batch_size),
                    "--max-wait-ms", str(max_wait_ms), "--max-new-tokens", str(max_new_tokens),
                    "--log-level", "warning", "--prefix-cache" if prefix_cache else "--no-prefix-cache"]
        self.env = dict(os.environ)
        if threads > 0:
            self.env["OMP_NUM_THREADS"] = str(threads)
        self.startup_timeout = startup_timeout
        self.proc: "subprocess.Popen | None" = None

    def __enter__(self) -> "JudgeProcess":
        import httpx

        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"judge server exited ({self.proc.returncode}): "
                                   f"{self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).json().get("ready"):
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise TimeoutError(f"judge server on {self.url} not ready after {self.startup_timeout} s")
            time.sleep(0.2)

    def metrics(self) -> dict:
        import httpx

        return httpx.get(self.url + "/metrics", timeout=10).json()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure(server: JudgeProcess, clients: int, duration_s: float) -> dict:
    """One closed-loop run; adds the mean micro-batch size the server saw during it."""
    from versavid_r1.judges.loadtest import run_load

    before = server.metrics()
    result = asyncio.run(run_load(server.url, clients, duration_s))
    after = server.metrics()
    calls = after["generate_calls"] - before["generate_calls"]
    result["mean_batch"] = (after["batched_requests"] - before["batched_requests"]) / calls if calls else 0.0
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} failed requests at {clients} clients: {result['error_samples']}")
    return result


def in_process_ceiling(model: str, batch: int = 32, repeats: int = 3) -> dict:
    """The same scoring without HTTP (versavid_r1.judges.qwen_app.QwenJudge over the transformers
    backend): `batch` requests in one micro-batch (prefix cache on, as the project serves) vs one by
    one without it (as the baseline server). The ratio HTTP could at best reach."""
    import dataclasses
    import random

    from versavid_r1.judges.backends.base import create_backend
    from versavid_r1.judges.loadtest import judge_payload
    from versavid_r1.judges.qwen_app import QwenJudge
    from versavid_r1.judges.settings import QwenJudgeSettings
    from versavid_r1.protocol import JudgeRequest

    settings = QwenJudgeSettings(model=model, backend="transformers", device="cpu", dtype="float32",
                                 max_batch_size=batch, max_wait_ms=0.0)
    rng = random.Random(0)
    items = [JudgeRequest(**judge_payload(rng)) for _ in range(batch)]

    serial_settings = dataclasses.replace(settings, prefix_cache=False)

    async def run() -> dict:
        backend = create_backend(settings)
        serial_backend = create_backend(serial_settings)
        await backend.start()
        await serial_backend.start()
        judge, serial_judge = QwenJudge(settings, backend), QwenJudge(serial_settings, serial_backend)
        try:
            async def together():
                await judge.score(items)

            async def one_by_one():
                for it in items:
                    await serial_judge.score([it])

            await together()
            await one_by_one()
            out = {"batched": [], "serial": []}
            for _ in range(repeats):
                for name, fn in (("batched", together), ("serial", one_by_one)):
                    t0 = time.perf_counter()
                    await fn()
                    out[name].append(time.perf_counter() - t0)
            return out
        finally:
            await serial_backend.stop()
            await backend.stop()

    times = asyncio.run(run())
    return {"batch": batch, "times": times, "batched_s": C.median(times["batched"]),
            "serial_s": C.median(times["serial"]),
            "ratio": C.median(times["serial"]) / C.median(times["batched"])}


def run_judge_bench(model: str, levels=LEVELS, duration_s: float = 2.0, repeats: int = 2,
                    max_batch_size: int = 32, max_wait_ms: float = 10.0, threads: int = 1,
                    report: "C.Report | None" = None) -> dict:
    report = report or C.Report("judge service")
    runs: dict[str, dict[int, list[dict]]] = {"batched": {n: [] for n in levels}, "serial": {n: [] for n in levels}}
    with JudgeProcess(model, max_batch_size, max_wait_ms, threads=threads) as batched, \
            JudgeProcess(model, 1, 0.0, threads=threads, prefix_cache=False) as serial:
        servers = {"batched": batched, "serial": serial}
        for srv in servers.values():  # warm-up: first generate calls allocate
            measure(srv, 8, min(1.0, duration_s))
        for rep in range(repeats):
            for n in levels:
                order = ("batched", "serial") if rep % 2 == 0 else ("serial", "batched")
                for name in order:
                    runs[name][n].append(measure(servers[name], n, duration_s))
    figures: dict = {"model": model, "duration_s": duration_s, "repeats": repeats, "max_batch_size": max_batch_size,
                     "max_wait_ms": max_wait_ms, "levels": {}}
    report.add(f"{'clients':>7} | {'micro-batched req/s':>19} {'p50 ms':>8} {'p99 ms':>8} {'batch':>5} | "
               f"{'serial req/s':>12} {'p50 ms':>8} {'p99 ms':>8} | ratio")
    for n in levels:
        row = {}
        for name in ("batched", "serial"):
            rs = runs[name][n]
            row[name] = {k: C.median([r[k] for r in rs]) for k in ("req_per_s", "p50_ms", "p99_ms", "mean_batch")}
            row[name]["requests"] = sum(r["requests"] for r in rs)
        row["ratio"] = row["batched"]["req_per_s"] / row["serial"]["req_per_s"]
        figures["levels"][n] = row
        b, s = row["batched"], row["serial"]
        report.add(f"{n:>7} | {b['req_per_s']:>19.1f} {b['p50_ms']:>8.1f} {b['p99_ms']:>8.1f} {b['mean_batch']:>5.1f} | "
                   f"{s['req_per_s']:>12.1f} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} | {row['ratio']:.2f}x")
    return figures


def main(argv=None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--model", default=None, help="causal LM directory (default: the offline tiny LM)")
    p.add_argument("--duration", type=float, default=None, help="seconds per point (default 1.5 quick, 8 full)")
    p.add_argument("--levels", default=",".join(map(str, LEVELS)), help="comma-separated client counts")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    a = p.parse_args(argv)
    levels = tuple(int(x) for x in a.levels.split(","))
    model = a.model or str(C.tiny_judge_lm())
    report = C.Report("Judge service: micro-batched vs one request at a time")
    C.header(report, a, f", judge model {model}, {a.threads or 'default'} torch thread(s) per server")
    f = run_judge_bench(model, levels, a.duration or (1.5 if a.quick else 8.0), C.repeats_of(a, 2, 3),
                        a.max_batch_size, a.max_wait_ms, a.threads, report)
    C.set_threads(a.threads)
    ceiling = in_process_ceiling(model, a.max_batch_size, C.repeats_of(a, 3, 5))
    f["in_process"] = ceiling
    report.add(f"without HTTP (QwenJudge in this process): {a.max_batch_size} requests in one micro-batch "
               f"{C.fmt_s(ceiling['batched_s'])}, one by one {C.fmt_s(ceiling['serial_s'])} -> {ceiling['ratio']:.2f}x")
    report.data = f
    report.ratio(f"judge_in_process_{a.max_batch_size}_batched_vs_serial", ceiling["ratio"],
                 note="ceiling of the HTTP figures on this machine")
    for n in levels:
        if n != 32:
            report.ratio(f"judge_service_{n}_clients", f["levels"][n]["ratio"])
    if 32 in levels:
        report.ratio("judge_service_32_clients", f["levels"][32]["ratio"], 5.0)
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
