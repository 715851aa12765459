"""Prompt templates of the AutoDQ caption judge: the project's own (default) or a user's file.

Published DREAM-1K numbers come from the benchmark's own prompts, which this repository does not ship. A
user who holds them writes them into a YAML or JSON file and starts the caption judge with
`--prompt-file FILE` (plus `--scoring official` for DREAM-1K's scoring rules). The file maps names to
templates::

    extract: "... {caption} ..."            # required: the event extraction prompt (user message)
    entail: "... {caption} ... {events} ..."  # required: the entailment prompt (user message)
    extract_system: "..."                   # optional system message of extraction (absent: none)
    entail_system: "..."                    # optional system message of entailment (absent: none)
    retry_note: "... {error} ..."           # optional note sent before retrying a malformed reply
    events_format: numbered                 # how {events} is written: numbered | python_list | json_list

Placeholders are `{name}` with the names below; every other brace is literal text, so JSON examples in
a prompt need no escaping. `{caption}` is the caption being read (entailment: the caption checked against
the events), `{events}` the event list, `{max_events}` the event limit, `{error}` what was wrong with
the last reply. The file is validated when the service starts: a missing template or a missing or
unknown placeholder is an error that names them. Substitution is one pass, so a caption that contains
`{events}` stays literal text. Untrusted texts are defused (`prompting.neutralise`) as with the
project's prompts.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

import yaml

from .. import prompts

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
EVENTS_FORMATS: tuple[str, ...] = ("numbered", "python_list", "json_list")
# template name -> (placeholders it must use, placeholders it may use)
PLACEHOLDERS: dict[str, tuple[frozenset, frozenset]] = {
    "extract": (frozenset({"caption"}), frozenset({"caption", "max_events"})),
    "entail": (frozenset({"caption", "events"}), frozenset({"caption", "events"})),
    "extract_system": (frozenset(), frozenset()),
    "entail_system": (frozenset(), frozenset()),
    "retry_note": (frozenset(), frozenset({"error"})),
}
REQUIRED_TEMPLATES: tuple[str, ...] = ("extract", "entail")


def render(template: str, **values: object) -> str:
    """`template` with each `{name}` of `values` replaced in one pass; other braces stay as they are."""
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def check_template(name: str, template: str) -> None:
    """Raise ValueError naming the missing and unknown placeholders of one template."""
    required, allowed = PLACEHOLDERS[name]
    used = set(PLACEHOLDER.findall(template))
    problems = []
    missing = sorted(required - used)
    if missing:
        problems.append("missing placeholder(s) " + ", ".join("{%s}" % p for p in missing))
    unknown = sorted(used - allowed)
    if unknown:
        problems.append("unknown placeholder(s) " + ", ".join("{%s}" % p for p in unknown)
                        + " (allowed: " + (", ".join("{%s}" % p for p in sorted(allowed)) or "none") + ")")
    if problems:
        raise ValueError(f"template '{name}': " + "; ".join(problems))


def format_events(events: Sequence[str], style: str) -> str:
    if style == "numbered":
        return "\n".join(f"{i}. {e}" for i, e in enumerate(events, 1))
    if style == "python_list":
        return repr(list(events))
    return json.dumps(list(events), ensure_ascii=False)


@dataclass(frozen=True)
class AutoDQPrompts:
    """One set of AutoDQ templates (see the module docstring); `source` names where it came from."""

    extract: str
    entail: str
    extract_system: str = ""
    entail_system: str = ""
    retry_note: str = prompts.AUTODQ_RETRY_NOTE
    events_format: str = "numbered"
    source: str = "project"

    def __post_init__(self) -> None:
        for name in PLACEHOLDERS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"template '{name}' must be a string, got {type(value).__name__}")
            check_template(name, value)
        for name in REQUIRED_TEMPLATES:
            if not getattr(self, name).strip():
                raise ValueError(f"template '{name}' is empty")
        if self.events_format not in EVENTS_FORMATS:
            raise ValueError(f"events_format must be one of {EVENTS_FORMATS}, got {self.events_format!r}")

    def _messages(self, system: str, user: str) -> list[dict]:
        head = [{"role": "system", "content": system}] if system.strip() else []
        return head + [{"role": "user", "content": user}]

    def extract_messages(self, caption: str, max_events: int) -> list[dict]:
        from .prompting import neutralise

        return self._messages(self.extract_system, render(self.extract, caption=neutralise(caption),
                                                          max_events=max_events))

    def entail_messages(self, caption: str, events: Sequence[str]) -> list[dict]:
        from .prompting import neutralise

        listing = format_events([neutralise(e) for e in events], self.events_format)
        return self._messages(self.entail_system, render(self.entail, caption=neutralise(caption), events=listing))

    def retry_message(self, error: str) -> str:
        return render(self.retry_note, error=error)


PROJECT_PROMPTS = AutoDQPrompts(
    extract=prompts.AUTODQ_EXTRACT_TEMPLATE, entail=prompts.AUTODQ_ENTAIL_TEMPLATE,
    extract_system=prompts.AUTODQ_EXTRACT_SYSTEM, entail_system=prompts.AUTODQ_ENTAIL_SYSTEM,
)
FILE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(AutoDQPrompts) if f.name != "source")


def load_prompt_file(path: Optional[str]) -> AutoDQPrompts:
    """The templates of `path` (YAML or JSON), or the project's when `path` is None. Errors name the file
    and what is wrong with it."""
    if not path:
        return PROJECT_PROMPTS
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))  # YAML is a superset of JSON: one loader
    except OSError as exc:
        raise ValueError(f"--prompt-file {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--prompt-file {path}: not valid YAML/JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--prompt-file {path}: expected a mapping of template names to texts")
    unknown = sorted(set(map(str, data)) - set(FILE_KEYS))
    missing = [k for k in REQUIRED_TEMPLATES if k not in data]
    if unknown or missing:
        parts = ([f"missing template(s) {missing}"] if missing else []) + (
            [f"unknown key(s) {unknown}"] if unknown else [])
        raise ValueError(f"--prompt-file {path}: " + "; ".join(parts) + f" (keys: {list(FILE_KEYS)})")
    values = {k: ("" if v is None else v) for k, v in data.items()}
    try:
        return AutoDQPrompts(**values, source=str(p.resolve()))
    except ValueError as exc:
        raise ValueError(f"--prompt-file {path}: {exc}") from None
