"""`source scripts/bootstrap`, as the README says, in an interactive shell.

Defect 10: it used to run `set -euo pipefail` in the caller's shell, so the
next failing command closed that shell. The bootstrap here is copied into a
scratch checkout with a stand-in .venv, so nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support import REPO

# Prints the shell's flags and set -o state before and after, then fails a
# command: an interactive shell must survive it.
PROBE = """
echo "before=$- $(shopt -o pipefail nounset errexit | tr -s ' \\t' ':' | tr '\\n' ',')"
source "$ROOT/scripts/bootstrap"
echo "status=$?"
echo "after=$- $(shopt -o pipefail nounset errexit | tr -s ' \\t' ':' | tr '\\n' ',')"
echo "path=${PATH%%:*}"
echo "leftover=$(compgen -v _centrid || true)"
false
echo "still alive"
"""


def scratch_checkout(tmp_path: Path, with_venv: bool) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap", root / "scripts" / "bootstrap")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    if with_venv:
        python = root / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("#!/bin/sh\nexit 0\n")
        python.chmod(0o755)
        stamp = root / ".venv" / ".centrid-installed"
        stamp.touch()
        os.utime(root / "pyproject.toml", (0, 0))  # older than the stamp: nothing to install
    return root


def interactive(root: Path, **env: str) -> dict[str, str]:
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-i", "-c", PROBE],
        env={**os.environ, "ROOT": str(root), **env}, cwd=root, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    lines["alive"] = str("still alive" in result.stdout)
    lines["stderr"] = result.stderr
    return lines


def test_sourcing_it_leaves_the_interactive_shells_options_alone(tmp_path: Path) -> None:
    root = scratch_checkout(tmp_path, with_venv=True)
    out = interactive(root)
    assert out["status"] == "0", out
    assert "i" in out["before"]  # really an interactive shell
    assert out["after"] == out["before"], out
    assert "errexit:off" in out["after"] and "nounset:off" in out["after"] and "pipefail:off" in out["after"]
    assert out["path"] == str(root / ".venv" / "bin")
    assert out["leftover"] == ""
    assert out["alive"] == "True", out


def test_a_failed_install_returns_non_zero_and_the_shell_lives_on(tmp_path: Path) -> None:
    root = scratch_checkout(tmp_path, with_venv=False)
    out = interactive(root, PYTHON="false")  # `false -m venv` fails
    assert out["status"] == "1", out
    assert out["after"] == out["before"], out
    assert out["path"] != str(root / ".venv" / "bin")
    assert out["alive"] == "True", out
    assert "installing into" in out["stderr"]


def test_scripts_that_source_it_still_stop_on_a_failed_install(tmp_path: Path) -> None:
    """scripts/serve and scripts/test run under set -euo pipefail themselves."""
    root = scratch_checkout(tmp_path, with_venv=False)
    result = subprocess.run(
        ["bash", "-c", 'set -euo pipefail; source "$ROOT/scripts/bootstrap"; echo "went on"'],
        env={**os.environ, "ROOT": str(root), "PYTHON": "false"}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "went on" not in result.stdout
