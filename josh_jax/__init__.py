"""josh_jax: a pure-functional JAX reimplementation of JOSH (joint human-scene optimization).

Data flow: video -> ``frontends`` -> front-end bundle -> ``problem`` -> ``losses``/``solve``
-> ``results`` -> export. Conventions: docs/conventions.md.
"""
__version__ = "0.1.0"
