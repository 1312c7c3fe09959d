"""Running gcloud: reads always run (also under ``--dry-run``), changes are printed and run
only when asked.

A read that answers "not found" means the resource is missing; any other failure (no
credentials, no permission, a typo) stops the deployment rather than planning a creation
that would fail or, worse, succeed on a wrong assumption.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import TextIO

NOT_FOUND = re.compile(r"NOT_FOUND|not found|404|does not exist|matched no objects", re.IGNORECASE)


class GcloudError(RuntimeError):
    """gcloud failed for another reason than a missing resource."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One command that changes the project, with what it is for (a gcloud command, or one of
    another Cloud SDK tool such as ``bq`` where gcloud has none)."""

    what: str
    args: tuple[str, ...]
    program: str = "gcloud"

    @property
    def line(self) -> str:
        return f"{self.program} {shlex.join(self.args)}"


class Gcloud:
    """The gcloud command line (``executable`` is replaceable for tests)."""

    def __init__(
        self, executable: str = "gcloud", dry_run: bool = True, out: TextIO | None = None, offline: bool = False
    ) -> None:
        self.executable = executable
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.offline = offline  # answer every read "not found" without running gcloud (dry runs only)

    def read(self, args: Sequence[str]) -> str | None:
        """The output of a read-only command, or None when the resource does not exist."""
        if self.offline:
            return None
        try:
            done = subprocess.run([self.executable, *args], capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise GcloudError(f"{self.executable} is not installed (the Google Cloud SDK is needed)") from exc
        if done.returncode == 0:
            return done.stdout
        if NOT_FOUND.search(done.stderr):
            return None
        raise GcloudError(f"gcloud {shlex.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")

    def exists(self, args: Sequence[str], expect: str | None = None, expect_line: str | None = None) -> bool:
        """True when the read succeeds with output, containing ``expect`` and the line
        ``expect_line`` when given."""
        output = self.read(args)
        if output is None or not output.strip():
            return False
        return (expect is None or expect in output) and (expect_line is None or expect_line in output.splitlines())

    def apply(self, changes: Sequence[Change], title: str) -> None:
        """Print every change; run them in order unless this is a dry run."""
        mode = "dry run, nothing is changed" if self.dry_run else "applying"
        print(f"# {title}: {len(changes)} change(s) ({mode})" if changes else f"# {title}: no changes", file=self.out)
        for change in changes:
            print(f"# {change.what}\n{change.line}", file=self.out, flush=True)
            if not self.dry_run:
                program = self.executable if change.program == "gcloud" else change.program
                done = subprocess.run([program, *change.args], check=False)
                if done.returncode != 0:
                    raise GcloudError(f"{change.line} failed (exit {done.returncode})")
