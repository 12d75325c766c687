"""Latency: measure ops and nets on a backend, latency tables, the predictor."""
