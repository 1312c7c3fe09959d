"""The local cloud stack: emulators, fake-gcs-server and every service under gunicorn."""
