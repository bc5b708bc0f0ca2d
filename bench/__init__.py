"""Benchmarks of the whole worker: it runs as a subprocess, measured from outside over AMQP.

`python -m bench <intake|capacity|dispatch|recovery|cancel|all> [--quick]`. Each run prints a
readable summary and then one JSON line with its figures.
"""
