"""The baseline: the benchmark's noop function behind a minimal Tornado handler, in one process.

``POST /noop/predict`` with ``{"input": [10 doubles]}`` answers ``{"query_id": n, "output": ..., "default": false}``,
the same JSON shapes as Clipper's query frontend; JSON via orjson and the event loop via uvloop when they are
installed (the frontend uses both). It is the floor for "one Python process serving over HTTP": no RPC hop, no
queue, no batching, no cache.

    python bench/baseline_tornado.py --port 8888 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import tornado.web

try:
    import orjson

    dumps, loads = orjson.dumps, orjson.loads
except ImportError:  # pragma: no cover - the project's venv has orjson
    import json

    def dumps(obj: object) -> bytes:  # type: ignore[no-redef]
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def noop(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


class PredictHandler(tornado.web.RequestHandler):
    query_id = 0

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def post(self) -> None:
        try:
            body = loads(self.request.body)
            x = body["input"]
            if not isinstance(x, list) or not all(isinstance(v, (int, float)) for v in x):
                msg = "input must be a list of doubles"
                raise ValueError(msg)
        except (ValueError, KeyError, TypeError) as exc:
            self.set_status(400)
            self.finish(dumps({"error": "Json error", "cause": str(exc)}))
            return
        out = noop([x])[0]
        try:  # Clipper returns JSON-parsable outputs as JSON values
            output = loads(out)
        except ValueError:
            output = out
        qid = PredictHandler.query_id
        PredictHandler.query_id += 1
        self.finish(dumps({"query_id": qid, "output": output, "default": False}))


async def serve(host: str, port: int) -> None:
    app = tornado.web.Application([(r"/noop/predict", PredictHandler)])
    app.listen(port, address=host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"baseline_tornado listening on {host}:{port} (uvloop={uvloop is not None})", flush=True)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
