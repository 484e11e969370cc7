"""omsflow benchmark suite: engine throughput beside the bare-driver limit of the same SQL.

Run ``python -m bench --help``; docs/BENCHMARKS.md has the commands, the figures and the
method. The package is not part of the installed engine (it lives beside it, like tests/).
"""
