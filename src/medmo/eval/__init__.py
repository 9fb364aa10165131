"""Evaluation: benchmarks, scoring, metrics, judge, backends, runner, reports."""
