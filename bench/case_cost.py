"""``bench/run cost``: what 1,000 full frames cost on Google Cloud, from one frame's measured chain.

One synthetic full frame of the real sky (the plate-solver benches' frame), uploaded as a ``.fits``
as a unit would, runs through every per-frame step in this process (``EmbeddedRunner``). Each
request's duration, each storage operation (counted on the local bucket folders) and the bytes
left in each bucket are measured; ``deploy/cost_model.py`` turns them into vCPU-seconds and
GiB-seconds as the topology allocates them, GB-months, operations, Pub/Sub bytes and dollars at
its dated list prices. The observation (process-observation, once per sequence, not per frame)
is left out. Run times depend on the machine: the first frame pays imports, so the chain runs
twice and the second is measured.

Prints ``bench cost <line>=<value> ...`` lines; nothing is timed against a reference.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from astropy.io import fits

from panoptes_network.adapters.folder_storage import FolderStorage
from panoptes_network.deploy.cost_model import PRICES_DATE, Request, Usage, per_thousand_frames
from panoptes_network.deploy.service_config import service_deployments
from panoptes_network.drivers import embedded
from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field

CLASS_A = ("write_new", "replace", "list")  # object inserts and listings
CLASS_B = ("read", "read_range", "stat")  # object and metadata gets
PER_OBSERVATION = ("process-observation", "sweep-observations")


class Measured:
    """Requests and storage operations while a chain runs: the embedded runner's calls, wrapped."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.operations: Counter[str] = Counter()

    @contextmanager
    def recording(self) -> Iterator[None]:
        saved = {name: getattr(FolderStorage, name) for name in CLASS_A + CLASS_B}
        run_step = embedded.run_step
        for name, method in saved.items():
            setattr(FolderStorage, name, self._counted(name, method))
        embedded.run_step = self._timed(run_step)  # type: ignore[assignment]
        try:
            yield
        finally:
            for name, method in saved.items():
                setattr(FolderStorage, name, method)
            embedded.run_step = run_step

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.operations[name] += 1
            return method(*args, **kwargs)

        return counted

    def _timed(self, run_step: Callable[..., Any]) -> Callable[..., Any]:
        def timed(service: Any, *args: Any) -> Any:
            started = time.perf_counter()
            handled = run_step(service, *args)
            self.requests.append(Request(service.name, time.perf_counter() - started))
            return handled

        return timed


def frame_file(work: Path, seed: int) -> Path:
    """A full frame of its own sequence (one hour per seed), as POCS would store it."""
    start = StarFieldSpec().sequence_time + dt.timedelta(hours=seed)
    spec = StarFieldSpec(ra=83.8, dec=-5.4, rotation_deg=37.0, seed=seed, sequence_time=start)
    raw, header, _ = make_star_field(spec)
    path = work / "in" / frame_spec_for(spec).path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(raw, header).writeto(path)
    return path


def bucket_bytes(data_dir: Path, buckets: dict[str, str]) -> dict[str, int]:
    root = data_dir / "buckets"
    return {
        key: sum(p.stat().st_size for p in (root / name).rglob("*") if p.is_file()) for key, name in buckets.items()
    }


@contextmanager
def cost(work: Path) -> Iterator[None]:
    runner = embedded.EmbeddedRunner(work / "data")
    report = runner.process_file(frame_file(work, 1))  # warm: imports, caches
    assert not report.failed, report
    before = bucket_bytes(runner.data_dir, dict(runner.settings.buckets))
    measured = Measured()
    with measured.recording():
        report = runner.process_file(frame_file(work, 2))
    assert not report.failed and report.handled[-1].outcome.value == "done", report
    after = bucket_bytes(runner.data_dir, dict(runner.settings.buckets))
    requests = [r for r in measured.requests if r.service not in PER_OBSERVATION]
    usage = Usage(
        frames=1,
        requests=requests,
        stored_bytes={key: after[key] - before[key] for key in after},
        class_a=sum(measured.operations[name] for name in CLASS_A),
        class_b=sum(measured.operations[name] for name in CLASS_B),
        messages=len(requests),
    )
    costs = per_thousand_frames(usage, {d.name: d for d in service_deployments()})
    steps = " ".join(f"{r.service}={r.seconds:.2f}s" for r in requests)
    print(f"bench cost frame_requests {steps}")
    print(f"bench cost frame_bytes {' '.join(f'{k}_mb={v / 1e6:.1f}' for k, v in usage.stored_bytes.items())} "
          f"total_mb={sum(usage.stored_bytes.values()) / 1e6:.1f}")  # fmt: skip
    print("bench cost per_1000_frames vcpu_s " + " ".join(f"{k}={v:.0f}" for k, v in costs.vcpu_seconds.items()))
    print("bench cost per_1000_frames gib_s " + " ".join(f"{k}={v:.0f}" for k, v in costs.gib_seconds.items()))
    print("bench cost per_1000_frames gb_months " + " ".join(f"{k}={v:.2f}" for k, v in costs.gb_months.items()))
    print(
        f"bench cost per_1000_frames requests={costs.requests} class_a={costs.class_a:.0f} "
        f"class_b={costs.class_b:.0f} pubsub_mb={costs.pubsub_bytes / 1e6:.1f}"
    )
    dollars = " ".join(f"{k.replace(' ', '_').replace(',', '')}={v:.4f}" for k, v in costs.dollars.items())
    print(f"bench cost per_1000_frames_usd {dollars} total={costs.total_dollars:.4f} prices={PRICES_DATE}")
    print(f"bench cost per_1000_frames vcpu_s_total={sum(costs.vcpu_seconds.values()):.0f} "
          f"gib_s_total={sum(costs.gib_seconds.values()):.0f}")  # fmt: skip
    yield None


CASES = {"cost": cost}

if __name__ == "__main__":
    sys.exit("run through bench/run")
