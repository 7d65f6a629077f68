"""MLServer peer: the benchmark's noop function as a custom MLServer runtime.

Started with ``mlserver start bench/peers/mlserver`` (bench/run.py sets MLSERVER_HOST/HTTP_PORT/GRPC_PORT/
METRICS_PORT). ``settings.json`` keeps MLServer's default of one parallel inference worker process -- the same
shape as Clipper's frontend + one replica.

    POST /v2/models/noop/infer
    {"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP64", "data": [10 doubles]}]}
    -> {"model_name": "noop", "outputs": [{"name": "output", "shape": [1], "datatype": "BYTES",
                                           "data": ["<sum>"]}], ...}
"""

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


def noop(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


class NoopModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        data = payload.inputs[0].data.root
        rows = [data] if not data or not isinstance(data[0], list) else data
        outputs = noop(rows)
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="output", shape=[len(outputs)], datatype="BYTES", data=outputs)],
        )
