"""The generated deployment files: Dockerfiles, cloudbuild.yaml, cloudbuild-service.yaml, the
Cloud SQL schema file and the README's topology block.

Docker and Cloud Build cannot run here, so the files are parsed and checked: each one equals
what the generator writes from the topology today (no drift), each Dockerfile installs
through bin/install with constraints.txt and serves the service folder's ``main:app``, and
the Cloud Build configs build, push and deploy every service of the topology.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from panoptes_network.core.topology import load_topology
from panoptes_network.deploy.__main__ import expected_files
from panoptes_network.deploy.build_files import cloud_build_names
from panoptes_network.deploy.service_commands import invoker_binding_args, run_deploy_args
from panoptes_network.deploy.service_config import ServiceDeployment, service_deployments

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = service_deployments()
BY_NAME = {d.name: d for d in DEPLOYMENTS}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_committed_files_are_what_the_topology_generates() -> None:
    expected = expected_files(ROOT)
    assert {"README.md", "resources/cloud-sql-schema.sql", "cloudbuild.yaml"} <= {str(p) for p in expected}
    stale = [str(p) for p, text in expected.items() if not (ROOT / p).exists() or (ROOT / p).read_text() != text]
    assert not stale, f"out of date (run bin/deploy files): {stale}"


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_each_dockerfile_installs_with_bin_install_and_serves_main_app(name: str) -> None:
    deployment = BY_NAME[name]
    instructions = parse_dockerfile((ROOT / name / "Dockerfile").read_text())
    assert instructions[0] == ("FROM", "python:3.11-slim-bookworm")
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(args.split("&&")[0].split() == ["bin/install", "service", name] for args in runs), runs
    copied = [shlex.split(args)[:-1] for op, args in instructions if op == "COPY"]
    sources = {source for group in copied for source in group}
    # the install's inputs: the same script and lock file as the README and .ci/run
    assert {"bin/install", "constraints.txt", "pyproject.toml", "src", "resources"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), f"{name}/Dockerfile copies {source}, which does not exist"
    install_at = [i for i, (op, args) in enumerate(instructions) if op == "RUN" and args.startswith("bin/install")][0]
    copy_main = instructions.index(("COPY", f"{name}/main.py {name}/main.py"))
    assert copy_main > install_at, "the service's own file comes after the shared install layers"
    env = " ".join(args for op, args in instructions if op == "ENV").split()
    assert "PYTHONUNBUFFERED=1" in env
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert [args for op, args in instructions if op == "WORKDIR"][-1] == f"/app/{name}"
    [cmd] = [args for op, args in instructions if op == "CMD"]
    assert cmd.startswith("exec ")
    argv = shlex.split(cmd)[1:]
    assert argv[0] == "/app/.venv/bin/gunicorn" and argv[-1] == "main:app"
    options = dict(zip(argv[1:-2:2], argv[2:-1:2]))
    assert options == {
        "--bind": ":$PORT",
        "--workers": str(deployment.workers),
        "--threads": str(deployment.threads),
        "--timeout": str(deployment.timeout_seconds),
    }
    assert argv[-2] == "--no-control-socket"
    assert f'create_service("{name}")' in (ROOT / name / "main.py").read_text()


def test_the_install_script_is_the_one_ci_runs() -> None:
    """.ci/run -> bin/test -> bin/install: CI exercises the images' install script."""
    assert "exec bin/test" in (ROOT / ".ci/run").read_text()
    assert "bin/install test" in (ROOT / "bin/test").read_text()
    assert "constraints.txt" in (ROOT / "bin/install").read_text()


