"""The steps of the pipeline, one module each; each module exposes ``STEP``."""
