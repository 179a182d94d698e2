"""Summarise finished runs and sweeps: tables per run, per group of seeds and per effect (csv,
report.md, terminal), curves, ablation and parallel-coordinates figures, and the sections that
plug-ins add (`mnistlab.report.hooks`: the student study's checks come that way).

The framework writes the report at the end of every multirun with the sweep dir (the Hydra
callback in :mod:`~mnistlab.report.sweep`); by hand: ``python -m mnistlab.report DIR [DIR...]
[--out OUT]``, or :func:`mnistlab.report.write.write_report`. A run is any directory holding a
``summary.json``; failed jobs (no metrics, null accuracies) are listed, never fatal.

This file imports nothing: Hydra builds the callback at every start of ``train.py`` (a single
run, a sweep's launching process), and the report's modules (its statistics and figures) are
only needed once a sweep is done. Importing train.py's modules and both callbacks took 1.8-2.1 s
with them and 0.9-1.0 s without (the training backends then import scipy themselves).
"""