def load_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_cloudbuild_builds_pushes_and_deploys_every_service() -> None:
    config = load_yaml("cloudbuild.yaml")
    steps = {step["id"]: step for step in config["steps"]}
    names = cloud_build_names(dict(load_topology().buckets))
    assert set(config["substitutions"]) == {"_REGION", "_TAG", "_BUCKET_SUFFIX"}
    assert config["serviceAccount"].endswith("/panoptes-builder@${PROJECT_ID}.iam.gserviceaccount.com")
    previous = "-"
    for deployment in DEPLOYMENTS:
        name, image = (
            deployment.name,
            f"${{_REGION}}-docker.pkg.dev/${{PROJECT_ID}}/panoptes/{deployment.name}:${{_TAG}}",
        )
        assert steps[f"build-{name}"]["args"] == ["build", "-f", f"{name}/Dockerfile", "-t", image, "."]
        assert steps[f"build-{name}"]["waitFor"] == [previous]  # one after another: the install layers are shared
        previous = f"build-{name}"
        assert steps[f"push-{name}"]["args"] == ["push", image]
        deploy = steps[f"deploy-{name}"]
        assert deploy["entrypoint"] == "gcloud" and deploy["waitFor"] == [f"push-{name}"]
        assert deploy["args"] == run_deploy_args(deployment, names, "${_TAG}")
        assert f"--image={image}" in deploy["args"]
        env = dict(item.split("=", 1) for item in _flag(deploy["args"], "--set-env-vars").split(","))
        assert env["PANOPTES_BUCKET_RAW"] == "panoptes-raw-images${_BUCKET_SUFFIX}"
        if deployment.push is None:  # the data explorer: public, nobody pushes to it
            assert "--allow-unauthenticated" in deploy["args"] and "PUSH_AUTH_AUDIENCE" not in env
            assert f"invoker-{name}" not in steps
            continue
        assert "--no-allow-unauthenticated" in deploy["args"]
        assert env["PUSH_AUTH_AUDIENCE"] == f"https://{name}-${{PROJECT_NUMBER}}.${{_REGION}}.run.app"
        assert env["PUSH_AUTH_EMAIL"] == "panoptes-invoker@${PROJECT_ID}.iam.gserviceaccount.com"
        assert steps[f"invoker-{name}"]["args"] == invoker_binding_args(deployment, names)
    pushed = [d for d in DEPLOYMENTS if d.push is not None]
    assert len(steps) == 3 * len(DEPLOYMENTS) + len(pushed) and len(pushed) == len(DEPLOYMENTS) - 1


def _flag(args: list[str], flag: str) -> str:
    [value] = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{flag}=")]
    return value


def test_cloudbuild_service_builds_one_image() -> None:
    config = load_yaml("cloudbuild-service.yaml")
    image = "${_REGION}-docker.pkg.dev/${PROJECT_ID}/panoptes/${_SERVICE}:${_TAG}"
    assert [step["args"] for step in config["steps"]] == [
        ["build", "-f", "${_SERVICE}/Dockerfile", "-t", image, "."],
        ["push", image],
    ]
    assert set(config["substitutions"]) == {"_SERVICE", "_REGION", "_TAG"}


TOPOLOGY_HEAD = """
[buckets]
raw = "r"
[[topics]]
name = "t"
"""


def test_a_service_without_deployment_keys_gets_the_defaults() -> None:
    text = (
        TOPOLOGY_HEAD
        + '[[services]]\nname = "new-step"\nstep = "x.y"\ntopic = "t"\nmessage = "step"\nack_deadline_seconds = 45\n'
    )
    [deployment] = service_deployments(text)
    assert (deployment.memory, deployment.cpu, deployment.workers, deployment.threads) == ("1Gi", 1, 1, 4)
    assert deployment.concurrency == 4 and deployment.timeout_seconds == 45 and deployment.cloud_sql is False


def test_concurrency_beyond_the_threads_is_refused() -> None:
    block = '[[services]]\nname = "s"\nstep = "x.y"\ntopic = "t"\nmessage = "step"\nack_deadline_seconds = 10\nconcurrency = 9\nworkers = 2\nthreads = 4\n'
    with pytest.raises(ValueError, match="concurrency 9 exceeds workers x threads"):
        service_deployments(TOPOLOGY_HEAD + block)


def test_the_plate_solver_runs_one_solve_at_a_time_past_its_cpu_limits() -> None:
    from panoptes_network.science.solve_field import SolveSettings

    if "plate-solver" not in BY_NAME:
        pytest.skip("no plate-solver in the topology")
    solver: ServiceDeployment = BY_NAME["plate-solver"]
    assert solver.concurrency == 1 and solver.cloud_sql
    assert solver.timeout_seconds > sum(tier.cpu_limit_s for tier in SolveSettings().tiers)
    assert solver.timeout_seconds <= solver.service.ack_deadline_seconds <= 600
