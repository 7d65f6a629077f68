"""Compatibility path of the PySpark deployer (``clipper_deployers.pyspark`` in ``clipper-deployers[pyspark]``)."""

from __future__ import annotations

from clipper_deployers.pyspark import (
    PLUGIN_NAME,
    create_endpoint,
    deploy,
    deploy_pyspark_model,
)

__all__ = ["PLUGIN_NAME", "create_endpoint", "deploy", "deploy_pyspark_model"]
