"""Adapters hide where things live: Google Cloud (real clients) or this machine (local stand-ins)."""
