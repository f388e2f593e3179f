"""Synthetic worlds and rendered clips with exact ground truth (tests, benchmarks,
``python -m josh_jax.demo --synthetic``)."""
