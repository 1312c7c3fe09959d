"""Service images on this machine: build them with podman (or docker) and run them as Cloud Run would.

``bin/containers`` builds every image the topology lists; ``panoptes-network stack --containers``
runs each service from its image. What this machine kind needs (docs/ARCHITECTURE.md, "Containers"):

- podman's default runtime (crun) fails on ``setrlimit RLIMIT_NOFILE`` and on hybrid cgroups, so a
  private ``containers.conf`` (named by ``CONTAINERS_CONF`` in the engine's environment) selects
  runc and sets nofile/nproc to this process's hard limits (nproc at most 32768);
- no image registry is reachable, so when ``python:3.11-slim-bookworm`` is absent a stand-in is
  made with debootstrap (Debian's python3.11 from the mirror apt already uses) and imported;
- pip inside a build verifies TLS against the system CA bundle: the host's is mounted read-only.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from panoptes_network.core.settings import process_environment
from panoptes_network.core.topology import Topology
from panoptes_network.local import emulators

IMAGE_PREFIX = "localhost/panoptes-"
IMAGE_TAG = "local"
CONTAINER_LABEL = "panoptes-network.stack"
CONTAINER_DATA_DIR = "/tmp/panoptes-data"  # PANOPTES_DATA_DIR inside a container (writable /tmp)
MAX_NPROC = 32768  # conmon itself runs with 32768 here: a container may not ask for more
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_SUITE = "bookworm"
# python3-pip brings python3.11-distutils, which python3.11-venv needs but debootstrap's resolver misses.
BASE_PACKAGES = ("python3.11", "python3.11-venv", "python3-pip", "ca-certificates")
# What slim() removes from the stand-in's root file system (apt recreates its lists and caches).
SLIMMED = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/lib/python3/dist-packages/*",
)
# A cold container: podman's setup, Python imports (astropy, the Google clients), gunicorn.
CONTAINER_START_TIMEOUT = 60.0
UNSERVED_EMULATORS = {
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
}


class ContainerError(RuntimeError):
    """No engine, or a build or a container failed; the message says which and where to look."""


@dataclasses.dataclass(frozen=True)
class Engine:
    """An OCI engine command and the environment it runs with (podman: its private containers.conf)."""

    command: str
    env: Mapping[str, str]

    @property
    def is_podman(self) -> bool:
        return Path(self.command).name == "podman"

    def run(self, *args: str, capture: bool = True, stdin: bytes | None = None) -> str:
        """Run the engine; on failure raise with what it said."""
        done = subprocess.run(
            [self.command, *args],
            input=stdin,
            capture_output=capture,
            env=process_environment(self.env),
            check=False,
        )
        if done.returncode != 0:
            said = (done.stderr or b"").decode(errors="replace")[-2000:]
            raise ContainerError(f"{self.command} {' '.join(args[:2])} failed ({done.returncode}): {said}")
        return (done.stdout or b"").decode(errors="replace")

    def image_exists(self, image: str) -> bool:
        args = ("image", "exists", image) if self.is_podman else ("image", "inspect", image)
        return (
            subprocess.run([self.command, *args], capture_output=True, env=process_environment(self.env)).returncode
            == 0
        )

    def image_size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).strip())


def image_name(service: str) -> str:
    return f"{IMAGE_PREFIX}{service}:{IMAGE_TAG}"


def hard_limits() -> tuple[int, int]:
    """(nofile, nproc) a container may have: this process's hard limits, nproc at most MAX_NPROC."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = MAX_NPROC if nproc == resource.RLIM_INFINITY else min(nproc, MAX_NPROC)
    return nofile, nproc


