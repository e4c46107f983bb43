"""Shared core of the Glitchflow services: chunks, tokens, settings, logs, metrics.

Every service may import this package; it imports none of them.
"""
