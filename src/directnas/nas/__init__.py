"""The ProxylessNAS search: supernet, gate strategies, hardware-aware loss, searcher."""
