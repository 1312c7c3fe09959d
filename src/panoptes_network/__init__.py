"""PANOPTES Network image pipeline: small steps, run embedded or as Pub/Sub push services."""

__version__ = "0.1.0"
