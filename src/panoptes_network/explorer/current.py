"""The ``Archive`` of the app handling the request, for the blueprints (API and pages) that read it."""

from __future__ import annotations

from flask import Flask, current_app

from panoptes_network.explorer.archive import Archive

EXTENSION = "panoptes_archive"


def attach_archive(app: Flask, archive: Archive) -> None:
    app.extensions[EXTENSION] = archive


def current_archive() -> Archive:
    archive: Archive = current_app.extensions[EXTENSION]
    return archive
