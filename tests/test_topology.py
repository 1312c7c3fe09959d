"""The topology is the one description of the wiring: it must hang together, and the README's
picture of it must name everything it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoptes_network.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[1]


def test_every_topic_someone_publishes_to_has_a_listener_except_the_last() -> None:
    topology = load_topology()
    published = {topic for service in topology.services for topic in service.publishes}
    published |= {n.topic for n in topology.notifications}
    listened = {service.topic for service in topology.services}
    assert published <= listened, f"published but nobody listens: {published - listened}"
    assert listened <= published, f"listened to but nobody publishes: {listened - published}"


def test_every_service_has_its_folder_and_step() -> None:
    for service in load_topology().services:
        assert (ROOT / service.name / "main.py").is_file()
        assert (ROOT / service.name / "README.md").is_file()
        assert hasattr(service.step_module(), "STEP")


def test_the_readme_architecture_names_every_service_topic_and_bucket() -> None:
    readme = (ROOT / "README.md").read_text()
    architecture = readme[readme.index("## Architecture") : readme.index("### Contracts")]
    topology = load_topology()
    missing = [
        name
        for name in (*topology.topics, *(s.name for s in topology.services), *topology.buckets.values())
        if name not in architecture
    ]
    assert not missing, f"README architecture does not mention {missing}"


def test_a_topology_with_a_dangling_topic_is_refused() -> None:
    text = (ROOT / "resources/topology.toml").read_text().replace('publishes = ["plate-solve"]', 'publishes = ["nowhere"]')
    with pytest.raises(ValueError, match="unknown topic 'nowhere'"):
        parse_topology(text)
