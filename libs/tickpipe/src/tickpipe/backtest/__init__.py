"""Backtests: replay recorded market data through the pipeline and report how it did.

``report`` computes the metrics from fills and mark prices; ``render`` draws them as terminal
tables, an HTML page and PNG plots.
"""
