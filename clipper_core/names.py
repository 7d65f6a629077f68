"""One set of rules for application names, model names and model versions, used wherever a name is accepted.

Three levels, from the most permissive:

* :func:`check_model_name` / :func:`check_app_name` - what the management API stores. The original's rules and
  messages (model names, versions and labels may not contain ``,`` or ``:``, the Redis key delimiters; reference
  §2 and §5), plus what nothing downstream can handle safely: an empty name, ``.`` or ``..``, a ``/`` or ``\\``
  (a path separator), a glob character (``*?[]``, which breaks Redis ``KEYS``/``SCAN`` patterns), whitespace or a
  control character.
* :func:`check_path_component` - a name that becomes one file or directory name (the local cluster's model store,
  logs, readiness files, virtualenvs; Docker container names): letters, digits, ``-``, ``_``, ``.`` and ``+``,
  starting with a letter or digit, no ``..``.
* :func:`check_container_name_part` - a name inside a Docker container name (no ``+``).
* :func:`validate_model_name` - the original client's DNS-1123 check of model names and versions
  (``ClipperConnection``), with its message.

Every check returns the name unchanged (as ``str``) or raises a :class:`~clipper_core.errors.ClipperException`
(:class:`~clipper_core.errors.ManagementError` for the management API's, a 400 there).
"""

from __future__ import annotations

import logging
import re

from clipper_core.errors import ClipperException, ContainerManagerError, ManagementError

logger = logging.getLogger(__name__)

#: Characters the original forbids in model names, versions and labels: they delimit Redis keys.
PROHIBITED_GROUP_CHARS = (",", ":")
#: Longest name accepted anywhere (a Redis key and a file name must stay well below their limits).
MAX_NAME_LENGTH = 200

_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_PATH_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
_DOCKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # what Docker allows in a container name
_UNSAFE_CHARS = frozenset("/\\*?[]")


def _unsafe_reason(value: str) -> str | None:
    """Why ``value`` cannot be stored as a name (``None`` when it can)."""
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if value in (".", ".."):
        return "'.' and '..' are not names"
    bad = sorted({c for c in value if c in _UNSAFE_CHARS or c.isspace() or not c.isprintable()})
    if bad:
        return (
            "it contains " + ", ".join(repr(c) for c in bad) + " (path separators, glob characters, whitespace "
            "and control characters are not allowed)"
        )
    return None


def check_group_str(value: str, label: str) -> str:
    """The original management frontend's check of model names, versions and labels, with its exact message."""
    value = str(value)
    if any(c in value for c in PROHIBITED_GROUP_CHARS):
        chars = ", ".join(f"'{c}'" for c in PROHIBITED_GROUP_CHARS)
        msg = f"Invalid {label} supplied: {value}. Contains one of: {chars}"
        raise ManagementError(msg)
    return value


def check_model_name(value: str, label: str = "model name") -> str:
    """A model name or version the management API may store (``label`` is ``model name`` or ``model version``)."""
    value = check_group_str(value, label)
    reason = _unsafe_reason(value)
    if reason is not None:
        msg = f"Invalid {label} supplied: {value!r}: {reason}"
        raise ManagementError(msg)
    return value


def check_app_name(value: str) -> str:
    """An application name: it becomes the URL path ``/<app>/predict`` and the Redis keys ``<app>`` and
    ``<app>:0:0``, so besides the unsafe characters it may not contain ``,`` or ``:``."""
    value = str(value)
    if not value or any(c in value for c in ",:/") or any(c.isspace() for c in value):
        msg = (
            f"Invalid application name supplied: {value!r}. It must be non-empty and contain none of ',', ':', '/' "
            "or spaces"
        )
        raise ManagementError(msg)
    reason = _unsafe_reason(value)
    if reason is not None:
        msg = f"Invalid application name supplied: {value!r}: {reason}"
        raise ManagementError(msg)
    return value


def is_path_component(value: str) -> bool:
    value = str(value)
    return bool(_PATH_SAFE.match(value)) and ".." not in value and len(value) <= MAX_NAME_LENGTH


def check_path_component(value: str, what: str) -> str:
    """A name that becomes exactly one directory or file name (or a part of one); raises otherwise."""
    value = str(value)
    if not is_path_component(value):
        msg = (
            f"Invalid {what} {value!r}: use letters, digits, '-', '_', '.' or '+', start with a letter or digit "
            f"(no '..', at most {MAX_NAME_LENGTH} characters)"
        )
        raise ContainerManagerError(msg)
    return value


def check_container_name_part(value: str, what: str) -> str:
    """A name that becomes part of a Docker container name (``<name>_<version>-<n>``): letters, digits, ``_``,
    ``.`` and ``-``, starting with a letter or digit. Kubernetes object names need :func:`validate_model_name`."""
    value = str(value)
    if not _DOCKER_NAME.match(value) or len(value) > MAX_NAME_LENGTH:
        msg = (
            f"Invalid {what} {value!r}: a container name may only contain letters, digits, '_', '.' and '-', "
            f"start with a letter or digit, and have at most {MAX_NAME_LENGTH} characters"
        )
        raise ContainerManagerError(msg)
    return value


def validate_model_name(value: str, what: str = "model name") -> str:
    """Client-side check of model names and versions (DNS-1123 label), with the original's message."""
    value = str(value)
    if not _DNS1123.match(value):
        msg = (
            f"Invalid value: {value}: a {what} must be a valid DNS-1123  subdomain. It must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?\\Z'"
        )
        raise ClipperException(msg)
    return value


def validate_app_name(value: str) -> str:
    """:func:`check_app_name` for clients (raises :class:`ClipperException` with the same message)."""
    return check_app_name(value)
