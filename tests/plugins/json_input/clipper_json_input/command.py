"""``clipper json-encode VALUE``: what the `json` input type sends to a model for one query input."""

from __future__ import annotations

import argparse
import json

from clipper_core.commands import CommandContext
from clipper_core.errors import InputDecodeError


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("value", help="a JSON value")


def run(args: argparse.Namespace, ctx: CommandContext) -> int:
    try:
        value = json.loads(args.value)
    except ValueError as exc:
        msg = f"VALUE is not valid JSON: {exc}"
        raise InputDecodeError(msg) from exc
    print(ctx.host.input_types().parse("json").encode(value).decode())
    return 0
