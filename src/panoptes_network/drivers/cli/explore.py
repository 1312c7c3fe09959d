"""``panoptes-network explore``: the data explorer over the embedded data directory, in a browser.

The same app the ``data-explorer`` service runs in the cloud (``explorer.app.create_explorer``),
here on the local ``Context``: records from ``metadata.sqlite``, files from the bucket folders.
Served by gunicorn (as every service is), never by Flask's development server, on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import errno
import socket
from pathlib import Path

from panoptes_network.drivers.cli.shared import Commands, CommonOptions, print_error

DEFAULT_PORT = 8080
HOST = "127.0.0.1"  # this machine only: the public explorer is the cloud service
THREADS = 8  # pages wait on SQLite and file reads, not the CPU


def add_parser(commands: Commands, options: CommonOptions) -> None:
    explore = commands.add_parser(
        "explore",
        parents=[options.data_dir],
        help="look at the processed data in a browser (the data explorer, on 127.0.0.1)",
        description="Serve the data explorer (observations, frames, products, the JSON API under /api) over "
        "the data directory that 'panoptes-network process' and bin/demo write, on 127.0.0.1, and print its "
        "URL. Read-only: no record or stored file changes; each request is one JSON line in "
        "DATA_DIR/explorer.log. Ctrl-C stops it.",
    )
    explore.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default: %(default)s; 0: any free port)"
    )
    explore.set_defaults(func=cmd_explore)


def cmd_explore(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    if not (data_dir / "metadata.sqlite").is_file():
        print_error(
            f"no processed data in {data_dir} (no metadata.sqlite): run bin/demo or "
            "'panoptes-network process PATH' first, or pass --data-dir"
        )
        return 1
    try:
        port = usable_port(args.port)
    except OSError as exc:
        print_error(f"cannot listen on {HOST}:{args.port}: {exc.strerror or exc}; choose another with --port")
        return 1
    url = f"http://{HOST}:{port}/"
    log_path = data_dir / "explorer.log"
    print(f"Data explorer of {data_dir}: open {url} in a browser (request log {log_path}; Ctrl-C stops it)")
    from panoptes_network.drivers.explorer_server import ExplorerServer

    ExplorerServer(data_dir, f"{HOST}:{port}", THREADS, log_path).run()
    return 0


def usable_port(port: int) -> int:
    """``port`` once checked free (gunicorn's own bind error is five retries and a traceback),
    or any free port for 0."""
    if not 0 <= port <= 65535:
        raise OSError(errno.EINVAL, f"port {port} is not between 0 and 65535")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))
        chosen: int = probe.getsockname()[1]
        return chosen
