"""scripts/install.sh's stamp and progress, on a stand-in environment (no pip is run).

The stand-in `bin/python` records every call and succeeds, so the script's decisions are visible: a stamp
that covers the request (same inputs, the asked-for extras and gpu among those installed) ends the run
before any pip call; anything else runs pip and writes the new stamp. While pip runs, a heartbeat line
reports the time elapsed (the stand-in pip returns once that line has been written: no clock in the test).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [[ "$1 $2" == "-m pip" && -n "${WAIT_FOR_HEARTBEAT:-}" ]]; then
  for _ in $(seq 1200); do grep -q "pip still working" "$WAIT_FOR_HEARTBEAT" && exit 0; sleep 0.05; done
  exit 1
fi
exit 0
"""


def inputs_hash() -> str:
    data = b"".join((ROOT / p).read_bytes() for p in ("setup.py", "qwen-vl-utils/setup.py", "scripts/install.sh"))
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def venv(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path / "venv"


def install(venv: Path, *flags: str, out: Path, **env) -> list[str]:
    """Run install.sh on the stand-in venv; returns the stand-in python's calls."""
    log = venv / "calls.log"
    log.write_text("")
    with open(out, "w") as fh:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), *flags], cwd=ROOT, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=120,
                              env={**os.environ, "VENV": str(venv), "FAKE_LOG": str(log), **env})
    assert proc.returncode == 0, out.read_text()
    return log.read_text().splitlines()


def pip_calls(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("-m pip")]


@pytest.mark.parametrize("installed,flags", [
    ("gpu0 dev,tracking", []),                       # after --tracking, the launcher's plain install
    ("gpu1 dev", []),                                # after --gpu
    ("gpu1 dev,tracking", ["--gpu"]),
    ("gpu0 dev,tracking", ["--tracking"]),
])
def test_an_install_that_covers_the_request_is_up_to_date(venv, tmp_path, installed, flags):
    (venv / ".versavid_install_stamp").write_text(f"{inputs_hash()} {installed}\n")
    out = tmp_path / "out.txt"
    calls = install(venv, *flags, out=out)
    assert pip_calls(calls) == [] and "is up to date" in out.read_text(), calls


@pytest.mark.parametrize("installed,flags,extras", [
    ("gpu0 dev", ["--tracking"], "dev,tracking"),    # an extra that is not installed
    (None, [], "dev"),                               # no stamp
])
def test_an_install_that_lacks_something_runs_pip_and_stamps_what_it_installed(venv, tmp_path, installed, flags,
                                                                                extras):
    stamp = venv / ".versavid_install_stamp"
    if installed:
        stamp.write_text(f"{inputs_hash()} {installed}\n")
    calls = install(venv, *flags, out=tmp_path / "out.txt")
    assert any(f".[{extras}]" in c for c in pip_calls(calls)), calls
    assert stamp.read_text().split() == [inputs_hash(), "gpu0", extras]


def test_changed_inputs_reinstall(venv, tmp_path):
    (venv / ".versavid_install_stamp").write_text(f"{'0' * 64} gpu1 dev,tracking\n")
    assert pip_calls(install(venv, out=tmp_path / "out.txt"))


def test_pip_steps_show_progress(venv, tmp_path):
    out = tmp_path / "out.txt"
    install(venv, out=out, HEARTBEAT_S="0.2", WAIT_FOR_HEARTBEAT=str(out))
    text = out.read_text()
    assert "s  versavid-r1[dev] and qwen-vl-utils (editable)" in text      # a phase line with the time
    assert "pip still working" in text and "s  done" in text, text
