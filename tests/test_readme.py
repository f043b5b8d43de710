"""The README's ```sh blocks run as written: every command that needs no server, in order,
through the real command line, in a scratch directory that sees the repository's files."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

README = ROOT / "README.md"

# Commands not run here, by prefix, and why. A command that matches none of these and is
# not a `screening` command fails the test, so a new kind of command is never skipped silently.
SKIPPED = {
    "make ": "builds the venv and runs the suite this test is part of",
    "CPPFLAGS=": "installs packages",
    "pip ": "installs packages",
    "screening serve": "starts a server; tests/test_server.py runs one",
    "curl ": "needs a running server",
    "python bench/": "a benchmark, minutes long; see bench/README.md",
}
# Only to keep the run short: the README's sizes are for a real machine.
SUBSTITUTIONS = {"--count 100000": "--count 300"}


def sh_commands(text: str) -> list[str]:
    """Each command of each ```sh block, with backslash continuations joined."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if shlex.split(line, comments=True):
                commands.append(line.strip())
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """One README command, as a shell would run it: `cat FILE |` becomes stdin, `> FILE` stdout."""
    for old, new in SUBSTITUTIONS.items():
        command = command.replace(old, new)
    words = shlex.split(command, comments=True)
    stdin = b""
    if "|" in words:
        at = words.index("|")
        assert words[:at][0] == "cat" and len(words[:at]) == 2, f"a pipe the test cannot run: {command}"
        stdin = (cwd / words[1]).read_bytes()
        words = words[at + 1 :]
    stdout_file = None
    if ">" in words:
        at = words.index(">")
        stdout_file, words = cwd / words[at + 1], words[:at]
    if words[0] == "screening":
        argv = [sys.executable, "-m", "screening", *words[1:]]
    elif words[:3] == ["python", "-m", "screening"]:
        argv = [sys.executable, *words[1:]]
    else:
        raise AssertionError(
            f"a README command the test does not know: add it to SKIPPED, with why: {command}"
        )
    done = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True)
    if stdout_file is not None:
        stdout_file.write_bytes(done.stdout)
    return done


def test_the_readme_has_the_commands_this_test_expects() -> None:
    commands = sh_commands(README.read_text())
    assert any(c.startswith("screening check") for c in commands)
    assert any(c.startswith("screening batch") for c in commands)
    assert sh_commands("```sh\na \\\n  b  # c\n\n# d\n```\n```python\nx\n```\n") == ["a    b  # c"]


def test_every_readme_command_that_needs_no_server_runs(tmp_path: Path) -> None:
    for entry in ROOT.iterdir():  # the repository's files, and outputs land in tmp_path
        if not entry.name.startswith("."):
            (tmp_path / entry.name).symlink_to(entry)
    failures = []
    for command in sh_commands(README.read_text()):
        if skip_reason(command) is not None:
            continue
        done = run(command, tmp_path)
        if done.returncode != 0:
            failures.append(f"{command}\n  exit {done.returncode}: {done.stderr.decode()[-600:]}")
    assert not failures, "\n".join(failures)


def test_the_files_skipped_commands_read_exist() -> None:
    for command in sh_commands(README.read_text()):
        if skip_reason(command) is None:
            continue
        for word in shlex.split(command, comments=True):
            path = word.removeprefix("@")
            if word.startswith("@") or path.startswith(("examples/", "tests/", "rules/")):
                assert (ROOT / path).exists(), f"{command}: {path} is not in the repository"
