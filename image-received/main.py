"""Cloud Run entry point of the image-received service: gunicorn serves `main:app`."""

from panoptes_network.drivers.service import create_service

app = create_service("image-received")
