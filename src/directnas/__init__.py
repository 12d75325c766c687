"""directnas: hardware-aware neural architecture search on your task and your device."""

__version__ = "0.1.0"
