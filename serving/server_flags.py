"""tensorflow_model_server's command-line flags, in one list: for each, its type, the default
``visionpipe serve`` uses and what the development server does with it.

The list is the real server's (tensorflow/serving, model_servers/main.cc, the same in 2.19, 2.20
and 2.21's), so any command line written for it also starts ``visionpipe serve``, serve.sh's
included. Values follow TensorFlow's flag parser: ``--name=value``; a boolean also as
``--name`` alone, and its value is true/false/1/0 in any case.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    name: str
    kind: type  # bool, int, float or str
    default: object  # what `visionpipe serve` uses when the flag is not given (None: nothing)
    effect: str  # what the development server does with it; "" = accepted, no effect here


# Several flags size the real server's thread pools or tune TensorFlow Serving internals the
# development server does not have; they are accepted so a command line carries over, and the
# server names the ones given when it starts.
FLAGS: tuple[Flag, ...] = (
    Flag("port", int, 8500, "gRPC port; 0 turns TCP gRPC off, which needs --grpc_socket_path (as the real server)"),
    Flag("grpc_socket_path", str, "", "also listen for gRPC on this UNIX socket"),
    Flag(
        "rest_api_port",
        int,
        8501,
        "REST port; 0: no REST API (the real binary's default is 0; 8501 is the official image's)",
    ),
    Flag("rest_api_num_threads", int, None, ""),
    Flag("rest_api_timeout_in_ms", int, 30000, ""),
    Flag("rest_api_enable_cors_support", bool, False, ""),
    Flag("enable_batching", bool, False, "batch concurrent requests server-side"),
    Flag(
        "allow_version_labels_for_unavailable_models",
        bool,
        False,
        "accepted; the development server always lets a label name a version that is still loading",
    ),
    Flag("batching_parameters_file", str, "", "a text BatchingParameters (push writes batching.config)"),
    Flag("enable_per_model_batching_parameters", bool, False, ""),
    Flag("model_config_file", str, "", "a text ModelServerConfig (push writes models.config)"),
    Flag(
        "model_config_file_poll_wait_seconds",
        float,
        0.0,
        "re-read --model_config_file this often (labels moved by `visionpipe promote`); 0: never",
    ),
    Flag("model_name", str, "default", "the name of the --model_base_path model"),
    Flag("model_base_path", str, "", "a model's base path: numbered version folders"),
    Flag("num_load_threads", int, 0, ""),
    Flag("num_unload_threads", int, 0, ""),
    Flag("max_num_load_retries", int, 5, ""),
    Flag("load_retry_interval_micros", int, 60_000_000, ""),
    Flag("file_system_poll_wait_seconds", float, 1.0, "how often to look for new versions; 0: never"),
    Flag("flush_filesystem_caches", bool, True, ""),
    Flag("tensorflow_session_parallelism", int, 0, ""),
    Flag("tensorflow_session_config_file", str, "", ""),
    Flag("tensorflow_intra_op_parallelism", int, 0, "threads inside one TensorFlow op; 0: one (see README)"),
    Flag("tensorflow_inter_op_parallelism", int, 0, "TensorFlow ops run at once; 0: TensorFlow's choice"),
    Flag("use_alts_credentials", bool, False, ""),
    Flag("ssl_config_file", str, "", ""),
    Flag("platform_config_file", str, "", ""),
    Flag("per_process_gpu_memory_fraction", float, 0.0, ""),
    Flag("saved_model_tags", str, "serve", ""),
    Flag("grpc_channel_arguments", str, "", ""),
    Flag("grpc_max_threads", int, None, ""),
    Flag("enable_model_warmup", bool, True, ""),
    Flag("num_request_iterations_for_warmup", int, 0, ""),
    Flag("version", bool, False, "print the version and exit"),
    Flag("monitoring_config_file", str, "", ""),
    Flag("remove_unused_fields_from_bundle_metagraph", bool, True, ""),
    Flag("prefer_tflite_model", bool, False, ""),
    Flag("num_tflite_pools", int, None, ""),
    Flag("num_tflite_interpreters_per_pool", int, 1, ""),
    Flag("enable_signature_method_name_check", bool, False, ""),
    Flag("xla_cpu_compilation_enabled", bool, False, ""),
    Flag("xla_gpu_compilation_enabled", bool, False, ""),
    Flag("enable_profiler", bool, True, ""),
    Flag("thread_pool_factory_config_file", str, "", ""),
    Flag("mixed_precision", str, "", ""),
    Flag("skip_initialize_tpu", bool, False, ""),
    Flag("enable_grpc_healthcheck_service", bool, False, ""),
    Flag(
        "enable_serialization_as_tensor_content",
        bool,
        False,
        "gRPC outputs packed in tensor_content (default: typed fields such as float_val)",
    ),
)

TRUE, FALSE = ("true", "1"), ("false", "0")


def parse_bool(value: str) -> bool:
    """A boolean flag's value as TensorFlow's flag parser reads it."""
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean: use true or false (or 1, 0)")


def without_effect(values: dict[str, object]) -> list[str]:
    """The flags given a value other than their default that the development server does not
    act on, as ``--name=value``."""
    return [
        f"--{flag.name}={values[flag.name]}"
        for flag in FLAGS
        if not flag.effect and values.get(flag.name, flag.default) != flag.default
    ]
