"""Cloud Run entry point of the plate-solver service: gunicorn serves `main:app`."""

from panoptes_network.drivers.service import create_service

app = create_service("plate-solver")
