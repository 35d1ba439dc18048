"""Feature encoders: one module per feature kind; `InputEncoder` concatenates them into one vector per row."""

from .inputs import InputEncoder

__all__ = ["InputEncoder"]
