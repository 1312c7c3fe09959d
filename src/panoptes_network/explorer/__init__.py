"""The public data explorer: read-only views of the records and buckets (pages, JSON API, files)."""
