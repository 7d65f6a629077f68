"""``--cluster-name``, ``--manager`` and every installed manager's own flags, and building the chosen manager."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from clipper_core.errors import PluginError, UnknownPluginError

if TYPE_CHECKING:
    from clipper_core.container_manager import ContainerManager, ManagerOption
    from clipper_core.registry import PluginHost

DEFAULT_MANAGER = "local"


def add_manager_arguments(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    """Add the cluster-selection flags, then one group per installed manager with the flags it declares."""
    parser.add_argument("--cluster-name", default=None, help="cluster name (default: the manager's own default)")
    registry = host.container_managers()
    parser.add_argument(
        "--manager",
        default=DEFAULT_MANAGER,
        help=f"container manager plugin: {', '.join(registry.names())} (default: %(default)s)",
    )
    declared: dict[str, tuple[ManagerOption, list[str]]] = {}
    by_group: dict[tuple[str, ...], list[ManagerOption]] = {}
    for name, cls in registry.items():
        for option in cls.cli_options():
            seen = declared.get(option.cli_flag)
            if seen is None:
                declared[option.cli_flag] = (option, [name])
            elif seen[0].name != option.name:
                msg = (
                    f"Container managers {', '.join(seen[1])} and {name} both declare {option.cli_flag} "
                    f"but for different arguments ({seen[0].name} and {option.name})"
                )
                raise PluginError(msg)
            else:
                seen[1].append(name)
    for option, owner_list in declared.values():
        by_group.setdefault(tuple(owner_list), []).append(option)
    for owners, options in by_group.items():
        group = parser.add_argument_group(f"{' and '.join(owners)} manager options")
        for option in options:
            group.add_argument(option.cli_flag, dest=_dest(option), type=option.type, default=None, help=option.help)


def _dest(option: ManagerOption) -> str:
    return f"manager_opt_{option.name}"


def manager_kwargs(cls: type[ContainerManager], args: argparse.Namespace) -> dict[str, Any]:
    """The constructor arguments for ``cls`` from ``args``: only flags the user gave and ``cls`` declares.

    :raises UnknownPluginError: a flag was given that belongs to another manager.
    """
    own = {option.name for option in cls.cli_options()}
    kwargs: dict[str, Any] = {}
    if getattr(args, "cluster_name", None) is not None:
        kwargs["cluster_name"] = args.cluster_name
    for key, value in vars(args).items():
        if not key.startswith("manager_opt_") or value is None:
            continue
        name = key.removeprefix("manager_opt_")
        if name not in own:
            msg = (
                f"The {cls.PLUGIN_NAME!r} container manager does not take {name!r}: "
                "that flag belongs to another manager"
            )
            raise UnknownPluginError(msg)
        kwargs[name] = value
    return kwargs


def build_manager(host: PluginHost, args: argparse.Namespace) -> ContainerManager:
    """The container manager ``--manager`` names, with the options given for it."""
    registry = host.container_managers()
    name = getattr(args, "manager", DEFAULT_MANAGER)
    if name not in registry:
        installed = ", ".join(registry.names()) or "none"
        msg = f"Unknown container manager {name!r}. Installed container managers: {installed}"
        raise UnknownPluginError(msg)
    cls = registry.get(name)
    return cls(**manager_kwargs(cls, args))
