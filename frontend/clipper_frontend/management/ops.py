"""Management operations over :class:`~clipper_core.config_store.ConfigStore`, independent of HTTP.

Every operation takes the decoded JSON request body and returns either a plain-text sentence (mutations, and the
raw default output of ``get_state``) or a JSON-serialisable value (getters). Refusals raise
:class:`~clipper_core.errors.ManagementError` with the original's exact message (reference §2); malformed bodies
raise :class:`~clipper_frontend.management.schema.JsonRequestError`, whose message is already
``Error parsing JSON: <detail>. Expected JSON schema: <schema of the endpoint>``, as the original's handlers
format it.

Deliberate differences from the original: an invalid ``input_type`` is a clear 400 (the original dropped the
connection); ``latency_slo_micros`` must be positive; app names are validated; non-integer numbers name the field;
``delete_app`` also removes links and selection state; ``delete_versioned_model`` deletes the model and its replica
records at once instead of only ``HDEL valid``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from clipper_core.config_store import ConfigStore
from clipper_core.errors import ClipperException, ManagementError
from clipper_core.names import check_app_name, check_group_str, check_model_name
from clipper_frontend.management.schema import (
    ADD_APPLICATION_JSON_SCHEMA,
    ADD_MODEL_JSON_SCHEMA,
    ADD_MODEL_LINKS_JSON_SCHEMA,
    DELETE_APPLICATION_JSON_SCHEMA,
    DELETE_MODEL_LINKS_JSON_SCHEMA,
    DELETE_VERSIONED_MODEL_JSON_SCHEMA,
    GET_APPLICATION_REQUESTS_SCHEMA,
    GET_CONTAINER_REQUESTS_SCHEMA,
    GET_LINKED_MODELS_REQUESTS_SCHEMA,
    GET_MODEL_REQUESTS_SCHEMA,
    SELECTION_JSON_SCHEMA,
    SET_VERSION_JSON_SCHEMA,
    VERBOSE_OPTION_JSON_SCHEMA,
    Body,
    JsonRequestError,
    parse_body,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = -1
DEFAULT_USER_ID = 0
MUTATIONS = frozenset(
    {
        "add_app",
        "delete_app",
        "add_model_links",
        "delete_model_links",
        "add_model",
        "set_model_version",
        "delete_versioned_model",
    }
)


def app_to_json(name: str, app: dict[str, str], linked: list[str]) -> dict[str, Any]:
    return {
        "input_type": app.get("input_type", ""),
        "default_output": app.get("default_output", ""),
        "latency_slo_micros": _to_int(app.get("latency_slo_micros", "0")),
        "name": name,
        "linked_models": linked,
    }


def model_to_json(model: dict[str, str], is_current: bool) -> dict[str, Any]:
    return {
        "model_name": model.get("model_name", ""),
        "model_version": model.get("model_version", ""),
        "input_type": model.get("input_type", ""),
        "labels": model.get("labels", "").split(","),
        "container_name": model.get("container_name", ""),
        "model_data_path": model.get("model_data_path", ""),
        "is_current_version": is_current,
    }


_CONTAINER_HIDDEN = {"zmq_connection_id", "batch_size"}
_CONTAINER_FIELDS = ("model_id", "model_name", "model_version", "model_replica_id", "input_type")


def container_to_json(container: dict[str, str]) -> dict[str, Any]:
    """The original's five fields, then every extra field of the DB-3 hash (status, error, pid, frontend, ...)."""
    out: dict[str, Any] = {k: container.get(k, "") for k in _CONTAINER_FIELDS}
    out["model_replica_id"] = _to_int(container.get("model_replica_id", "0"))
    for key, value in container.items():
        if key in out or key in _CONTAINER_HIDDEN:
            continue
        out[key] = _to_int(value) if key == "pid" and value.lstrip("-").isdigit() else value
    return out


def _to_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


Result = str | list[Any] | dict[str, Any]


