"""Agent Arena server: the Starlette app, its routes, storage and the match machinery."""

__version__ = "0.1.0"

__all__ = ["__version__"]
