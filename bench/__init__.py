"""Benchmarks with figures: ``python -m bench --scale SF --out FILE.json``, ``python -m bench.report``."""
