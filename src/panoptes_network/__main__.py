"""``python -m panoptes_network``: the ``panoptes-network`` command."""

from panoptes_network.drivers.cli import main

raise SystemExit(main())
