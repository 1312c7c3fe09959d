"""Cloud Run entry point of the make-lightcurves service: gunicorn serves `main:app`."""

from panoptes_network.drivers.service import create_service

app = create_service("make-lightcurves")
