"""Datasets: the uint8 ``Dataset`` and its batches (``datasets``), the readers of data on disk
(``readers``: a registry of layouts; image folders decoded once into a memory-mapped cache) and
the adapters of in-memory data (``sources``)."""
