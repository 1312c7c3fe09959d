"""The topology is the one description of the wiring: it must hang together, and the README's
picture of it is generated from it (``bin/deploy files``), so it cannot drift."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from panoptes_network.core.topology import load_topology, parse_topology
from panoptes_network.deploy.readme_topology import BEGIN, END, current_block, topology_markdown, with_topology_block
from panoptes_network.deploy.service_config import topology_text

ROOT = Path(__file__).resolve().parents[1]


def test_every_topic_someone_publishes_to_has_a_listener_except_the_last() -> None:
    topology = load_topology()
    published = {topic for service in topology.services for topic in service.publishes}
    published |= {n.topic for n in topology.notifications}
    published |= {s.topic for s in topology.schedules}
    listened = {service.topic for service in topology.services}
    assert published <= listened, f"published but nobody listens: {published - listened}"
    assert listened <= published, f"listened to but nobody publishes: {listened - published}"


def test_every_service_has_its_folder_and_step_or_app() -> None:
    topology = load_topology()
    for name in topology.service_names:
        assert (ROOT / name / "main.py").is_file()
        assert (ROOT / name / "README.md").is_file()
    for service in topology.services:
        assert hasattr(service.step_module(), "STEP")
    assert [w.name for w in topology.web_services] == ["data-explorer"]
    for web in topology.web_services:
        assert callable(getattr(importlib.import_module(web.module), web.function))


def test_the_data_explorer_is_the_one_public_service_and_has_no_subscription() -> None:
    topology = load_topology()
    [explorer] = topology.web_services
    assert explorer.public and explorer.app == "panoptes_network.explorer.app:create_explorer"
    assert "data-explorer" not in [s.name for s in topology.services], "no push subscription, no step"
    with pytest.raises(ValueError, match="a step or an app, not both"):
        parse_topology(topology_text().replace('name = "data-explorer"\n', 'name = "data-explorer"\nstep = "x.y"\n'))
    with pytest.raises(ValueError, match="is not module:function"):
        parse_topology(topology_text().replace(":create_explorer", ""))


def test_the_readme_architecture_block_is_what_the_topology_generates() -> None:
    readme = (ROOT / "README.md").read_text()
    architecture = readme[readme.index("## Architecture") : readme.index("### Contracts")]
    assert BEGIN in architecture and END in architecture
    assert current_block(readme) == topology_markdown(topology_text()), "stale: run bin/deploy files"


def test_a_changed_topology_changes_only_the_readme_block(tmp_path: Path) -> None:
    """A modified copy of the topology: another bucket name, ack deadline and a new step."""
    text = (ROOT / "resources/topology.toml").read_text()
    changed = (
        text.replace('rgb = "panoptes-rgb-images"', 'rgb = "panoptes-rgb-renamed"')
        .replace("ack_deadline_seconds = 600", "ack_deadline_seconds = 540")
        .replace("timeout_seconds = 600", "timeout_seconds = 500")
        .replace("publishes = []\nack_deadline_seconds = 120", 'publishes = ["archive"]\nack_deadline_seconds = 120', 1)
        + '\n[[topics]]\nname = "archive"\n\n[[services]]\nname = "archive-fits"\nstep = "x.y"\n'
        'topic = "archive"\nmessage = "step"\nack_deadline_seconds = 45\n'
    )
    copy = tmp_path / "topology.toml"
    copy.write_text(changed)
    readme = (ROOT / "README.md").read_text()
    block = topology_markdown(copy.read_text())
    assert block != topology_markdown(text)
    assert "`panoptes-rgb-renamed`" in block and "panoptes-rgb-images" not in block
    assert "| `plate-solver` | `plate-solve` (`plate-solve-plate-solver`) | step | - | 540 s |" in block
    flow = block.splitlines()
    compress = flow.index("    topic compress-fits -> service compress-fits")
    assert flow[compress + 1] == "      topic archive -> service archive-fits"
    assert "| `archive-fits` | `archive` (`archive-archive-fits`) | step | - | 45 s | 1Gi, 1 CPU | 4 (1 x 4) |" in block
    regenerated = with_topology_block(readme, block)
    assert current_block(regenerated) == block
    before, after = readme.split(BEGIN), regenerated.split(BEGIN)
    assert before[0] == after[0] and before[1].split(END)[1] == after[1].split(END)[1], "prose is kept"
    with pytest.raises(ValueError, match="topology:end"):
        with_topology_block(readme.replace(END, ""), block)


def test_a_topology_with_a_dangling_topic_is_refused() -> None:
    text = (
        (ROOT / "resources/topology.toml").read_text().replace('publishes = ["plate-solve"]', 'publishes = ["nowhere"]')
    )
    with pytest.raises(ValueError, match="unknown topic 'nowhere'"):
        parse_topology(text)


def test_the_observation_sweep_is_scheduled_every_ten_minutes_and_shown_in_the_flow() -> None:
    topology = load_topology()
    [schedule] = topology.schedules
    assert (schedule.topic, schedule.cron) == ("observation-sweep", "*/10 * * * *")
    assert [s.name for s in topology.listeners("observation-sweep")] == ["sweep-observations"]
    flow = topology_markdown(topology_text()).splitlines()
    sweep = flow.index("Cloud Scheduler observation-sweep (every 10 min) --> topic observation-sweep")
    assert flow[sweep + 1 : sweep + 3] == [
        "  topic observation-sweep -> service sweep-observations",
        "    topic process-observation -> service process-observation",
    ]
    with pytest.raises(ValueError, match="schedule to unknown topic"):
        parse_topology(
            (ROOT / "resources/topology.toml")
            .read_text()
            .replace('topic = "observation-sweep"\nevery', 'topic = "nowhere"\nevery')
        )
