"""How an evaluation ends when judges fail or nothing can be scored, through the CLI entry (`main`), with
real judge services on 127.0.0.1 (tests/judge_stub_server.py) and kept completions (so no model is
loaded): the exit status, the judge's reason in each error record, permanent judge errors that are
neither retried nor allowed to fail the other rows of their batch, and the progress bar."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge_stub_server import StubJudge, down_url
from versavid_r1.answer import extract_answer
from versavid_r1.eval import GENERATIONS_FILE, SAMPLES_FILE, parse_eval_args
from versavid_r1.eval.__main__ import main as eval_main
from versavid_r1.eval.formats import load_eval_items
from versavid_r1.eval.runner import row_hash
from versavid_r1.protocol import PREDICT_BATCH_PATH, PREDICT_PATH
from versavid_r1.tasks import CAPTION

UNSCORABLE = "a caption the judge model cannot turn into JSON"


@pytest.fixture(scope="module")
def captions(demo_jsonl, tmp_path_factory):
    """The demo's caption rows in their own file (at least two: a short demo has one, which is taken again
    under another id), and a well-formed completion for each."""
    rows = [json.loads(line) for line in Path(demo_jsonl).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["problem_type"] == CAPTION]
    assert rows
    if len(rows) == 1:
        rows.append({**rows[0], "id": rows[0]["id"] + "-again"})
    path = Path(demo_jsonl).parent / "captions-only.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def keep_completions(out: Path, data: Path, answers: list[str]) -> list[str]:
    """Write generations.jsonl as a run killed after generating would have left it (the next run only
    scores); returns the row ids."""
    cfg = parse_eval_args(["--model", "unused", "--data_path", str(data)])
    items = load_eval_items(data, "auto", cfg.video_config())
    out.mkdir(parents=True, exist_ok=True)
    with open(out / GENERATIONS_FILE, "w") as f:
        for item, answer in zip(items, answers):
            f.write(json.dumps({"id": item.id, "row_hash": row_hash(item.row), "prompt": "p", "num_frames": 4,
                                "completion": f"<think>I watched it.</think><answer>{answer}</answer>"}) + "\n")
    return [item.id for item in items]


def records(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / SAMPLES_FILE).read_text().splitlines())}


def test_permanent_judge_error_fails_only_its_row_and_is_not_retried(captions, tmp_path, capsys):
    data, rows = captions
    out = tmp_path / "eval"
    good = extract_answer(rows[1]["solution"])
    ids = keep_completions(out, data, [UNSCORABLE, good] + [good] * (len(rows) - 2))
    with StubJudge(kind="caption", permanent={UNSCORABLE}) as judge:
        code = eval_main(["--model", "unused", "--data_path", str(data), "--output_dir", str(out),
                          "--caption_judge_url", judge.url, "--judge_retries", "3"])
        requests = list(judge.requests)
    assert code == 0, "some rows were scored"
    got = records(out)
    bad = got[ids[0]]
    assert bad["status"] == "judge_error" and bad["judge_error_permanent"] is True
    assert "cannot produce JSON" in bad["error"] and judge.url in bad["error"], bad["error"]
    assert got[ids[1]]["status"] == "ok" and got[ids[1]]["recall"] == 1.0
    # one batch: the permanent failure comes back as that item's ItemError and is never asked again
    assert requests == [(PREDICT_BATCH_PATH, len(rows))]
    err = capsys.readouterr().err
    assert f"{len(rows)}/{len(rows)}" in err and "row" in err, "a progress bar on stderr"


def test_judges_failing_everywhere_exit_1_with_the_reason_in_each_record(captions, tmp_path, capsys):
    data, rows = captions
    out = tmp_path / "eval"
    url = down_url()
    ids = keep_completions(out, data, [extract_answer(r["solution"]) for r in rows])
    code = eval_main(["--model", "unused", "--data_path", str(data), "--output_dir", str(out),
                      "--caption_judge_url", url, "--check_judges", "false", "--judge_retries", "0"])
    assert code == 1
    assert "nothing was scored (judge_error: %d)" % len(rows) in capsys.readouterr().err
    for rid in ids:
        rec = records(out)[rid]
        assert rec["status"] == "judge_error" and rec["judge_error_permanent"] is False
        assert url in rec["error"] and "ConnectError" in rec["error"], rec["error"]


def test_all_rows_invalid_exit_1(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"problem": "no video"}\nnot json\n')
    code = eval_main(["--model", "unused", "--data_path", str(data), "--output_dir", str(tmp_path / "eval"),
                      "--progress", "false"])
    assert code == 1
    assert "nothing was scored (invalid_row: 2)" in capsys.readouterr().err
