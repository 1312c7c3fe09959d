"""Cloud Run entry point of the data-explorer service: gunicorn serves `main:app`."""

from panoptes_network.drivers.service import create_service

app = create_service("data-explorer")
