"""Benchmarks of the generated service against bare Flask: ``python -m benchmarks --help``."""
