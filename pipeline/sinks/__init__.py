"""Sink stage: the target protocol and one module per target."""
