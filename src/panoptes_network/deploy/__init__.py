"""Deployment to Google Cloud, derived from the topology (``resources/topology.toml``).

``bin/deploy`` (``python -m panoptes_network.deploy``) turns the topology into the exact gcloud
commands: container files (``images``), per-service Cloud Run deployments (``services``) and the
shared infrastructure (``infra``), executed or only printed (``--dry-run``) by ``gcloud_runner``.
"""
