"""aictl's benchmarks: measured figures, each beside a baseline taken in the same run.

Run ``python -m bench`` (everything), ``python -m bench claims`` (one part) or
``python -m bench --quick`` (a smoke version under a minute). See ``bench/README.md``.
"""
