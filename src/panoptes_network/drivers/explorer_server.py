"""gunicorn in this process, serving the data explorer over an embedded data directory.

``panoptes-network explore`` uses it: the app is built in the worker (after gunicorn forks), so
the SQLite connection and the log file belong to the process that serves the requests.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from gunicorn.app.base import BaseApplication

from panoptes_network.adapters.backends import local_context
from panoptes_network.core.logs import configure_logging
from panoptes_network.drivers.cli.shared import local_settings
from panoptes_network.explorer.app import create_explorer


def explorer_app(data_dir: Path, log_path: Path) -> Flask:
    """The explorer on the embedded stand-ins, one JSON log line per request in ``log_path``."""
    configure_logging(open(log_path, "a", buffering=1))  # noqa: SIM115 (open for the life of the process)
    context, _ = local_context(local_settings(data_dir), data_dir)
    return create_explorer(context)


class ExplorerServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type information
    """One gunicorn worker with ``threads`` threads on ``bind``; no access log (the app logs)."""

    def __init__(self, data_dir: Path, bind: str, threads: int, log_path: Path) -> None:
        self.data_dir, self.bind, self.threads, self.log_path = data_dir, bind, threads, log_path
        super().__init__()

    def load_config(self) -> None:
        for key, value in {
            "bind": self.bind,
            "workers": 1,
            "threads": self.threads,
            "accesslog": None,
            "control_socket_disable": True,  # nothing here manages it at run time
        }.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return explorer_app(self.data_dir, self.log_path)
