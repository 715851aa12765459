"""The commands of README.md, BENCHMARKS.md and docs/*.md, read the way tests/test_docs.py runs them.

A documented command block is a fenced code block tagged `bash`. What the test does with it is said by an
HTML comment on the line before the fence (invisible on GitHub):

    (no comment)                         run: executed as written, must exit 0
    <!-- docs-test: services 5000 5200 -->  run; it starts services in the background (`... &`): each port
                                         must answer HTTP (`/health`); they stay up for the page's later
                                         blocks, and a later services block on the same ports replaces them
    <!-- docs-test: parse REASON -->     not run (a GPU, an API key, a download, an hour; REASON says which,
                                         or which test runs it): every command is checked without running it
                                         (a REASON that names a GPU: no device-dependent checks)
    <!-- docs-test: synopsis -->         a template with placeholders (PATH, ..., [--flag value], $VAR):
                                         the programs it names are checked

Every mode checks each command's program: the project's interpreters are called by path
(`.venv/bin/python`, `.venv/bin/torchrun`, as after the README's two commands, without activating anything),
and the scripts, modules and config files it names exist. `parse` blocks also have each program's `--help`
run, and the argv of the entries whose parser is cheap to call checked by that parser.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
MODES = ("run", "services", "parse", "synopsis")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")
CONTROL = {"&&", "||", ";", "&", "|", ";;", "(", ")"}
# Bare interpreters and tools that live in the project's environment: a pasted command must call them by path.
ENV_TOOLS = {"python", "python3", "pip", "pip3", "pytest", "torchrun", "accelerate", "deepspeed", "tensorboard"}
SHELL_BUILTINS = {"export", "cd", "for", "do", "done", "if", "then", "fi", "echo", "set", "source", "wait",
                  "kill", "sleep", "true", "false"}


def pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Block:
    page: Path
    line: int                      # of the opening fence
    mode: str
    arg: str                       # the reason (parse), the ports (services)
    text: str
    marker_error: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def ports(self) -> list[int]:
        return [int(p) for p in self.arg.split()] if self.mode == "services" else []


def blocks(page: Path) -> list[Block]:
    """The `bash` blocks of a markdown page, with their mode."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            j += 1
        if info == "bash":
            body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j])
            previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            marker = MARKER.match(previous)
            mode, arg = (marker.group(1), marker.group(2)) if marker else ("run", "")
            out.append(Block(page, i + 1, mode, arg, body, _marker_error(mode, arg, body)))
        i = j + 1
    return out


def _marker_error(mode: str, arg: str, body: str) -> Optional[str]:
    if mode not in MODES:
        return f"unknown docs-test mode {mode!r} (one of {', '.join(MODES)})"
    if mode == "parse" and not arg:
        return "a parse block says why it is not run (<!-- docs-test: parse GPU only -->)"
    if mode == "services" and not re.fullmatch(r"\d+( \d+)*", arg):
        return "a services block lists the ports it opens (<!-- docs-test: services 5000 5200 -->)"
    if mode == "run" and any(cmd.background for cmd in commands(body)):
        return "it starts a background process: mark it <!-- docs-test: services PORT ... --> (or parse)"
    if mode in ("run", "services") and any(_installs(cmd) for cmd in commands(body)):
        return ("it installs into the environment, which the test's copy shares with the real checkout: "
                "mark it <!-- docs-test: parse REASON -->")
    return None


def _installs(cmd: "Command") -> bool:
    """Would change the (shared) environment: install.sh, the launcher that runs it, pip install/uninstall."""
    words = [Path(w).name for w in cmd.words]
    if "install.sh" in words or ("run_qwen25vl_train.sh" in words and cmd.env.get("SKIP_INSTALL") != "1"):
        return True
    return any(w in ("pip", "pip3") for w in words) and any(w in ("install", "uninstall") for w in words)


@dataclass
class Command:
    """One simple command of a block: its environment assignments, words, and whether it ends with `&`."""

    env: dict[str, str]
    words: list[str]
    background: bool = False
    text: str = ""

    @property
    def program(self) -> str:
        return self.words[0] if self.words else ""

    def entry(self) -> Optional[tuple[str, str]]:
        """("script", path) or ("module", name) for a python/torchrun command, else None."""
        if not self.words or Path(self.program).name not in ("python", "python3", "torchrun"):
            return None
        rest = self.words[1:]
        for k, word in enumerate(rest):
            if word == "-m" and k + 1 < len(rest):
                return "module", rest[k + 1]
            if word == "-c":
                return None
            if not word.startswith("-") and word.endswith(".py"):
                return "script", word
        return None

    def argv(self) -> list[str]:
        """The arguments after the script or module."""
        kind, name = self.entry() or ("", "")
        words = self.words
        k = words.index("-m") + 2 if kind == "module" else words.index(name) + 1
        return words[k:]


@dataclass
class _Splitter:
    current: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    def flush(self, background: bool = False) -> None:
        words, env = list(self.current), {}
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        if words:
            self.commands.append(Command(env, words, background, shlex.join(words)))
        self.current = []


def _one_line(text: str) -> str:
    """`text` with line continuations joined, comments dropped and the other newlines turned into `;`
    (quotes respected: a quoted JSON body may span lines)."""
    out, quote, i = [], "", 0
    text = text.replace("\\\n", " ")
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                out.append(ch)
                i += 1
                ch = text[i] if i < len(text) else ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (not out or out[-1] in " \t\n;"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif ch == "\n":
            out.extend(" ; ")
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def commands(text: str) -> list[Command]:
    """The simple commands of a shell text, split at `&&`, `;`, `&`, `|`..."""
    splitter = _Splitter()
    lexer = shlex.shlex(_one_line(text), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    for token in lexer:
        if token in CONTROL:
            splitter.flush(background=token == "&")
        else:
            splitter.current.append(token)
    splitter.flush()
    return splitter.commands


def program_problems(cmd: Command, synopsis: bool = False) -> list[str]:
    """What a reader pasting `cmd` at the repository root would trip over, read without running it."""
    problems = []
    program = cmd.program
    if program in ENV_TOOLS and cmd.words[1:3] != ["-m", "venv"]:
        problems.append(f"`{program}` is not on a fresh shell's PATH: call it as .venv/bin/{program}")
    elif "/" in program and not program.startswith(("/", "$", "~")) and not (ROOT / program).exists():
        problems.append(f"{program} does not exist (after the README's set-up)")
    entry = cmd.entry()
    if entry and "$" not in entry[1]:   # a name built by the shell (`scripts/bench/$s.py`) is not checked
        kind, name = entry
        if kind == "script" and not (ROOT / name).is_file():
            problems.append(f"no script {name}")
        if kind == "module":
            import importlib.util

            if importlib.util.find_spec(name) is None:
                problems.append(f"no module {name}")
    if program == "bash" and len(cmd.words) > 1 and not (ROOT / cmd.words[1]).is_file():
        problems.append(f"no script {cmd.words[1]}")
    if not synopsis:   # files the command names: configs, scripts (templates name placeholders instead)
        for flag, value in zip(cmd.words, cmd.words[1:]):
            if flag in ("--config", "--deepspeed") and not (ROOT / value).is_file():
                problems.append(f"{flag} {value}: no such file")
    return problems
