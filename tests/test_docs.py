"""The repository documents itself: no tracked file points at notes that users never get (the method and
stack notes the project was built from live outside the repository), every `docs/` page that a file
cites exists, every relative link of README.md and docs/*.md names an existing file, and the documented
CPU training commands parse."""
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
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title") or ")".
MARKDOWN_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOC_PAGES = ("data.md", "training.md", "judges.md", "rewards.md", "evaluation.md", "reliability.md",
             "method.md", "deviations.md", "stack.md")
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


def documented_training_commands() -> list[list[str]]:
    """The training commands in the code blocks of README.md and docs/*.md (continuations joined), as argv
    after `-m versavid_r1.grpo`; commands with placeholders (`...`, `<setup>`, `$VAR`) are left out."""
    import shlex

    blocks = []
    for page in markdown_pages():
        blocks += re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    commands = []
    for block in blocks:
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split("#")[0].strip()
            if "-m versavid_r1.grpo" in command and not re.search(r"\.\.\.|<|\$|\[", command):
                commands.append(shlex.split(command.split("-m versavid_r1.grpo", 1)[1]))
    return commands


def test_documented_cpu_training_commands_parse_and_name_existing_files():
    """The CPU training commands of README.md and docs/*.md (docs/training.md, "CPU runs") as written (they
    were run end to end when written; the slow tests of test_trainer_entry.py run torchrun and DeepSpeed
    with the same config)."""
    from versavid_r1.grpo import make_parser

    commands = [c for c in documented_training_commands() if "configs/grpo_tiny_cpu.yaml" in c]
    assert len(commands) >= 2  # DeepSpeed on one process, torchrun with two
    for argv in commands:
        script, training, model = make_parser().parse_args_and_config(args=argv)
        for flag in ("--config", "--deepspeed"):
            if flag in argv:
                assert (ROOT / argv[argv.index(flag) + 1]).is_file(), (flag, argv)


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
