"""Datasets: readers of image data on disk and adapters of in-memory data to one uint8 ``Dataset``."""
