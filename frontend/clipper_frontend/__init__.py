"""Clipper in Python frontends: the Tornado query frontend (REST + ZeroMQ RPC) and the management frontend."""

__version__ = "0.5.0"
