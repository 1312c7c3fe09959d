"""Run one step on one message in a child process whose address space is limited to the
memory its service gets on Cloud Run (``resources/topology.toml``), as issue 18 asks: a step
that needs more dies of ``MemoryError`` there, recorded, rather than passing here and being
killed for memory in the cloud.

Used by tests through ``run_bounded``; the child is this file run as a script. The limit is set
before anything of the pipeline is imported, so the imports count as they do in a container.
RLIMIT_AS bounds virtual memory, a stricter measure than the resident memory Cloud Run counts.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

UNITS = {"Mi": 1 << 20, "Gi": 1 << 30}
# One thread per library pool: a container with 1-2 CPUs; each idle pool thread reserves
# address space (stacks, malloc arenas) that counts against RLIMIT_AS though it is never used.
CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}


def service_memory(service: str) -> int:
    """The service's Cloud Run memory in bytes (``512Mi``, ``2Gi``)."""
    from panoptes_network.deploy.service_config import service_deployment

    memory = service_deployment(service).memory
    return int(memory[:-2]) * UNITS[memory[-2:]]


@dataclasses.dataclass(frozen=True)
class BoundedRun:
    service: str
    limit_bytes: int
    outcome: str
    reason: str
    error_class: str | None
    published: list[dict[str, Any]]  # the queue after the step: topic, data (base64), attributes
    peak_mb: float  # VmHWM: the child's peak resident memory
    exit_code: int

    def describe(self) -> str:
        return (
            f"{self.service}: {self.outcome} under RLIMIT_AS {self.limit_bytes >> 20} MiB, "
            f"peak resident {self.peak_mb:.0f} MB ({self.reason[:120]})"
        )


def run_bounded(service: str, data_dir: Path, message: dict[str, Any], limit_bytes: int | None = None) -> BoundedRun:
    """``service``'s step on ``message`` ({data (base64), attributes, message_id}) over the local
    stand-ins in ``data_dir``, in a child limited to ``limit_bytes`` (default: the topology's)."""
    limit = limit_bytes or service_memory(service)
    done = subprocess.run(
        [sys.executable, __file__, service, str(data_dir), str(limit)],
        input=json.dumps(message),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **CHILD_ENV},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, (
        f"{service} under {limit >> 20} MiB printed no result (exit {done.returncode}):\n{done.stderr[-3000:]}"
    )
    return BoundedRun(service=service, limit_bytes=limit, exit_code=done.returncode, **json.loads(lines[-1]))


def _child(service_name: str, data_dir: Path, limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from panoptes_network.adapters.backends import local_context
    from panoptes_network.core.messages import PushMessage
    from panoptes_network.core.settings import Settings
    from panoptes_network.core.step_shell import run_step

    message = json.loads(sys.stdin.read())
    context, queue = local_context(Settings(data_dir=data_dir), data_dir)
    service = context.topology.service(service_name)
    push = PushMessage(message["message_id"], base64.b64decode(message["data"]), message["attributes"])
    handled = run_step(service, service.step_module().STEP, context, push)
    published = []
    while (queued := queue.pop()) is not None:
        data = base64.b64encode(queued.data).decode()
        published.append({"topic": queued.topic, "data": data, "attributes": dict(queued.attributes)})
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result = {
        "outcome": handled.outcome.value,
        "reason": handled.reason,
        "error_class": handled.error_class,
        "published": published,
        "peak_mb": peak_kb / 1024,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
