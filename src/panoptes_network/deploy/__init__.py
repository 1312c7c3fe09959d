"""Deployment to Google Cloud, derived from the topology (``resources/topology.toml``).

``bin/deploy`` (``python -m panoptes_network.deploy``) turns the topology into the exact gcloud
commands: container files (``images``), per-service Cloud Run deployments (``services``) and the
shared infrastructure (``infra``, then ``sql_schema_import``), executed or only printed
(``--dry-run``) by ``gcloud_runner``. ``bin/deploy files`` writes what is generated and
committed: Dockerfiles and Cloud Build configs (``build_files``), the Cloud SQL schema file
(``sql_schema``) and the README's wiring block (``readme_topology``).
"""
