"""The repository documents itself: no tracked file points at notes that users never get (the method and
stack notes the project was built from live outside the repository), every `docs/` page that a file
cites exists, every relative link of README.md and docs/*.md names an existing file, and every documented
command works when pasted.

Documented commands (README.md, BENCHMARKS.md, docs/*.md): every fenced block tagged `bash`. An HTML comment
on the line before the fence says what this test does with it (tests/docs_commands.py has the details):

    (none)                               run as written; must exit 0
    <!-- docs-test: services 5000 5200 -->  run; the background services it starts must answer on each port
    <!-- docs-test: parse REASON -->     not run (GPU, API key, download, long: REASON says which, or which test
                                         runs it); its programs' --help and, for the training, evaluation and
                                         judge entries, its arguments are checked by their parsers (flags and
                                         value types only when REASON names a GPU)
    <!-- docs-test: synopsis -->         a template with placeholders; the programs it names are checked

A page's run and services blocks run in order in one fresh copy of the repository (the tracked files and a
link to the environment), as a reader pastes them one after another: outputs land in the copy, services
stay up for the page's later blocks (a later services block on the same ports replaces them) and are
stopped at the end. A new block is covered as soon as it is written; mark it if it cannot run here. Every
command, in every mode, calls the project's tools by path (`.venv/bin/python`, not `python`), and so does
every command in inline code.

Which tests run the commands marked parse: the quick start (README) is the suite itself and
tests/test_run_script.py (the demo); the CPU DeepSpeed and torchrun runs (docs/training.md) are
tests/test_trainer_entry.py; the benchmark scripts (BENCHMARKS.md) are tests/test_bench_scripts.py; install.sh's
options are tests/test_install.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from docs_commands import ENV_TOOLS, Block, blocks, commands, pages, program_problems
from docs_parse_worker import has_parser

ROOT = Path(__file__).resolve().parents[1]
# Built from pieces so that this file does not match itself.
OUTSIDE_NOTES = re.compile("|".join([
    r"\b" + "SP" + r"EC\b", r"\b" + "ST" + r"ACK\b",  # the two note files, also cited without ".md"
    re.escape("../" + "shared"), re.escape("/work/" + "shared"),
]))
DOCS_LINK = re.compile(r"docs/([A-Za-z0-9_\-]+\.md)")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title") or ")".
MARKDOWN_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOC_PAGES = ("data.md", "training.md", "judges.md", "rewards.md", "evaluation.md", "reliability.md",
             "method.md", "deviations.md", "stack.md")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".json", ".toml", ".ini", ".cfg", ".txt", ""}


def tracked_paths() -> list[Path]:
    """The repository's files: git's list, or (not a git checkout) every file but the usual junk."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / n for n in out.decode().split("\0") if n and (ROOT / n).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in ROOT.rglob("*") if p.is_file() and not any(
            part.startswith(".") or part in ("outputs", "demo", "__pycache__") for part in p.relative_to(ROOT).parts)]


def tracked_text_files() -> list[Path]:
    return [p for p in tracked_paths() if p.suffix in TEXT_SUFFIXES]


def test_no_tracked_file_cites_notes_outside_the_repository():
    hits = []
    for path in tracked_text_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE_NOTES.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:120]}")
    assert not hits, "cite docs/method.md, docs/deviations.md or docs/stack.md instead:\n" + "\n".join(hits)


def test_cited_docs_pages_exist():
    for page in DOC_PAGES:
        assert (ROOT / "docs" / page).is_file(), page
    missing = set()
    for path in tracked_text_files():
        for name in DOCS_LINK.findall(path.read_text(encoding="utf-8", errors="replace")):
            if not (ROOT / "docs" / name).is_file():
                missing.add(f"{path.relative_to(ROOT)} -> docs/{name}")
    assert not missing, sorted(missing)


