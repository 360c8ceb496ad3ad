#!/usr/bin/env bash
# Serves what `visionpipe run` pushed with TF Serving: the models.config and batching.config
# that push writes into its destination, with the matching flags.
#
#   serving/deploy/serve.sh DESTINATION          # the official image (docker), REST :8501, gRPC :8500
#   SERVE_WITH=binary serving/deploy/serve.sh DESTINATION   # a tensorflow_model_server on PATH
#
# REST: curl localhost:8501/v1/models/visionpipe/labels/stable:predict -d '{"instances": [{"b64": "..."}]}'
# Pushes and `visionpipe promote` change the files in place; the server polls them, no restart.
# Env: TF_SERVING_IMAGE, REST_PORT, GRPC_PORT, POLL_SECONDS.
set -euo pipefail

dest="${1:?usage: serve.sh DESTINATION (the push destination, which holds models.config)}"
dest="$(cd "$dest" && pwd)"
if [ ! -f "$dest/models.config" ]; then
  echo "serve.sh: no $dest/models.config: run the push stage first (visionpipe run)" >&2
  exit 2
fi
# 2.19.0; 2.16 to 2.20 load the export too (README "Which TF Serving releases").
image="${TF_SERVING_IMAGE:-tensorflow/serving:2.19.0}"
rest_port="${REST_PORT:-8501}"
grpc_port="${GRPC_PORT:-8500}"
poll="${POLL_SECONDS:-30}"

flags=(
  "--model_config_file=$dest/models.config"
  # Re-reads models.config, so a push or a promote takes effect without a restart.
  "--model_config_file_poll_wait_seconds=$poll"
  "--file_system_poll_wait_seconds=$poll"
  # A canary push names its new version in the same config change that adds it; TF Serving
  # refuses that unless this is set (push.allow_labels_for_unavailable_versions, on by default).
  "--allow_version_labels_for_unavailable_models=true"
)
if [ -f "$dest/batching.config" ]; then  # push.batching.enabled
  flags+=("--enable_batching=true" "--batching_parameters_file=$dest/batching.config")
fi

if [ "${SERVE_WITH:-docker}" = binary ]; then
  exec tensorflow_model_server "--port=$grpc_port" "--rest_api_port=$rest_port" "${flags[@]}"
fi
# The destination is mounted at its own path: models.config's base_path is that path
# (push.server_root "") and holds inside the container as well.
exec docker run --rm -p "$grpc_port:8500" -p "$rest_port:8501" -v "$dest:$dest:ro" "$image" "${flags[@]}"