class ManagementOps:
    """The management API's operations. ``await ops.call(endpoint, raw_body)`` runs one request and returns its
    result and, for a successful mutation, the configuration epoch it produced."""

    def __init__(self, store: ConfigStore, input_types: Any) -> None:
        self.store = store
        self.input_types = input_types
        self._lock = asyncio.Lock()
        self._endpoints: dict[str, tuple[Callable[[Body], Awaitable[Result]], str]] = {
            "add_app": (self.add_app, ADD_APPLICATION_JSON_SCHEMA),
            "delete_app": (self.delete_app, DELETE_APPLICATION_JSON_SCHEMA),
            "add_model_links": (self.add_model_links, ADD_MODEL_LINKS_JSON_SCHEMA),
            "delete_model_links": (self.delete_model_links, DELETE_MODEL_LINKS_JSON_SCHEMA),
            "add_model": (self.add_model, ADD_MODEL_JSON_SCHEMA),
            "set_model_version": (self.set_model_version, SET_VERSION_JSON_SCHEMA),
            "delete_versioned_model": (self.delete_versioned_model, DELETE_VERSIONED_MODEL_JSON_SCHEMA),
            "get_all_applications": (self.get_all_applications, VERBOSE_OPTION_JSON_SCHEMA),
            "get_application": (self.get_application, GET_APPLICATION_REQUESTS_SCHEMA),
            "get_linked_models": (self.get_linked_models, GET_LINKED_MODELS_REQUESTS_SCHEMA),
            "get_all_models": (self.get_all_models, VERBOSE_OPTION_JSON_SCHEMA),
            "get_model": (self.get_model, GET_MODEL_REQUESTS_SCHEMA),
            "get_all_containers": (self.get_all_containers, VERBOSE_OPTION_JSON_SCHEMA),
            "get_container": (self.get_container, GET_CONTAINER_REQUESTS_SCHEMA),
            "get_state": (self.get_state, SELECTION_JSON_SCHEMA),
        }

    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    async def call(self, endpoint: str, raw: bytes) -> tuple[Result, int | None]:
        """Run one endpoint; JSON errors come back wrapped as the original's ``json_error_msg``. A successful
        mutation also returns the configuration epoch it produced.

        Query frontends report the epoch they have applied in ``/healthz``, so a client can wait until its own
        change is being served (read-your-writes).
        """
        op, schema = self._endpoints[endpoint]
        try:
            doc = Body(parse_body(raw))
            if endpoint in MUTATIONS:
                async with self._lock:  # check-then-write sequences must not interleave
                    result = await op(doc)
                    return result, await self.store.bump_epoch()
            return await op(doc), None
        except JsonRequestError as e:
            msg = f"Error parsing JSON: {e.msg}. Expected JSON schema: {schema}"
            raise JsonRequestError(msg) from None

    def _input_type(self, raw: str) -> str:
        try:
            return str(self.input_types.parse(raw).name)
        except ClipperException as e:
            raise ManagementError(e.msg) from None

    # -- applications -------------------------------------------------------------------------------

    async def add_app(self, d: Body) -> str:
        name = d.string("name")
        input_type_raw = d.string("input_type")
        default_output = d.string("default_output")
        slo = d.int32("latency_slo_micros")
        input_type = self._input_type(input_type_raw)
        check_app_name(name)
        if slo <= 0:
            msg = f"Invalid latency_slo_micros supplied: {slo}. It must be a positive integer"
            raise ManagementError(msg)
        if await self.store.get_application(name) is not None:
            msg = f"application '{name}' already exists"
            raise ManagementError(msg)
        # Selection state first: a query frontend reacting to the app's hset finds it already there.
        await self.store.set_selection_state(name, default_output)
        await self.store.add_application(name, input_type, default_output, slo)
        logger.info("Added application %r (input_type=%s, slo=%d us)", name, input_type, slo)
        return f"Successfully added application with name '{name}'"

    async def delete_app(self, d: Body) -> str:
        name = d.string("name")
        if await self.store.get_application(name) is None:
            msg = f"Application '{name}' does not exist"
            raise ManagementError(msg)
        await self.store.delete_application(name)  # also its links (DB 7) and selection state (DB 1)
        logger.info("Deleted application %r", name)
        return f"Successfully deleted application with name '{name}'"

    async def get_all_applications(self, d: Body) -> Result:
        verbose = d.boolean("verbose")
        names = await self.store.list_applications()
        if not verbose:
            return names
        out = []
        for name in names:
            app = await self.store.get_application(name)
            if app is not None:
                out.append(app_to_json(name, app, await self.store.get_linked_models(name)))
        return out

    async def get_application(self, d: Body) -> Result:
        name = d.string("name")
        app = await self.store.get_application(name)
        if app is None:
            return {}
        return app_to_json(name, app, await self.store.get_linked_models(name))

    async def get_state(self, d: Body) -> str:
        app_name = d.string("app_name")
        uid = d.int32("uid")
        if uid != DEFAULT_USER_ID:
            # As the original says it, but per request a client controls: DEBUG, not ERROR.
            logger.debug(
                "Personalized default outputs are not currently supported. Using default UID %d instead (got %d)",
                DEFAULT_USER_ID,
                uid,
            )
        app = await self.store.get_application(app_name)
        return app.get("default_output", "") if app else ""

    # -- links ---------------------------------------------------------------------------------------

    async def add_model_links(self, d: Body) -> str:
        app_name = d.string("app_name")
        model_names = d.string_array("model_names")
        app = await self.store.get_application(app_name)
        if app is None:
            msg = f"No app with name '{app_name}' exists."
            raise ManagementError(msg)
        app_input_type = app.get("input_type", "")
        for model_name in model_names:
            version = await self.store.get_current_version(model_name)
            model = await self.store.get_model(model_name, version) if version is not None else None
            if model is None:
                msg = f"No model with name '{model_name}' exists."
                raise ManagementError(msg)
            model_input_type = model.get("input_type", "")
            if model_input_type != app_input_type:
                msg = (
                    f"Model with name '{model_name}' has incompatible input_type '{model_input_type}'. "
                    f"Requested app to link to has input_type '{app_input_type}'."
                )
                raise ManagementError(msg)
        if len(model_names) != 1:
            if not model_names:
                msg = f"Please provide the name of the model that you want to link to the application '{app_name}'"
            else:
                msg = (
                    "Applications must be linked with at most one model. "
                    f"Attempted to add links to {len(model_names)} models."
                )
            raise ManagementError(msg)
        new_model = model_names[0]
        existing = await self.store.get_linked_models(app_name)
        if existing:
            if new_model in existing:
                msg_0 = f"The model with name '{new_model}' is already linked to '{app_name}'"
                raise ManagementError(msg_0)
            msg_0 = f"A model with name {existing[0]} is already linked to '{app_name}'."
            raise ManagementError(msg_0)
        await self.store.add_links(app_name, model_names)
        logger.info("Linked model %r to application %r", new_model, app_name)
        return f"Successfully linked model with name '{new_model}' to application '{app_name}'"

    async def delete_model_links(self, d: Body) -> str:
        app_name = d.string("app_name")
        model_names = d.string_array("model_names")
        if await self.store.get_application(app_name) is None:
            msg = f"No app with name {app_name} exists."
            raise ManagementError(msg)
        existing = await self.store.get_linked_models(app_name)
        for model_name in model_names:
            if model_name not in existing:
                msg = f"Cannot remove nonexistent link between app {app_name} and model {model_name}"
                raise ManagementError(msg)
        if model_names:
            await self.store.delete_links(app_name, model_names)
        logger.info("Unlinked models %s from application %r", model_names, app_name)
        return "Success!"

    async def get_linked_models(self, d: Body) -> Result:
        app_name = d.string("app_name")
        if await self.store.get_application(app_name) is None:
            msg = f"No application with name '{app_name}' exists."
            raise ManagementError(msg)
        return await self.store.get_linked_models(app_name)

    # -- models --------------------------------------------------------------------------------------

    async def _check_consistent_with_app_links(self, model_name: str, input_type: str) -> None:
        for app_name in await self.store.apps_linked_to(model_name):
            app = await self.store.get_application(app_name)
            app_type = app.get("input_type", "") if app else ""
            if app_type != input_type:
                msg = (
                    f"Model with name '{model_name}' is already linked to app '{app_name}' using input type "
                    f"'{app_type}'. The input type you provided for a new version of the model, '{input_type}', "
                    "is not compatible."
                )
                raise ManagementError(msg)

    async def add_model(self, d: Body) -> str:
        name = d.string("model_name")
        version = d.string("model_version")
        labels = d.string_array("labels")
        input_type = self._input_type(d.string("input_type"))
        container_name = d.string("container_name")
        model_data_path = d.string("model_data_path")
        batch_size = d.int32("batch_size")
        if batch_size <= 0 and batch_size != DEFAULT_BATCH_SIZE:
            msg = "The batch size must be positive or DEFAULT_BATCH_SIZE, which is -1"
            raise ManagementError(msg)
        check_model_name(name, "model name")
        check_model_name(version, "model version")
        for label in labels:
            check_group_str(label, "label")
        if await self.store.get_model(name, version) is not None:
            msg = f"model with name '{name}' and version '{version}' already exists"
            raise ManagementError(msg)
        await self._check_consistent_with_app_links(name, input_type)
        await self.store.add_model(name, version, input_type, labels, container_name, model_data_path, batch_size)
        await self.store.set_current_version(name, version)
        logger.info("Added model %s:%s (input_type=%s, batch_size=%d)", name, version, input_type, batch_size)
        return f"Successfully added model with name '{name}' and input type '{input_type}'"

    async def set_model_version(self, d: Body) -> str:
        name = d.string("model_name")
        version = d.string("model_version")
        versions = await self.store.get_model_versions(name)
        if not versions:
            msg = f"Cannot set version for nonexistent model '{name}'"
            raise ManagementError(msg)
        if version not in versions:
            msg = f"Cannot set non-existent version '{version}' for model with name '{name}'"
            raise ManagementError(msg)  # the handler logs the refusal
        model = await self.store.get_model(name, version)
        await self._check_consistent_with_app_links(name, model.get("input_type", "") if model else "")
        await self.store.set_current_version(name, version)
        logger.info("Set model %r to version %r", name, version)
        return f"Successfully set model with name '{name}' to version '{version}'"

    async def delete_versioned_model(self, d: Body) -> str:
        name = d.string("model_name")
        version = d.string("model_version")
        model = await self.store.get_model(name, version)
        if model is None:
            msg = f"model with name '{name}' and version '{version}' does not exist"
            raise ManagementError(msg)
        if "valid" not in model:
            msg = f"model with name '{name}' and version '{version}' is already marked as 'invalid'"
            raise ManagementError(msg)
        for container in await self.store.list_containers():
            if container.get("model_name") == name and container.get("model_version") == version:
                await self.store.delete_container(name, version, container.get("model_replica_id", ""))
        await self.store.delete_model(name, version)  # DB 2 and the local deployment record (DB 8)
        logger.info("Deleted model %s:%s and its replica records", name, version)
        return f"Successfully deleted model with name '{name}' and version '{version}'"

    async def get_all_models(self, d: Body) -> Result:
        verbose = d.boolean("verbose")
        models = await self.store.list_models()
        if not verbose:
            return [f"{n}:{v}" for n, v in models]
        current = await self.store.all_current_versions()
        out = []
        for name, version in models:
            model = await self.store.get_model(name, version)
            if model is not None:
                out.append(model_to_json(model, current.get(name) == version))
        return out

    async def get_model(self, d: Body) -> Result:
        name = d.string("model_name")
        version = d.string("model_version")
        model = await self.store.get_model(name, version)
        if model is None:
            return {}
        return model_to_json(model, await self.store.get_current_version(name) == version)

    # -- containers ----------------------------------------------------------------------------------

    async def get_all_containers(self, d: Body) -> Result:
        verbose = d.boolean("verbose")
        containers = await self.store.list_containers()
        if verbose:
            return [container_to_json(c) for c in containers]
        return [
            f"{c.get('model_name', '')}:{c.get('model_version', '')}:{c.get('model_replica_id', '')}"
            for c in containers
        ]

    async def get_container(self, d: Body) -> Result:
        name = d.string("model_name")
        version = d.string("model_version")
        replica_id = d.int32("replica_id")
        container = await self.store.get_container(name, version, replica_id)
        return container_to_json(container) if container else {}
