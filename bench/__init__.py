"""Benchmarks of tierfed against raw SQL, a plain Starlette endpoint and PostGraphile.

``make bench`` (``python -m bench.run``) builds or reuses its data sets on its own
embedded PostgreSQL under ``.tierfed/bench/``, runs every case with its baselines
in the same run, prints a table and writes ``bench/results/<timestamp>.json``.
See BENCHMARKS.md at the repository root.
"""
