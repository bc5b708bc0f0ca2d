"""Metrics, health endpoints and the small HTTP server that serves them."""
