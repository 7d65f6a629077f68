"""The query frontend: REST predictions on :1337 and the model-container RPC server on :7000.

:mod:`.app` wires the pieces together; :mod:`.routes` is the route table both REST servers (:mod:`.fast_http`, the
default, and :mod:`.tornado_http`) dispatch through; :mod:`.predict` answers queries from the in-memory :mod:`.state`
through the per-model queues of :mod:`.engine`; :mod:`.rpc_server` talks to the replicas.
"""
