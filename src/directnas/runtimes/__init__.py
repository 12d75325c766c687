"""Runtimes: one record per runtime (how to write its artifact, run it and time it), in a registry."""
