"""The ``export`` section: which files export makes, their gates, and compression."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from visionpipe.pipeline.typed_tree import check_range


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """Magnitude pruning (tfmot) of convolutions and dense layers, then full-integer int8."""

    enabled: bool = False
    target_sparsity: float = 0.75
    begin_step: int = 0
    end_step: int = 0  # 0 = at 80% of the fine-tuning steps
    frequency: int = 50  # steps between pruning updates
    skip_layers: tuple[str, ...] = ()  # layer names kept dense (the first convolution always is)
    min_weights: int = 1000  # layers with fewer weights are kept dense


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (keras.distillation): a small student learns from the trained
    model's softened predictions as well as from the labels."""

    student: str = ""  # a registered model name; "" = off
    student_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    epochs: int = 5
    temperature: float = 3.0
    student_loss_weight: float = 0.5  # the labels' share of the loss; the teacher's is the rest
    learning_rate: float = 1e-3


@dataclasses.dataclass(frozen=True)
class ChannelPruneConfig:
    """Channel pruning (``channel_pruning.py``): the trained model with the least important filters
    of each convolution removed (only those whose width no residual add ties), then fine-tuned by
    distillation from the trained model; an int8 file that runs faster, not only one that zips
    smaller."""

    fraction: float = 0.0  # of each prunable convolution's filters removed; 0 = off
    epochs: int = 5  # fine-tuning epochs on the train split
    learning_rate: float = 1e-3

    def __post_init__(self):
        check_range("export.compression.channels.fraction", self.fraction, 0.0, 0.9)


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Pruning and quantization-aware training through tfmot (README: compression)."""

    prune: PruneConfig = PruneConfig()
    distill: DistillConfig = DistillConfig()
    channels: ChannelPruneConfig = ChannelPruneConfig()
    qat: bool = False  # quantization-aware training, then full-integer int8
    # With prune and qat both on, QAT keeps the pruned zeros (tfmot's collaborative
    # optimization): one pruned + QAT file instead of two.
    preserve_sparsity: bool = True
    epochs: int = 2  # fine-tuning epochs on the train split, per technique
    steps_per_epoch: int = 0  # 0 = one pass over the train split
    batch_size: int = 64
    learning_rate: float = 1e-4
    timeout_seconds: int = 3600


@dataclasses.dataclass(frozen=True)
class ArtifactGate:
    max_accuracy_drop: float | None = None  # vs the Keras model; None = export.max_accuracy_drop
    max_size_kib: float | None = None  # None = no limit


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model_name: str = "visionpipe"
    tflite_float: bool = True
    tflite_float16: bool = False
    tflite_dynamic_int8: bool = False  # int8 weights, float activations: no calibration
    tflite_int8: bool = True  # int8, uint8 input, calibrated on train images
    # What the int8 files keep in float32: "auto" the operators XNNPACK (LiteRT's CPU runtime)
    # runs only in float32, e.g. MobileNetV3's HARD_SWISH (tflite.py); "none": full-integer files,
    # for integer-only accelerators (Edge TPU, NPUs, microcontrollers).
    int8_float_ops: Literal["auto", "none"] = "auto"
    onnx: bool = False  # Keras' own ONNX export, scored with onnxruntime (pip install visionpipe[onnx])
    calibration_samples: int = 256
    # Each artifact's gate: at most this accuracy drop against the Keras model on the
    # evaluated split (and at most a size, per artifact). An artifact that fails is recorded
    # with the reason and not pushed.
    max_accuracy_drop: float = 0.01
    # By export target name (components/export/targets.py; visionpipe.configure checks the keys).
    gates: dict[str, ArtifactGate] = dataclasses.field(default_factory=dict)
    latency: bool = True  # time batch-1 TFLite inference at 1 and 4 threads
    # The Python of tflite-support's own virtualenv, to embed TFLite metadata (labels,
    # normalisation) for the Task Library: auto = the project's .venv-tflite-support if set up
    # (make does), off, or a path.
    metadata_python: str = "auto"
    tta_flip: bool = False  # the exported SavedModel averages each image with its mirror image
    compression: CompressionConfig = CompressionConfig()
