"""Broker adapters behind one small Protocol (`base.Broker`): `sim` and `alpaca`."""
