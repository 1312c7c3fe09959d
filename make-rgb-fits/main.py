"""Cloud Run entry point of the make-rgb-fits service: gunicorn serves `main:app`."""

from panoptes_network.drivers.service import create_service

app = create_service("make-rgb-fits")
