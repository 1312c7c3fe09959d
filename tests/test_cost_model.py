"""The cost model's arithmetic, against a bill worked out by hand from the list prices."""

from __future__ import annotations

import dataclasses

import pytest

from panoptes_network.deploy import cost_model as cm
from panoptes_network.deploy.service_config import service_deployment


@pytest.fixture
def services() -> dict[str, object]:
    """Two services with allocations chosen for the hand calculation (not the topology's)."""
    return {
        "plate-solver": dataclasses.replace(service_deployment("plate-solver"), cpu=2, memory="512Mi"),
        "record-image": dataclasses.replace(service_deployment("record-image"), cpu=1, memory="1Gi"),
    }


def test_two_frames_of_requests_storage_and_messages_make_the_bill_of_a_thousand(services) -> None:
    usage = cm.Usage(
        frames=2,
        requests=[
            cm.Request("plate-solver", 2.51),  # billed 2.6 s
            cm.Request("plate-solver", 2.6),  # billed 2.6 s: already a multiple of 100 ms
            cm.Request("record-image", 0.02),  # billed 0.1 s
        ],
        stored_bytes={"raw": 40_000_000, "processed": 20_000_000},
        class_a=10,
        class_b=30,
        messages=3,
    )
    costs = cm.per_thousand_frames(usage, services)
    # x500 for 1,000 frames. plate-solver: 5.2 s x 2 CPU = 10.4 vCPU-s, x 0.5 GiB = 2.6 GiB-s
    assert costs.vcpu_seconds == pytest.approx({"plate-solver": 5200.0, "record-image": 50.0})
    assert costs.gib_seconds == pytest.approx({"plate-solver": 1300.0, "record-image": 50.0})
    assert costs.gb_months == pytest.approx({"raw": 20.0, "processed": 10.0})
    assert (costs.requests, costs.class_a, costs.class_b) == (1500, 5000, 15000)
    assert costs.pubsub_bytes == pytest.approx(3_000_000)  # 1,500 messages, published and pushed, 1 kB each
    assert costs.dollars == pytest.approx(
        {
            "cloud run cpu": 5250 * 0.000024,
            "cloud run memory": 1350 * 0.0000025,
            "cloud run requests": 1500 * 0.40 / 1e6,
            "storage, a month": 30 * 0.020,
            "storage operations": 5000 * 0.005 / 1000 + 15000 * 0.0004 / 1000,
            "pub/sub": 3e6 / 2**40 * 40,
        }
    )
    assert costs.total_dollars == pytest.approx(0.126 + 0.003375 + 0.0006 + 0.6 + 0.031 + 3e6 / 2**40 * 40)


def test_billing_rounds_each_request_up_to_100_ms_and_memory_units_convert() -> None:
    assert [cm.billed_seconds(s) for s in (0.0, 0.1, 0.1000001, 0.35, 2.0)] == pytest.approx([0.1, 0.1, 0.2, 0.4, 2.0])
    assert (cm.memory_gib("512Mi"), cm.memory_gib("4Gi")) == (0.5, 4.0)
    with pytest.raises(ValueError, match="not in Mi or Gi"):
        cm.memory_gib("4G")
    with pytest.raises(ValueError, match="at least one frame"):
        cm.per_thousand_frames(cm.Usage(0, [], {}, 0, 0, 0), {})
