"""The installed Google Cloud SDK, run offline: it parses a command completely, then fails to
connect, and nothing leaves the machine.

Every API endpoint gcloud knows, its proxy and the metadata server are pointed at a closed port
on 127.0.0.1, credentials are disabled and the configuration directory is a throw-away one.
gcloud logs at debug verbosity, so the end of its parsing ("Running [gcloud...]") and then its
first refused connection show on stderr: that is the verdict "parsed", and the process is
stopped there instead of sitting through gcloud's retries (about 30 s of backoff for a refused
connection, which no property shortens: apitools retries 5 times whatever the configuration).
A command that ends before that, on an argparse error ("unrecognized arguments", "invalid
choice", "argument --x: expected one argument") or a refusal of its values, is "not parsed",
with gcloud's message."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SDK_GCLOUD = Path("/usr/lib/google-cloud-sdk/bin/gcloud")  # the Debian package's
CLOSED_HOST, CLOSED_PORT = "127.0.0.1", 9  # the discard port: nothing listens on it
CLOSED_URL = f"http://{CLOSED_HOST}:{CLOSED_PORT}/"
PARALLEL = 12
TIMEOUT_SECONDS = 300  # one command, startup to first refused connection, on a busy machine
CONNECTION = re.compile(r"Starting new HTTPS? connection \(\d+\): (?P<address>\S+)")
REFUSED = re.compile(r"Connection refused|Errno 111")
# Cloud Build fills in ${NAME} (and $NAME); $$ is a literal $.
SUBSTITUTION = re.compile(r"\$\$|\$\{(?P<braced>[A-Z_][A-Z0-9_]*)\}|\$(?P<bare>[A-Z_][A-Z0-9_]*)")
# APIs whose endpoint property is hidden (not in ``gcloud config list --all``) and which the
# deployment's commands call: ``run deploy`` checks with Service Usage that Cloud Run is enabled;
# ``alpha bq ... describe`` reads BigQuery (deploy/bigquery_tables.py).
HIDDEN_APIS = ("serviceusage", "bigquery")
SHELLS = ("bash", "sh", "/bin/bash", "/bin/sh")
SHELL_SEPARATORS = {"|", "||", "&&", ";", ";;", "&", "(", ")", "\n"}


def installed_gcloud() -> Path | None:
    """The Cloud SDK's gcloud: the Debian package's, else the first on PATH."""
    if SDK_GCLOUD.exists():
        return SDK_GCLOUD
    found = shutil.which("gcloud")
    return Path(found) if found else None


def offline_environment(gcloud: Path, config_dir: Path) -> dict[str, str]:
    """An environment in which ``gcloud`` reaches nothing but the closed port.

    The caller's own gcloud settings, credentials and proxies are dropped. The APIs are the
    SDK's own list (its visible ``api_endpoint_overrides`` properties) and ``HIDDEN_APIS``; a
    request to any other goes to the closed proxy, and ``check`` names it.
    """
    dropped = ("CLOUDSDK_", "GOOGLE_", "GCE_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith(dropped)}
    env.update(
        CLOUDSDK_CONFIG=str(config_dir),
        CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true",
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        CLOUDSDK_CORE_CHECK_GCE_METADATA="false",
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
        CLOUDSDK_SURVEY_DISABLE_PROMPTS="true",
        CLOUDSDK_PROXY_TYPE="http",
        CLOUDSDK_PROXY_ADDRESS=CLOSED_HOST,
        CLOUDSDK_PROXY_PORT=str(CLOSED_PORT),
        # the metadata server is read without the proxy (run deploy looks for it): closed port too
        GCE_METADATA_ROOT=f"{CLOSED_HOST}:{CLOSED_PORT}",
        GCE_METADATA_HOST=f"{CLOSED_HOST}:{CLOSED_PORT}",
        GCE_METADATA_IP=f"{CLOSED_HOST}:{CLOSED_PORT}",
        NO_GCE_CHECK="true",
    )
    listed = subprocess.run(
        [str(gcloud), "config", "list", "--all", "--format=json"], env=env, capture_output=True, text=True, check=True
    )
    apis = [*json.loads(listed.stdout)["api_endpoint_overrides"], *HIDDEN_APIS]
    env.update({f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}": CLOSED_URL for api in apis})
    env["CLOUDSDK_CORE_VERBOSITY"] = "debug"  # after the listing: its output stays plain
    return env


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What gcloud made of one command."""

    args: tuple[str, ...]
    parsed: bool  # it got as far as connecting, to the closed port only
    message: str  # gcloud's error lines when it did not

    @property
    def line(self) -> str:
        return "gcloud " + shlex.join(self.args)


def error_lines(stderr: Sequence[str]) -> str:
    """gcloud's own message: stderr without its log lines and its closing hint to ``gcloud help``."""
    hints = ("DEBUG:", "INFO:", "To search the help text", "gcloud help --")
    kept = [line.strip() for line in stderr if line.strip() and not line.strip().startswith(hints)]
    return " / ".join(kept) or "(no message)"


