"""The development model server: a stand-in for tensorflow_model_server on a laptop or in CI.

It is NOT the production server: production runs the official tensorflow/serving image with
the files push writes (serving/deploy). This one serves the same base path, models.config and
batching.config through the same REST and gRPC APIs, so clients, warm-up checks and demos can
be exercised where the real binary cannot be installed. ``ServingCore`` holds what both
front ends share (resolve, batch, run, log, status, metadata); ``DevServer`` starts and
stops the REST (rest_api) and gRPC (grpc_api) front ends around it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from visionpipe.serving.batching import Batcher, BatchingOptions
from visionpipe.serving.model_store import ConfigFile, ModelSpec, ModelStore
from visionpipe.serving.servable import Servable

if TYPE_CHECKING:
    from visionpipe.serving.request_log import RequestLog
    from visionpipe.serving.rest_api import _Server

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How the server listens and behaves; each field mirrors a tensorflow_model_server flag."""

    host: str = "127.0.0.1"
    rest_api_port: int = 8501  # 0: any free port (see DevServer.rest_port); -1: no REST API
    grpc_port: int = 8500  # --port; 0: any free port; -1: no gRPC over TCP
    grpc_socket_path: Path | None = None  # --grpc_socket_path: gRPC on this UNIX socket too
    file_system_poll_wait_seconds: float = 1.0  # 0: load once at start, never poll
    model_config_file_poll_wait_seconds: float = 0.0  # 0: read models.config once (TF Serving's default)
    batching: BatchingOptions | None = None  # --enable_batching (+ --batching_parameters_file)
    max_body_bytes: int = 64 << 20  # REST bodies and gRPC messages larger than this are refused
    request_log: Path | None = None
    request_log_sample_rate: float = 1.0
    grpc_max_workers: int = 16
    tensor_content: bool = False  # --enable_serialization_as_tensor_content: gRPC outputs packed


class ServingCore:
    """Resolves the addressed version, runs the signature (batched if enabled), logs it."""

    def __init__(self, store: ModelStore, batcher: Batcher | None = None, request_log: RequestLog | None = None):
        self.store = store
        self.batcher = batcher
        self.request_log = request_log

    def predict(
        self, name: str, version: int | None, label: str | None, signature: str, inputs: dict[str, np.ndarray]
    ) -> tuple[Servable, str, dict[str, np.ndarray]]:
        """Returns the servable that answered, the signature's name and its outputs."""
        servable = self.store.resolve(name, version, label)
        signature, _ = servable.signature(signature)
        return servable, signature, self.run(servable, signature, inputs)

    def run(self, servable: Servable, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs an already resolved version (a request keeps the version it resolved, even if a
        poll unloads it meanwhile) and logs the request."""
        if self.batcher is not None:
            outputs = self.batcher.run(servable, signature, inputs)
        else:
            outputs = servable.run(signature, inputs)
        if self.request_log is not None:
            self.request_log.record(servable.name, servable.version, signature, inputs, outputs)
        return outputs

    def status(self, name: str, version: int | None, label: str | None):
        """tensorflow.serving.GetModelStatusResponse."""
        from tensorflow_serving.apis import get_model_status_pb2

        response = get_model_status_pb2.GetModelStatusResponse()
        states = get_model_status_pb2.ModelVersionStatus.State
        for number, state, error in self.store.states(name, version, label):
            entry = response.model_version_status.add(version=number, state=states.Value(state))
            entry.status.error_code = 2 if error else 0  # tensorflow.error.Code UNKNOWN / OK
            entry.status.error_message = error
        return response

    def metadata(self, name: str, version: int | None, label: str | None):
        """(the servable, tensorflow.serving.SignatureDefMap of its signatures)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        servable = self.store.resolve(name, version, label)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature)
        return servable, signatures


class DevServer:
    """Loads the models, then serves them over REST and gRPC until ``stop()``. A
    ``config_file`` (where ``specs`` came from) is re-read if the options say so."""

    def __init__(
        self, specs: list[ModelSpec], options: ServerOptions = ServerOptions(), config_file: ConfigFile | None = None
    ):
        self.options = options
        self.config_file = config_file
        self._stop = threading.Event()
        self.store = ModelStore(specs)
        self.batcher = Batcher(options.batching) if options.batching is not None else None
        request_log = None
        if options.request_log:  # imported only then: it reads channel counts from ingest (and Beam)
            from visionpipe.serving.request_log import RequestLog

            request_log = RequestLog(options.request_log, options.request_log_sample_rate)
        self.core = ServingCore(self.store, self.batcher, request_log)
        self._rest: _Server | None = None
        self._grpc = None
        self.rest_port: int | None = None
        self.grpc_port: int | None = None

    def start(self) -> DevServer:
        """Loads every model's versions (as TF Serving does before it listens), then listens."""
        from visionpipe.serving import grpc_api, rest_api

        self.store.poll()
        for name in self.store.model_names:
            self.store.states(name, None, None)  # raises NOT_FOUND if a model has no version
        self.store.start_polling(self.options.file_system_poll_wait_seconds)
        if self.config_file is not None and self.options.model_config_file_poll_wait_seconds > 0:
            args = (self.config_file,)
            threading.Thread(target=self._watch_config, args=args, name="model-config-poll", daemon=True).start()
        try:
            if self.options.rest_api_port >= 0:
                self._rest = rest_api.start(self.core, self.options.host, self.options.rest_api_port, self.options)
                self.rest_port = self._rest.server_address[1]
            addresses = [f"{self.options.host}:{self.options.grpc_port}"] if self.options.grpc_port >= 0 else []
            if self.options.grpc_socket_path is not None:
                addresses.append(f"unix:{self.options.grpc_socket_path}")
            if addresses:
                self._grpc, bound = grpc_api.start(self.core, addresses, self.options)
                self.grpc_port = bound if self.options.grpc_port >= 0 else None
        except BaseException:
            self.stop()
            raise
        return self

    def _watch_config(self, config_file: ConfigFile) -> None:
        while not self._stop.wait(self.options.model_config_file_poll_wait_seconds):
            try:
                specs = config_file.specs_if_changed()
                if specs is not None:
                    for change in ["models.config changed", *self.store.reconfigure(specs)]:
                        log.info(change)
            except (OSError, ValueError) as err:  # as TF Serving: keep serving the last good config
                log.error("ignoring %s: %s", config_file.path, err)

    def stop(self) -> None:
        """Stops listening (in-flight requests finish), then the batcher, pollers and log."""
        self._stop.set()
        from visionpipe.serving import rest_api

        if self._rest is not None:
            rest_api.stop(self._rest, grace=5)
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait(10)
        if self.batcher is not None:
            self.batcher.close()
        self.store.stop()
        if self.core.request_log is not None:
            self.core.request_log.close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()
