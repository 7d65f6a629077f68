"""The RPC protocol (version 3) between the query frontend and model containers."""

from clipper_core.rpc.frames import *  # noqa: F403
from clipper_core.rpc.frames import __all__  # noqa: F401
