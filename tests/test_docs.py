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
    r"\b" + "SP" + r"EC\b", r"\b" + "ST" + r"ACK\b",          # SPEC.md / STACK.md, also "SPEC:" or "see STACK"
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
