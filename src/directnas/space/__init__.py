"""The search space: ops, the space (stages x candidates) and a chosen architecture."""
