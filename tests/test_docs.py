"""The repository documents itself: no tracked file points at notes that users never get (the method and
stack notes the project was built from live outside the repository), and every `docs/` page that a file
cites exists."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Built from pieces so that this file does not match itself.
OUTSIDE_NOTES = re.compile("|".join([
    r"\b" + "SP" + r"EC\b", r"\b" + "ST" + r"ACK\b",  # the two note files, also cited without ".md"
    re.escape("../" + "shared"), re.escape("/work/" + "shared"),
]))
DOCS_LINK = re.compile(r"docs/([A-Za-z0-9_\-]+\.md)")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".json", ".toml", ".ini", ".cfg", ".txt", ""}


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but the usual junk
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                 and not any(part.startswith(".") or part in ("outputs", "demo", "__pycache__")
                             for part in p.relative_to(ROOT).parts)]
    files = [ROOT / n for n in names]
    return [p for p in files if p.is_file() and p.suffix in TEXT_SUFFIXES]


def test_no_tracked_file_cites_notes_outside_the_repository():
    hits = []
    for path in tracked_text_files():
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE_NOTES.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:120]}")
    assert not hits, "cite docs/method.md, docs/deviations.md or docs/stack.md instead:\n" + "\n".join(hits)


def test_cited_docs_pages_exist():
    for page in ("method.md", "deviations.md", "stack.md"):
        assert (ROOT / "docs" / page).is_file(), page
    missing = set()
    for path in tracked_text_files():
        for name in DOCS_LINK.findall(path.read_text(encoding="utf-8", errors="replace")):
            if not (ROOT / "docs" / name).is_file():
                missing.add(f"{path.relative_to(ROOT)} -> docs/{name}")
    assert not missing, sorted(missing)


def readme_training_commands() -> list[list[str]]:
    """The training commands in README code blocks (continuations joined), as argv after `-m versavid_r1.grpo`;
    commands with placeholders (`...`, `<setup>`, `$VAR`) are left out."""
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    commands = []
    for block in blocks:
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split("#")[0].strip()
            if "-m versavid_r1.grpo" in command and not re.search(r"\.\.\.|<|\$|\[", command):
                commands.append(shlex.split(command.split("-m versavid_r1.grpo", 1)[1]))
    return commands


def test_readme_cpu_training_commands_parse_and_name_existing_files():
    """The README's CPU commands as written (they were run end to end when written; the slow tests of
    test_trainer_entry.py run torchrun and DeepSpeed with the same config)."""
    from versavid_r1.grpo import make_parser

    commands = [c for c in readme_training_commands() if "configs/grpo_tiny_cpu.yaml" in c]
    assert len(commands) >= 2  # DeepSpeed on one process, torchrun with two
    for argv in commands:
        script, training, model = make_parser().parse_args_and_config(args=argv)
        for flag in ("--config", "--deepspeed"):
            if flag in argv:
                assert (ROOT / argv[argv.index(flag) + 1]).is_file(), (flag, argv)
