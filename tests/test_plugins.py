"""The plugin system: entry points, built-ins through the same hooks, blocking, duplicates, failures."""

from __future__ import annotations

import importlib.metadata
import types
from typing import Any

import pluggy
import pytest

from clipper_core import hookimpl, hookspecs
from clipper_core.errors import DuplicatePluginError, PluginError, UnknownPluginError
from clipper_core.input_types import Doubles, InputType
from clipper_core.plugins import get_plugin_manager, list_plugins
from clipper_core.registry import PluginHost


def test_every_hook_is_prefixed_typed_and_documented() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    names = [n for n in dir(pm.hook) if not n.startswith("_")]
    assert names, "no hooks registered"
    for name in names:
        assert name.startswith("clipper_"), name
        spec = getattr(hookspecs, name)
        assert spec.__doc__ and ":returns:" in spec.__doc__
        assert "return" in spec.__annotations__


def test_builtins_register_through_the_same_hooks() -> None:
    host = PluginHost(get_plugin_manager(load_entrypoints=False))
    assert host.input_types().names() == ["bytes", "doubles", "floats", "integers", "strings"]
    impls = host.pm.hook.clipper_register_input_types.get_hookimpls()
    assert [i.plugin_name for i in impls] == ["clipper_core.input_types"]
    assert all(i.trylast for i in impls)


def test_installed_third_party_plugin_is_discovered_through_its_entry_point() -> None:
    pm = get_plugin_manager()
    assert pm.has_plugin("json_input")
    types_ = PluginHost(pm).input_types()
    json_type = types_.parse("json")
    assert json_type.code == 16
    assert json_type.decode(json_type.encode({"a": [1, 2]})) == {"a": [1, 2]}
    listed = {p["name"]: p for p in list_plugins(pm)}
    assert listed["json_input"]["dist"] == "clipper-json-input"
    assert listed["json_input"]["version"] == "0.1.0"
    assert "clipper_register_input_types" in listed["json_input"]["hooks"]
    assert listed["python_closure"]["dist"] == "clipper-deployers"


def test_autoload_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPPER_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = get_plugin_manager()
    assert not pm.has_plugin("json_input")
    with pytest.raises(UnknownPluginError, match="Unknown input type 'json'"):
        _registry_get(pm, "json")


def _registry_get(pm: pluggy.PluginManager, name: str) -> Any:
    from clipper_core.registry import Registry

    return Registry.from_results("input type", pm.hook.clipper_register_input_types(), "name").get(name)


def test_blocking_a_plugin_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPPER_DISABLED_PLUGINS", "json_input, clipper_core.local.hooks")
    pm = get_plugin_manager()
    assert not pm.has_plugin("json_input")
    assert pm.is_blocked("json_input")
    assert "json" not in PluginHost(pm).input_types()
    assert "local" not in PluginHost(pm).container_managers()


class _Custom(InputType):
    name = "custom"
    code = 42

    def encode(self, value: Any, key: str = "input") -> bytes:
        return repr(value).encode()

    def decode(self, payload: bytes) -> Any:
        return payload


def test_external_plugin_overrides_a_builtin_and_duplicates_are_refused() -> None:
    class Faster(Doubles):
        pass

    class Overrider:
        @hookimpl
        def clipper_register_input_types(self) -> list[InputType]:
            return [Faster()]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Overrider(), "overrider")
    types_ = PluginHost(pm).input_types()
    assert isinstance(types_.parse("doubles"), Faster)

    def plugin_from(package: str) -> object:
        custom = type("Custom", (_Custom,), {"__module__": f"{package}.types"})

        class Plugin:
            @hookimpl
            def clipper_register_input_types(self) -> list[InputType]:
                return [custom()]

        return Plugin()

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(plugin_from("plugin_a"), "plugin-a")
    pm.register(plugin_from("plugin_b"), "plugin-b")
    with pytest.raises(
        DuplicatePluginError,
        match="Duplicate input type 'custom': registered by '(plugin_a|plugin_b)' and by '(plugin_a|plugin_b)'",
    ):
        PluginHost(pm).input_types()


def test_unknown_names_give_clear_errors() -> None:
    host = PluginHost(get_plugin_manager(load_entrypoints=False))
    with pytest.raises(UnknownPluginError, match="Unknown container manager 'kubernetes'. Installed: local"):
        host.container_managers().get("kubernetes")
    with pytest.raises(Exception, match="not a valid type"):
        host.input_types().parse("tensor")


class _FakeEntryPoint:
    group = "clipper"

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.value = f"fake:{name}"
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


class _FakeDist:
    def __init__(self, *eps: _FakeEntryPoint) -> None:
        self.entry_points = list(eps)
        self.metadata = {"name": "fake-dist"}
        self.version = "9.9"

    @property
    def name(self) -> str:
        return "fake-dist"


def test_entry_point_import_error_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        importlib.metadata, "distributions", lambda: [_FakeDist(_FakeEntryPoint("broken", ImportError("no module x")))]
    )
    with pytest.raises(PluginError, match="failed to load.*no module x"):
        get_plugin_manager()


def test_hookimpl_with_a_typo_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("typo_plugin")

    @hookimpl
    def clipper_register_input_typos() -> list[Any]:  # the typo
        return []

    mod.clipper_register_input_typos = clipper_register_input_typos  # type: ignore[attr-defined]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [_FakeDist(_FakeEntryPoint("typo", mod))])
    with pytest.raises(PluginError, match="typo"):
        get_plugin_manager()


def test_duplicate_input_type_codes_are_refused() -> None:
    class SameCode(_Custom):
        name = "other"
        code = 3  # doubles' code

    class P:
        @hookimpl
        def clipper_register_input_types(self) -> list[InputType]:
            return [SameCode()]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(P(), "same-code")
    with pytest.raises(DuplicatePluginError, match="RPC code 3"):
        PluginHost(pm).input_types()
