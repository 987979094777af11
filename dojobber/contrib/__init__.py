"""Bundled jobs for common workflows; each module needs its extra installed."""
