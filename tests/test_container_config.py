"""What bin/containers decides without an engine: podman's private configuration, the Debian
mirror of the base stand-in, and how a service container is run (Cloud Run's contract)."""

from __future__ import annotations

import resource
import tomllib
from pathlib import Path

from panoptes_network.local import containers

ROOT = Path(__file__).resolve().parents[1]


def test_podman_gets_runc_and_the_hard_limits_it_may_set() -> None:
    conf = tomllib.loads(containers.containers_conf())
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert conf["engine"]["runtime"] == "runc"
    [files, processes] = conf["containers"]["default_ulimits"]
    assert files == f"nofile={nofile}:{nofile}"
    nproc = int(processes.split("=")[1].split(":")[0])
    assert 0 < nproc <= containers.MAX_NPROC


def test_the_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# deb http://old.example/debian bookworm main\ndeb [arch=amd64] http://line.example/debian bookworm main\n"
    )
    assert containers.apt_mirror((tmp_path / "absent", deb822, one_line)) == "http://mirror.example/debian"
    assert containers.apt_mirror((one_line,)) == "http://line.example/debian"
    assert containers.apt_mirror((tmp_path / "absent",)) == containers.DEFAULT_MIRROR


def test_every_dockerfile_names_the_base_the_stand_in_replaces() -> None:
    bases = {containers.base_image(path) for path in ROOT.glob("*/Dockerfile")}
    assert bases == {"python:3.11-slim-bookworm"}


def test_a_service_container_gets_port_and_its_environment_on_the_host_network() -> None:
    engine = containers.Engine("/usr/bin/podman", {})
    command = containers.run_command(engine, "record-image", 8123, {"GOOGLE_CLOUD_PROJECT": "p1", "X": "a=b"})
    assert command[:2] == ["/usr/bin/podman", "run"] and command[-1] == "localhost/panoptes-record-image:local"
    pairs = {command[i + 1] for i, arg in enumerate(command) if arg == "-e"}
    assert pairs == {"PORT=8123", "GOOGLE_CLOUD_PROJECT=p1", "X=a=b"}
    assert {"--rm", "--network"} <= set(command) and command[command.index("--network") + 1] == "host"
    assert f"{containers.CONTAINER_LABEL}=p1" in command  # what remove_stack_containers finds
