"""Synthetic data with known answers: frames, camera raws, star fields of the real sky."""
