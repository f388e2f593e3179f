"""Dataset evaluation as the reference ships it (genforce/JOSH ``josh/eval/evaluate_{emdb,rich,sloper4d}.py``).

``python -m josh_jax.eval.emdb DATA_ROOT RESULTS_ROOT --smpl-dir DIR [--json OUT]``
(and ``rich``, ``sloper4d``): reads the dataset's own released layout, runs its
ground truth through :mod:`josh_jax.body` with the user's SMPL files, reads each
sequence's ``RESULTS_ROOT/<sequence>/results.npz`` and prints the reference's
metric table per sequence and overall (docs/evaluation.md).
"""
