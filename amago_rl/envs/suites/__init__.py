"""Adapters for external benchmark suites (optional extras; imported lazily by the registry)."""
