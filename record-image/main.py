"""Cloud Run entry point of the record-image service: gunicorn serves `main:app`."""

from panoptes_network.service import create_service

app = create_service("record-image")