def check(gcloud: Path, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> Verdict:
    """Run ``gcloud args`` until its first connection is refused (parsed) or it ends (not)."""
    process = subprocess.Popen(
        [str(gcloud), *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: stopped with its children
    )
    assert process.stderr is not None
    stop = threading.Timer(TIMEOUT_SECONDS, stop_group, (process,))  # gcloud hanging: its stderr ends
    stop.start()
    stderr: list[str] = []
    verdict: Verdict | None = None
    running = False
    try:
        for line in process.stderr:
            stderr.append(line)
            connection = CONNECTION.search(line)
            if connection and connection["address"] != f"{CLOSED_HOST}:{CLOSED_PORT}":
                address = connection["address"]  # through the closed proxy: nothing left the machine
                verdict = Verdict(tuple(args), False, f"no endpoint override for {address}: add it to HIDDEN_APIS")
                break
            running = running or line.startswith("DEBUG: Running [gcloud.")  # the command line is parsed
            if running and REFUSED.search(line):
                verdict = Verdict(tuple(args), True, "")
                break
    finally:
        stop.cancel()
        stop_group(process)
        process.wait()
        process.stderr.close()
    if verdict is None and process.returncode == -signal.SIGKILL:
        return Verdict(tuple(args), False, f"no connection within {TIMEOUT_SECONDS} s: {error_lines(stderr)}")
    return verdict or Verdict(tuple(args), False, f"exit {process.returncode}: {error_lines(stderr)}")


def stop_group(process: subprocess.Popen[str]) -> None:
    """Kill gcloud and its children unless it has ended."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended since the poll
            os.killpg(process.pid, signal.SIGKILL)


def check_all(gcloud: Path, commands: Iterable[Sequence[str]], env: Mapping[str, str], cwd: Path) -> list[Verdict]:
    """``check`` every command, ``PARALLEL`` at a time; verdicts in the commands' order."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda args: check(gcloud, args, env, cwd), commands))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with Cloud Build's substitutions filled in (an unknown one is a KeyError)."""

    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        return values[name] if name else "$"

    return SUBSTITUTION.sub(value, text)


def cloud_build_gcloud_commands(config: Mapping[str, Any], builtins: Mapping[str, str]) -> list[list[str]]:
    """The gcloud invocations of a Cloud Build config's steps, substitutions filled in (the
    config's defaults, then ``builtins`` such as PROJECT_ID): steps whose entrypoint is gcloud,
    and gcloud commands inside the scripts of shell steps."""
    values = {**config.get("substitutions", {}), **builtins}
    commands: list[list[str]] = []
    for step in config.get("steps", []):
        args = [substitute(arg, values) for arg in step.get("args", [])]
        entrypoint = step.get("entrypoint") or ("gcloud" if step["name"].endswith("/gcloud") else None)
        if entrypoint == "gcloud":
            commands.append(args)
        elif "script" in step:
            commands += shell_gcloud_commands(substitute(step["script"], values))
        elif entrypoint in SHELLS and args[:1] == ["-c"]:
            commands += shell_gcloud_commands(args[1])
    return commands


def shell_gcloud_commands(script: str) -> list[list[str]]:
    """The gcloud commands of a shell script: lines, pipelines and lists (``&&``, ``;``) are
    split, redirections dropped, and ``$(...)`` substitutions searched as scripts of their own."""
    inner, script = command_substitutions(re.sub(r"\\\n", " ", script))  # continued lines joined
    script = re.sub(r"(?<=\s)\d(?=[<>])", "", script)  # file descriptors: 2>/dev/null is >/dev/null
    lexer = shlex.shlex(script, posix=True, punctuation_chars="|&;()<>\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    commands = [command for text in inner for command in shell_gcloud_commands(text)]
    for words in simple_commands(list(lexer)):
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):  # VAR=value gcloud ...
            words = words[1:]
        if words[:1] == ["gcloud"]:
            commands.append(words[1:])
    return commands


def command_substitutions(script: str) -> tuple[list[str], str]:
    """The texts of the outermost ``$(...)`` in ``script`` (parentheses balanced), and the script
    with each replaced by a placeholder word."""
    found: list[str] = []
    while (start := script.find("$(")) >= 0:
        depth, end = 0, start + 1
        for end in range(start + 1, len(script)):
            depth += {"(": 1, ")": -1}.get(script[end], 0)
            if depth == 0:
                break
        found.append(script[start + 2 : end])
        script = script[:start] + "SUBSTITUTED" + script[end + 1 :]
    return found, script


def simple_commands(tokens: Sequence[str]) -> Iterator[list[str]]:
    """Split shell tokens at separators into commands' words, without redirections."""
    words: list[str] = []
    skip_target = False
    for token in tokens:
        if token in SHELL_SEPARATORS:
            yield words
            words, skip_target = [], False
        elif re.fullmatch(r"[<>&]+", token):
            skip_target = True  # the next word is the redirection's file
        elif skip_target:
            skip_target = False
        else:
            words.append(token)
    yield words
