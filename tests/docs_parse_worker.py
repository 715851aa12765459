"""Run by tests/test_docs.py in one child process: the `--help` of every documented entry and the argv of the
entries whose parser is cheap to call, without running anything else (in-process `runpy`, so the project's
imports are paid once). Reads a JSON list of checks from argv[1], prints a JSON list of problems.

    {"kind": "script"|"module", "name": "src/qwen25_judge_service.py", "argv": null | [...], "where": "...",
     "on_this_machine": true}

`argv` null: `--help` must print the usage and exit 0. A list: the entry's own parser must accept it; for a
command meant for GPUs (`on_this_machine` false) the training and evaluation entries check flags and
value types only (their dataclasses check the device when they are built).
"""
from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _flags_and_types(parser, argv):
    """The argparse level of a TrlParser: the config's keys and every flag known, every value of its type;
    no dataclass is built (TrainingArguments checks the device: bf16 needs a GPU)."""
    import argparse

    import yaml

    argv = list(argv)
    if "--config" in argv:
        k = argv.index("--config")
        parser.set_defaults_with_config(**yaml.safe_load(open(argv[k + 1])))
        del argv[k:k + 2]
    argparse.ArgumentParser.parse_args(parser, argv)


def _grpo(argv, on_this_machine):
    from versavid_r1.grpo import make_parser

    if on_this_machine:
        make_parser().parse_args_and_config(args=argv)
    else:
        _flags_and_types(make_parser(), argv)


def _eval(argv, on_this_machine):
    from versavid_r1.eval.config import make_parser, parse_eval_args

    if any(a == "--suite" or a.startswith("--suite=") for a in argv):  # the whole table: the suite's own
        from versavid_r1.eval.suite import parse_suite_args              # flags, the rest go to every benchmark

        _, rest = parse_suite_args(argv)
        if rest:
            _flags_and_types(make_parser(), rest)
    elif on_this_machine:
        parse_eval_args(argv)
    else:
        _flags_and_types(make_parser(), argv)


def _qwen_judge(argv, on_this_machine):
    from versavid_r1.judges.settings import qwen_settings_from_args

    qwen_settings_from_args(argv)


def _caption_judge(argv, on_this_machine):
    from versavid_r1.judges.settings import caption_settings_from_args

    caption_settings_from_args(argv)


PARSERS = {("module", "versavid_r1.grpo"): _grpo, ("module", "versavid_r1.eval"): _eval,
           ("script", "src/qwen25_judge_service.py"): _qwen_judge,
           ("script", "src/gpt35_judge_service.py"): _caption_judge}


def has_parser(kind: str, name: str) -> bool:
    return (kind, name) in PARSERS


def _help(kind: str, name: str) -> str:
    """'' if `--help` exits 0 having printed a usage, else what happened."""
    out = io.StringIO()
    argv, path = sys.argv, list(sys.path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if kind == "script":
                sys.argv = [str(ROOT / name), "--help"]
                sys.path.insert(0, str((ROOT / name).parent))   # as `python path/script.py` does
                runpy.run_path(str(ROOT / name), run_name="__main__")
            else:
                sys.argv = [name, "--help"]
                runpy.run_module(name, run_name="__main__", alter_sys=True)
        return "--help returned without exiting"
    except SystemExit as stop:
        text = out.getvalue()
        if stop.code not in (0, None):
            return f"--help exited {stop.code}: {text[-500:]}"
        return "" if "usage" in text.lower() else f"--help printed no usage: {text[-300:]}"
    except BaseException as exc:  # noqa: BLE001 - any failure is the documented command's
        return f"--help failed: {type(exc).__name__}: {exc}"
    finally:
        sys.argv, sys.path[:] = argv, path


def main() -> None:
    problems = []
    for check in json.loads(Path(sys.argv[1]).read_text()):
        kind, name, argv = check["kind"], check["name"], check["argv"]
        if argv is None:
            why = _help(kind, name)
        else:
            said = io.StringIO()
            try:
                with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
                    PARSERS[(kind, name)](argv, check.get("on_this_machine", True))
                why = ""
            except SystemExit as stop:
                why = f"its parser refused the arguments (exit {stop.code}): {said.getvalue()[-300:]}"
            except Exception as exc:  # noqa: BLE001
                why = f"its parser refused the arguments: {type(exc).__name__}: {exc}"
        if why:
            problems.append(f"{check['where']}: {name}: {why}")
    print("PROBLEMS " + json.dumps(problems))


if __name__ == "__main__":
    main()
