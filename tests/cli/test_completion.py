"""Shell completion for bash and zsh, as the installed `artreturns` executable gives it.

These run the real executable in a subprocess (the console script pip installed next to
this interpreter), the way a shell calls it on every Tab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXECUTABLE = Path(sys.executable).with_name("artreturns")

pytestmark = pytest.mark.skipif(
    not EXECUTABLE.is_file(),
    reason=f"the artreturns console script is not installed at {EXECUTABLE}",
)


def complete(words: str, shell: str = "bash") -> list[str]:
    """What the shell would offer after `words` (the last word is being completed)."""
    parts = words.split(" ")
    env = {
        **os.environ,
        "_ARTRETURNS_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    done = subprocess.run(
        [str(EXECUTABLE)], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if "," in line]


def test_commands_complete() -> None:
    assert complete("artreturns no") == ["notices"]
    assert {"orders", "evidence", "returns"} <= set(complete("artreturns "))


def test_subcommands_and_options_complete() -> None:
    assert complete("artreturns notices ") == ["list", "send", "show"]
    assert "--pending" in complete("artreturns notices list --")


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "#compdef")])
def test_the_completion_script_is_printed_for_each_shell(shell: str, marker: str) -> None:
    env = {**os.environ, "_ARTRETURNS_COMPLETE": f"{shell}_source"}
    done = subprocess.run(
        [str(EXECUTABLE)], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert marker in done.stdout
    assert "_ARTRETURNS_COMPLETE" in done.stdout