def containers_conf() -> str:
    """podman's private configuration: runc, and ulimits it is allowed to set."""
    nofile, nproc = hard_limits()
    return (
        "# Written by bin/containers (panoptes_network/local/containers.py): crun fails on this machine kind.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )


def find_engine(state_dir: Path) -> Engine:
    """docker when its daemon answers, otherwise podman with its private containers.conf."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return Engine(docker, {})
    podman = shutil.which("podman")
    if podman is None:
        raise ContainerError("no container engine: install podman, runc and debootstrap (bin/containers does)")
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "containers.conf"
    conf.write_text(containers_conf())
    return Engine(podman, {"CONTAINERS_CONF": str(conf)})


def apt_mirror(sources: Sequence[Path] = APT_SOURCES) -> str:
    """The Debian mirror apt already uses here (deb822 ``URIs:`` or a one-line ``deb`` entry)."""
    for path in sources:
        if not path.exists():
            continue
        text = path.read_text()
        found = re.search(r"^URIs:\s*(\S+)", text, re.MULTILINE) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE
        )
        if found:
            return found.group(1)
    return DEFAULT_MIRROR


def base_image(dockerfile: Path) -> str:
    """The image a (generated) Dockerfile builds ``FROM``."""
    found = re.search(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    if found is None:
        raise ContainerError(f"{dockerfile} has no FROM line")
    return found.group(1)


def slim(rootfs: Path) -> None:
    """Trim the stand-in as the slim image is trimmed: no apt lists or caches, documentation,
    translations or Debian's own pip (each image's venv has its own); halves it (about 125 MB)."""
    for pattern in SLIMMED:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def ensure_base_image(engine: Engine, base: str) -> str:
    """The Dockerfiles' base image ``base``, or a debootstrap stand-in of it when it cannot be
    pulled (Debian's python3.11: the Dockerfiles only need ``python3.11 -m venv``).

    Returns what was done, for the report.
    """
    if engine.image_exists(base):
        return f"base image {base} present"
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="panoptes-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        command = [debootstrap, "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), BASE_SUITE, str(rootfs)]
        done = subprocess.run([*command, apt_mirror()], capture_output=True, check=False)
        if done.returncode != 0:
            said = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise ContainerError(f"debootstrap of the base image failed ({done.returncode}):\n{said}")
        slim(rootfs)
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], check=True, stdout=subprocess.PIPE).stdout
        tag = f"localhost/{base}" if engine.is_podman else base
        engine.run("import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', "-", tag, stdin=tar)
    return f"base image {base}: debootstrap stand-in made in {time.monotonic() - started:.0f} s"


@dataclasses.dataclass(frozen=True)
class Built:
    service: str
    image: str
    seconds: float
    size_bytes: int

    def line(self) -> str:
        return f"{self.service:<22} {self.image:<46} {self.size_bytes / 1e6:7.0f} MB  built in {self.seconds:5.1f} s"


def build_image(engine: Engine, root: Path, service: str, log_dir: Path) -> Built:
    """Build one service's image from the repository root, offline except for apt and pip."""
    args = ["build", "--network", "host", "-f", f"{service}/Dockerfile", "-t", image_name(service)]
    if engine.is_podman:
        args += ["--pull=never", "-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"build-{service}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        done = subprocess.run(
            [engine.command, *args, str(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=process_environment(engine.env),
        )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise ContainerError(f"building {service} failed ({done.returncode}); log {log_path}:\n{tail}")
    return Built(service, image_name(service), seconds, engine.image_size(image_name(service)))


def build_all(engine: Engine, root: Path, topology: Topology, log_dir: Path, parallel: int = 2) -> list[Built]:
    """Every image the topology lists: the first alone (it builds the shared install layer, which
    two builds at once would both build), then the others ``parallel`` at a time (downloads and
    apt leave the CPUs idle), the largest (most Debian packages) first. In topology order."""
    names = list(topology.service_names)
    first, rest = names[0], sorted(names[1:], key=lambda name: -len(apt_packages(root, name)))
    built = {first: build_image(engine, root, first, log_dir)}
    print(built[first].line(), flush=True)
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = {pool.submit(build_image, engine, root, name, log_dir): name for name in rest}
        for future in concurrent.futures.as_completed(futures):
            built[futures[future]] = future.result()
            print(built[futures[future]].line(), flush=True)
    return [built[name] for name in names]


def apt_packages(root: Path, service: str) -> list[str]:
    """The Debian packages a service's image installs (its ``apt`` list in the topology)."""
    services = tomllib.loads((root / "resources" / "topology.toml").read_text())["services"]
    packages: list[str] = next(s for s in services if s["name"] == service).get("apt", [])
    return packages


def stack_engine(topology: Topology, state_dir: Path) -> Engine:
    """The engine to run the stack's services with, once every image is there."""
    engine = find_engine(state_dir)
    missing = [name for name in topology.service_names if not engine.image_exists(image_name(name))]
    if missing:
        raise ContainerError(f"no image of {', '.join(missing)}: build them with bin/containers")
    return engine


def run_command(engine: Engine, service: str, port: int, env: Mapping[str, str]) -> list[str]:
    """``podman run`` of one service as Cloud Run runs it: ``PORT`` and the service's environment,
    on the host network (where the emulators listen), removed when it stops."""
    project = env.get("GOOGLE_CLOUD_PROJECT", "")
    args = [engine.command, "run", "--rm", "--network", "host", "--label", f"{CONTAINER_LABEL}={project}"]
    args += ["--name", f"panoptes-{service}-{port}", "-e", f"PORT={port}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, image_name(service)]


def start_service_container(
    engine: Engine, service: str, log_dir: Path, env: Mapping[str, str], timeout: float = CONTAINER_START_TIMEOUT
) -> emulators.Server:
    """One service from its image, ready when ``/healthz`` answers; stopping the handle's process
    (the engine client) stops and removes the container."""
    port = emulators.free_port()
    command = run_command(engine, service, port, env)
    return emulators.start_process(service, command, port, log_dir, "/healthz", env=engine.env, timeout=timeout)


def remove_stack_containers(engine: Engine, project: str) -> list[str]:
    """Remove any container the stack of ``project`` started that is still there (its engine
    client was killed before it could); returns their names."""
    names = engine.run("ps", "-a", "--filter", f"label={CONTAINER_LABEL}={project}", "--format", "{{.Names}}").split()
    for name in names:
        engine.run("rm", "-f", name)
    return names


def cold_start_seconds(engine: Engine, service: str, log_dir: Path, env: Mapping[str, str]) -> float:
    """Seconds from ``podman run`` to the first 200 on ``/healthz`` (Cloud Run's cold start)."""
    started = time.monotonic()
    server = start_service_container(engine, service, log_dir, env)
    seconds = time.monotonic() - started
    server.stop()
    return seconds


def main(argv: Sequence[str]) -> int:
    """``bin/containers [--cold-start]``: build every image, print sizes and times."""
    import argparse

    from panoptes_network.core.topology import load_topology

    parser = argparse.ArgumentParser(prog="bin/containers", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="repository root (the build context)")
    parser.add_argument("--log-dir", type=Path, default=Path("build/containers"), help="build logs")
    parser.add_argument("--cold-start", action="store_true", help="also time podman run -> first 200 on /healthz")
    args = parser.parse_args(argv)
    log_dir = args.log_dir.resolve()
    try:
        engine = find_engine(log_dir)
        print(f"engine: {engine.command} {' '.join(f'{k}={v}' for k, v in engine.env.items())}", flush=True)
        topology = load_topology()
        bases = {base_image(args.root / name / "Dockerfile") for name in topology.service_names}
        for base in sorted(bases):
            print(ensure_base_image(engine, base), flush=True)
        started = time.monotonic()
        build_all(engine, args.root.resolve(), topology, log_dir)
        print(f"all {len(topology.service_names)} images in {time.monotonic() - started:.0f} s", flush=True)
        if args.cold_start:
            # Clients connect lazily: emulator addresses nobody serves keep them off the cloud.
            env = {"GOOGLE_CLOUD_PROJECT": "panoptes-cold-start", **UNSERVED_EMULATORS}
            for name in topology.service_names:
                seconds = cold_start_seconds(engine, name, log_dir, env)
                print(f"{name:<22} podman run -> first 200 on /healthz: {seconds:.1f} s", flush=True)
    except (ContainerError, emulators.ServerError) as exc:
        print(f"bin/containers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
