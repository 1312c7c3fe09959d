"""The stack owns its children (issue 18): killed with SIGKILL, it leaves no emulator, no
fake-gcs-server and no gunicorn behind; a second Ctrl-C stops it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from polling import wait_for

pytestmark = pytest.mark.stack

START_SECONDS = 120  # two JVMs, fake-gcs-server and six gunicorns on a loaded 2-core machine
GONE_SECONDS = 30  # a gunicorn worker notices its master is gone within a second or two


def process_start(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None when it is gone or a zombie:
    with the pid it names one process, even if the pid is reused."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every living process below ``root``, pid -> start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        start = process_start(pid)
        if start is not None:
            found[pid] = start
            pending += children.get(pid, [])
    return found


def start_stack(tmp_path: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "panoptes_network", "stack", "--log-dir", str(tmp_path / "logs")]
    stack = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert stack.stdout is not None
    seen = []
    for line in stack.stdout:  # the stack prints "Ready in ..." once everything answers
        seen.append(line)
        if line.startswith("Ready in"):
            return stack
    stack.wait(START_SECONDS)
    pytest.fail("the stack exited before it was ready:\n" + "".join(seen[-40:]))


def survivors(children: dict[int, str]) -> list[int]:
    return [pid for pid, start in children.items() if process_start(pid) == start]


def test_sigkill_of_the_stack_leaves_no_child(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    children = descendants(stack.pid)
    # pubsub and firestore emulators, fake-gcs-server, and a master + worker per service
    assert len(children) >= 3 + 2 * 6, children
    print(f"stack {stack.pid} with {len(children)} descendants, killed with SIGKILL")
    stack.kill()
    stack.wait(10)
    wait_for(
        lambda: survivors(children), "every child of the SIGKILLed stack gone", GONE_SECONDS, until=lambda s: not s
    )


def test_a_second_interrupt_stops_the_stack_at_once(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    children = descendants(stack.pid)
    os.kill(stack.pid, signal.SIGINT)
    assert stack.stdout is not None
    for line in stack.stdout:  # stopping nine servers gracefully takes seconds: interrupt that
        if line.startswith("Stopping"):
            break
    os.kill(stack.pid, signal.SIGINT)
    assert stack.wait(START_SECONDS) == 128 + signal.SIGINT
    wait_for(
        lambda: survivors(children), "every child of the interrupted stack gone", GONE_SECONDS, until=lambda s: not s
    )