def markdown_pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The targets of the markdown links of `text` that are paths in the repository: code blocks and inline
    code are left out, and so are URLs (`scheme:`) and links to an anchor of the same page."""
    text = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in MARKDOWN_LINK.findall(text)
            if not t.startswith("#") and not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", t)]


def test_relative_links_of_readme_and_docs_name_existing_files():
    """Every relative link `[text](path)` or `[text](path#anchor)` of README.md and docs/*.md points at a
    file or folder that exists (relative to the page; anchors are not checked)."""
    broken = []
    for page in markdown_pages():
        for target in relative_links(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0].split("?", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_relative_links_parser():
    text = ("[a](pages/a.md) [b](b.md#x) ![c](img.png \"t\") [d](#anchor) [e](https://x.org/y) `[f](no.md)`\n"
            "```bash\n[g](no.md)\n```\n")
    assert relative_links(text) == ["pages/a.md", "b.md#x", "img.png"]


# --- documented commands -------------------------------------------------------------------------------------
RUN_TIMEOUT_S = 300        # one block; generous for a loaded machine (the slowest takes seconds idle)
SERVICE_READY_S = 180
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def all_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page)]


def test_every_block_has_a_known_mode_and_every_command_calls_the_projects_tools():
    problems = []
    for block in all_blocks():
        if block.marker_error:
            problems.append(f"{block.where}: {block.marker_error}")
        for cmd in commands(block.text):
            problems += [f"{block.where}: {cmd.text[:80]}: {p}" for p in program_problems(cmd, block.mode == "synopsis")]
    assert not problems, "\n".join(problems)


def test_commands_in_inline_code_call_the_projects_tools():
    """`python -m versavid_r1.plot RUN_DIR` in a sentence is pasted as often as a block."""
    bad = []
    for page in pages():
        text = re.sub(r"(?ms)^\s*```.*?^\s*```", "", page.read_text(encoding="utf-8"))
        for code in INLINE_CODE.findall(text):
            words = code.split()
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):   # VAR=value prefixes
                words.pop(0)
            if len(words) > 1 and words[0] in ENV_TOOLS - {"pip", "pip3"} and words[1:3] != ["-m", "venv"]:
                bad.append(f"{page.relative_to(ROOT)}: `{code}`")
    assert not bad, "call them as .venv/bin/...:\n" + "\n".join(bad)


def test_parse_blocks_pass_their_programs_help_and_parsers(tmp_path):
    """The commands that are not run here: each program's --help, and the documented arguments of the training,
    evaluation and judge entries through their own parsers (one child process for all)."""
    checks, seen, problems = [], set(), []
    for block in all_blocks():
        if block.mode not in ("parse", "synopsis"):
            continue
        for cmd in commands(block.text):
            entry = cmd.entry()
            if cmd.program == "bash" and len(cmd.words) > 1 and cmd.words[1] not in seen:
                seen.add(cmd.words[1])
                out = subprocess.run(["bash", cmd.words[1], "--help"], cwd=ROOT, capture_output=True, text=True,
                                     timeout=60)
                if out.returncode != 0:
                    problems.append(f"{block.where}: bash {cmd.words[1]} --help exited {out.returncode}")
            if entry is None or "$" in entry[1]:   # a name the shell builds (`scripts/bench/$s.py`)
                continue
            if entry not in seen:
                seen.add(entry)
                checks.append({"kind": entry[0], "name": entry[1], "argv": None, "where": block.where})
            if block.mode == "parse" and has_parser(*entry):
                checks.append({"kind": entry[0], "name": entry[1], "argv": cmd.argv(), "where": block.where,
                               "on_this_machine": "GPU" not in block.arg})
    spec = tmp_path / "checks.json"
    spec.write_text(json.dumps(checks))
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "docs_parse_worker.py"), str(spec)], cwd=ROOT,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "PROBLEMS " in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    problems += json.loads(out.stdout.split("PROBLEMS ", 1)[1])
    assert len(checks) >= 10 and any(c["argv"] is not None for c in checks)
    assert not problems, "\n".join(problems)


class Session:
    """A fresh copy of the repository in which one page's blocks run in order (see the module docstring)."""

    def __init__(self, where: Path):
        self.dir = where
        for path in tracked_paths():
            target = where / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        (where / ".venv").symlink_to(Path(sys.executable).resolve().parent.parent
                                     if not (ROOT / ".venv").exists() else (ROOT / ".venv").resolve())
        # A fresh shell: no keys that other tests of this process may have set (a documented command that
        # needs one must say so), offline, one thread per process.
        self.env = {k: v for k, v in os.environ.items() if not (k.endswith("_API_KEY") or k.startswith("VERSAVID_"))}
        self.env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        self.services: dict[int, int] = {}     # port -> process group of the block that opened it
        self.groups: list[int] = []

    def run(self, block: Block) -> None:
        for port in block.ports:
            if port in self.services:
                self._stop(self.services.pop(port))
            elif not port_is_free(port):
                pytest.skip(f"{block.where}: port {port} is taken by another process; the command binds it")
        log = self.dir / f"docs-block-{block.page.stem}-{block.line}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(["bash", "-c", "set -eo pipefail\n" + block.text], cwd=self.dir, env=self.env,
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(proc.pid)
        try:
            code = proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = "timed out"
        assert code == 0, f"{block.where} exited {code}:\n{block.text}\n--- output:\n{log.read_text()[-3000:]}"
        for port in block.ports:
            self._wait_for(port, proc.pid, block, log)
            self.services[port] = proc.pid

    def _wait_for(self, port: int, group: int, block: Block, log: Path) -> None:
        deadline = time.monotonic() + SERVICE_READY_S
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                return
            except httpx.HTTPError:
                pass
            alive = group_alive(group)
            if not alive or time.monotonic() > deadline:
                why = "its services exited" if not alive else f"nothing answered in {SERVICE_READY_S} s"
                raise AssertionError(f"{block.where}: port {port}: {why}\n--- output:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def _stop(self, group: int) -> None:
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with_stopped = time.monotonic() + wait_s
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            while group_alive(group) and time.monotonic() < with_stopped:
                time.sleep(0.1)

    def close(self) -> None:
        for group in self.groups:
            self._stop(group)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def group_alive(group: int) -> bool:
    """A live (not zombie) process is in process group `group`. The services' parent shell has exited, so
    nobody may reap them at once: `killpg(group, 0)` would count their zombies as alive."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
            return True
        except ProcessLookupError:
            return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()   # after "pid (comm)": state ppid pgrp ...
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@pytest.mark.slow
def test_documented_commands_run_as_written(tmp_path):
    """Each page's run and services blocks, in order, in a fresh copy of the repository per page. One test for
    all pages, one page after another: several pages open the judges' ports 5000 and 5200."""
    unsafe = [f"{b.where}: {b.marker_error}" for b in all_blocks() if b.marker_error]
    assert not unsafe, "nothing runs until every block is marked right:\n" + "\n".join(unsafe)
    for page in pages():
        todo = [b for b in blocks(page) if b.mode in ("run", "services")]
        if not todo:
            continue
        session = Session(tmp_path / page.stem)
        try:
            for block in todo:
                session.run(block)
        finally:
            session.close()


def test_what_runs_leave_behind_is_ignored_by_git():
    """Users' data, demo, runs and tracker folders never show up as changes to commit."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["data/train.jsonl", "wandb/offline-run-1/run.wandb", "outputs/run/model.safetensors", "demo/data/a.mp4",
             "runs/Dec07/events", "src/versavid_r1/data/new_module.py"]
    out = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.split() == paths[:-1]


def test_the_command_splitter():
    text = ("# a comment\nA=1 B='x y' .venv/bin/python x.py --k v &   # bg\nbash s.sh --a && curl -d '{\"a\":\n 1}' u\n"
            ".venv/bin/python -m versavid_r1.grpo \\\n    --config c.yaml\n")
    got = [(c.env, c.words, c.background) for c in commands(text)]
    assert got == [({"A": "1", "B": "x y"}, [".venv/bin/python", "x.py", "--k", "v"], True),
                   ({}, ["bash", "s.sh", "--a"], False), ({}, ["curl", "-d", '{"a":\n 1}', "u"], False),
                   ({}, [".venv/bin/python", "-m", "versavid_r1.grpo", "--config", "c.yaml"], False)]
    assert commands(text)[3].entry() == ("module", "versavid_r1.grpo") and commands(text)[3].argv() == [
        "--config", "c.yaml"]
