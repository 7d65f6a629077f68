"""One error hierarchy for the whole project, rooted in :class:`ClipperException`.

``ClipperException`` and ``UnconnectedException`` keep the original names and the ``.msg``
attribute so code written against ``clipper_admin`` keeps working.
"""

from __future__ import annotations

from typing import ClassVar


class ClipperException(Exception):
    """Base class for all Clipper errors. ``.msg`` holds the message, as in the original."""

    status_code: ClassVar[int] = 400

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg)
        self.msg = msg

    def __str__(self) -> str:
        return str(self.msg)


ClipperError = ClipperException


class UnconnectedException(ClipperException):
    """Raised by ClipperConnection methods that need a connection when there is none."""

    def __init__(self, *args: object) -> None:
        super().__init__(
            "No connection to Clipper cluster. Call ClipperConnection.connect to connect to an existing "
            "cluster or ClipperConnnection.start_clipper to create a new one"
        )


class PluginError(ClipperException):
    """A plugin failed to load or is misconfigured."""


class UnknownPluginError(PluginError, LookupError):
    """No plugin is registered under the requested name."""


class DuplicatePluginError(PluginError):
    """Two plugins registered the same name."""


class ContainerManagerError(ClipperException):
    """A container manager could not carry out an operation."""


class DeploymentError(ClipperException):
    """A model could not be built or deployed."""


class InputDecodeError(ClipperException, ValueError):
    """A query input does not match the application's input type."""


class ManagementError(ClipperException):
    """A management operation was refused (bad request or conflicting state)."""
