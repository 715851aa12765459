"""Check the training flags and YAML keys in about a second, before anything slow: the launcher's first step.

    python -m versavid_r1.flag_check --config configs/grpo_tiny_cpu.yaml [--flag value ...]

The training entry parses its options with TRL's `TrlParser` over `ScriptArguments`, `GRPOConfig` and
`ModelConfig`; importing those takes torch, transformers and TRL (15-30 s on a busy machine), so a
mistyped `--max_stepz 2` used to fail only after the launcher had built its data, started its judges and
imported everything. Here the option names are read from the dataclasses' source with `ast` (the same
fields `HfArgumentParser` turns into flags: `--name`, `--name-with-dashes`, `--no_name` for booleans that
default to true, metadata aliases, unique prefixes), nothing is imported, and:

- a flag or YAML key that is no option: one line naming it (and the closest options), exit 2;
- a numeric option outside its domain (`versavid_r1.training_options`): one line, exit 2;
- else exit 0 and no output. Everything else is checked by the entry itself, before the model loads.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from pathlib import Path
from typing import Iterable, Optional, Sequence

# The dataclasses TrlParser reads for `python -m versavid_r1.grpo` (see versavid_r1.grpo.make_parser).
TRAINING_DATACLASSES = (("versavid_r1.trainer.args", "ScriptArguments"), ("trl.trainer.grpo_config", "GRPOConfig"),
                        ("trl.trainer.model_config", "ModelConfig"))
PARSER_FLAGS = ("config", "help")


class FlagError(ValueError):
    """A flag, YAML key or value the training entry would refuse; the message names it."""


def _module_file(module: str) -> Optional[Path]:
    """The source file of `module`, found without importing it or its packages."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*rest)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts[: len(parts) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _aliases(value: Optional[ast.expr]) -> list[str]:
    """`aliases` of a `field(metadata={...})` call, when written as literals."""
    if not isinstance(value, ast.Call):
        return []
    for kw in value.keywords:
        if kw.arg == "metadata" and isinstance(kw.value, ast.Dict):
            for k, v in zip(kw.value.keys, kw.value.values):
                if isinstance(k, ast.Constant) and k.value == "aliases":
                    try:
                        found = ast.literal_eval(v)
                    except ValueError:
                        return []
                    return [found] if isinstance(found, str) else list(found)
    return []


def _default_true(value: Optional[ast.expr]) -> bool:
    if isinstance(value, ast.Constant):
        return value.value is True
    if isinstance(value, ast.Call):
        return any(kw.arg == "default" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                   for kw in value.keywords)
    return False


def _fields(module: str, cls: str, seen: set) -> dict[str, tuple[bool, list[str]]]:
    """{field: (a boolean defaulting to true, its aliases)} of `module.cls`, base classes first (a subclass's
    own declaration of a field replaces the base's)."""
    if (module, cls) in seen:
        return {}
    seen.add((module, cls))
    path = _module_file(module)
    if path is None:
        return {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    classdef = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), None)
    if classdef is None:  # a re-export, e.g. transformers' `from .training_args import TrainingArguments`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == cls for a in node.names):
                name = next(a.name for a in node.names if (a.asname or a.name) == cls)
                return _fields(_absolute(module, node, is_package), name, seen)
        return {}
    imported = {(a.asname or a.name): (_absolute(module, n, is_package), a.name)
                for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    fields: dict[str, tuple[bool, list[str]]] = {}
    for base in classdef.bases:
        if isinstance(base, ast.Name):
            fields.update(_fields(*imported.get(base.id, (module, base.id)), seen))
    for stmt in classdef.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            true_bool = _default_true(stmt.value) and "bool" in ast.unparse(stmt.annotation)
            fields[stmt.target.id] = (true_bool, _aliases(stmt.value))
    return fields


def dataclass_flags(module: str, cls: str) -> set[str]:
    """The flags (without dashes) `HfArgumentParser` makes of `module.cls`: `--name`, `--name-with-dashes`,
    aliases, and `--no_name` for a boolean that defaults to true."""
    flags: set[str] = set()
    for name, (true_bool, aliases) in _fields(module, cls, set()).items():
        flags |= {name, name.replace("_", "-"), *(a.lstrip("-") for a in aliases)}
        if true_bool:
            flags |= {f"no_{name}", f"no-{name.replace('_', '-')}"}
    return flags


def training_flags() -> set[str]:
    flags = set(PARSER_FLAGS)
    for module, cls in TRAINING_DATACLASSES:
        found = dataclass_flags(module, cls)
        if not found:  # a library moved its classes: let the real parser decide
            return set()
        flags |= found
    return flags


def _resolve(name: str, known: set[str]) -> str:
    """`name` as argparse reads it: exact, or the unique option it abbreviates; FlagError otherwise."""
    if name in known:
        return name
    matches = [k for k in known if k.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""
    if len(matches) > 1:
        raise FlagError(f"--{name} is ambiguous: {', '.join('--' + m for m in sorted(matches)[:5])}")
    raise FlagError(f"--{name} is not a training option{hint}")


def given_options(argv: Sequence[str]) -> tuple[Optional[str], dict[str, list[str]]]:
    """(the --config path, {flag name: its values}) of a training command line."""
    config, given, current = None, {}, None
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("--") and len(token) > 2:
            name, _, value = token[2:].partition("=")
            if name == "config":
                config = value or (args[i + 1] if i + 1 < len(args) else None)
                i += 1 if value else 2
                current = None
                continue
            current = given.setdefault(name, [])
            if value:
                current.append(value)
        elif current is not None:
            current.append(token)
        i += 1
    return config, given


def check(argv: Sequence[str], known: Optional[Iterable[str]] = None) -> None:
    """Raise FlagError for the first unknown flag or YAML key, or option value outside its domain."""
    import yaml

    from versavid_r1.training_options import GRPO_BOUNDS, MODEL_BOUNDS, SCRIPT_BOUNDS

    known = set(known) if known is not None else training_flags()
    if not known:
        return
    config, given = given_options(argv)
    values: dict[str, object] = {}
    if config:
        with open(config, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise FlagError(f"{config} must hold a YAML mapping of training options")
        for key, value in data.items():
            if key == "env":
                continue
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=3)
                raise FlagError(f"{config}: {key!r} is not a training option"
                                + (f" (did you mean {', '.join(close)}?)" if close else ""))
            values[key] = value
    for name, vals in given.items():
        if name in ("h", "help"):
            continue
        values[_resolve(name, known).replace("-", "_")] = vals[0] if len(vals) == 1 else vals
    for bound in (*SCRIPT_BOUNDS, *GRPO_BOUNDS, *MODEL_BOUNDS):
        if bound.name in values and values[bound.name] is not None and not isinstance(values[bound.name], list):
            try:
                number = float(values[bound.name])
            except (TypeError, ValueError):
                continue  # the real parser names a value of the wrong type
            if not bound.ok(int(number) if number.is_integer() and bound.also else number):
                raise FlagError(f"--{bound.name} must be {bound.rule()}, got {values[bound.name]!r}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        check(sys.argv[1:] if argv is None else argv)
    except (FlagError, OSError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
