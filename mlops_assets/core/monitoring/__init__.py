"""Drift and realized performance, their thresholds, text charts, and operator events."""
