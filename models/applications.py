"""ImageNet backbones from keras.applications for real photos, each with a configurable head.

Each model takes [0, 1] images (``normalize=False``: no dataset mean/std in front) and scales
them to what its backbone was trained on, so ImageNet weights (``model.weights: imagenet``)
see the inputs they expect. The backbone is one nested model named ``backbone``: transfer
learning freezes it, then unfreezes its top layers (``components/train/finetune.py``). (The
tf_keras twin that compression builds has the same layers, not nested.) With
pretrained weights it always runs its BatchNormalization in inference mode, as Keras' transfer
learning guide recommends, so fine-tuning does not wreck the learned statistics.

``imagenet`` uses Keras' own download and cache (``~/.keras/models``, or ``$KERAS_HOME``).
Offline with no cached file, building fails within seconds with the file name, its URL and
where to put it.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from visionpipe.models.registry import default_keras, register
from visionpipe.pipeline.errors import UserError

DOWNLOAD_TIMEOUT_SECONDS = 15  # a blocked network must fail, not hang


def _classifier(backbone_fn: Callable, scale, input_shape, num_classes, weights, pooling, dropout, name, keras):
    """[0, 1] images -> ``scale`` -> backbone -> pooling -> dropout -> softmax."""
    if input_shape[-1] != 3 or min(input_shape[:2]) < 32:
        raise UserError(
            f"{name} needs preprocessing.channels=3 and image_size of at least 32; got input shape {input_shape}"
        )
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = scale(layers)(inputs)
    if keras.__name__ == "tf_keras":
        # The compression twin (components/export/tfmot_bridge.py) gets the trained weights
        # copied in, and tfmot cannot prune or quantize inside a nested model: its backbone's
        # layers are built straight into the classifier, in the same order.
        x = backbone_fn(input_shape=input_shape, include_top=False, weights=None, input_tensor=x).output
    else:
        backbone = _load_backbone(backbone_fn, input_shape, weights, keras)
        # Pretrained: BatchNormalization stays in inference mode, in both transfer phases.
        x = backbone(x, training=False) if weights else backbone(x)
    x = (layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D)(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    # Softmax in float32 even under a mixed-precision policy, for a stable loss.
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


# The ImageNet weights Keras has for MobileNetV2 without its top, by alpha and input size
# (keras.applications.MobileNetV2 loads the 224 file for any other size).
MOBILENET_V2_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
PROBE_TIMEOUT_SECONDS = 3  # whether a download could start: an offline machine answers at once or not at all


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models`` (as
    Keras itself reads it), or under /tmp when that is not writable, as ``get_file`` falls back."""
    from keras.src.backend.config import keras_home

    home = os.path.expanduser(keras_home())
    return Path(home if os.access(home, os.W_OK) else os.path.join("/tmp", ".keras")) / "models"


def imagenet_weights_file(name: str, args: dict, size: int) -> tuple[str, str] | None:
    """(file name in Keras' cache, download URL) of the ImageNet weights model ``name`` loads with
    ``args`` at a square input of ``size``; None for models this does not know the files of."""
    if name != "mobilenet_v2":
        return None
    rows = size if size in MOBILENET_V2_SIZES else 224
    file_name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(args.get('alpha', 1.0))}_{rows}_no_top.h5"
    return file_name, MOBILENET_V2_URL + file_name


def imagenet_availability(name: str, args: dict, size: int) -> tuple[str, str]:
    """Whether the ImageNet weights of ``imagenet_weights_file`` can be had: ("cached", path),
    ("download", url) when the server answers, or ("unavailable", why)."""
    known = imagenet_weights_file(name, args, size)
    if known is None:
        return "unavailable", f"visionpipe does not know which ImageNet weights file {name} loads"
    file_name, url = known
    cached = keras_cache_dir() / file_name
    if cached.is_file():
        return "cached", str(cached)
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_SECONDS).close()
    except (OSError, ValueError) as err:  # URLError, timeouts, refused proxies
        reason = getattr(err, "reason", err)
        return "unavailable", f"{file_name} is not in {cached.parent} and cannot be downloaded ({reason})"
    return "download", url


def _load_backbone(backbone_fn: Callable, input_shape, weights: str | None, keras):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        # A weights file is loaded onto the whole classifier afterwards (models/classifier.py).
        backbone = backbone_fn(
            input_shape=input_shape, include_top=False, weights="imagenet" if weights == "imagenet" else None
        )
    except Exception as err:
        url = re.search(r"https?://\S+?\.h5", str(err))
        if weights != "imagenet" or url is None:
            raise
        cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
        filename = url.group(0).rsplit("/", 1)[-1]
        raise UserError(
            f"model.weights=imagenet needs {filename}, which is not in Keras' cache ({cache}) and could not be "
            f"downloaded ({str(err).rsplit(' -- ', 1)[-1].strip()}); on a machine with internet download "
            f"{url.group(0)} and copy it to {os.path.join(cache, filename)}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    backbone.name = "backbone"
    if weights is None:
        _bn_momentum_for_short_runs(backbone, keras)
    return backbone


def _bn_momentum_for_short_runs(backbone, keras, momentum: float = 0.99) -> None:
    """keras.applications builds MobileNetV2/V3 with BatchNormalization momentum 0.999, set for
    ImageNet-length runs. Trained from scratch on a few thousand images (about a hundred steps
    per epoch), the moving statistics then lag the weights for thousands of steps, and
    evaluation, which uses them, scores near chance: mobilenet_v3_small from scratch on
    Caltech-101 reached 45% train accuracy and 2.8% test. Keras' default momentum (0.99)
    follows the weights within a few hundred steps."""
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum


def _to_255(layers):
    return layers.Rescaling(255.0, name="to_255")  # the backbone's own preprocessing follows


def _to_symmetric(layers):
    return layers.Rescaling(2.0, offset=-1.0, name="to_symmetric")  # [-1, 1], as ResNetV2/MobileNetV2 expect


def _mobilenet_v3(size: str, input_shape, num_classes, alpha, minimalistic, pooling, dropout, weights, keras):
    keras = default_keras(keras)
    application = getattr(keras.applications, f"MobileNetV3{size}")

    def backbone(**kw):
        return application(alpha=alpha, minimalistic=minimalistic, **kw)

    name = f"mobilenet_v3_{size.lower()}"
    return _classifier(backbone, _to_255, input_shape, num_classes, weights, pooling, dropout, name, keras)


@register("mobilenet_v3_small", normalize=False, pretrained=("imagenet",))
def mobilenet_v3_small(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    alpha: float = 1.0,
    minimalistic: bool = False,
    pooling: Literal["avg", "max"] = "avg",
    dropout: float = 0.2,
    weights: str | None = None,  # None, "imagenet" or a weights file (BatchNormalization then frozen)
    keras=None,
):
    return _mobilenet_v3("Small", input_shape, num_classes, alpha, minimalistic, pooling, dropout, weights, keras)


@register("mobilenet_v3_large", normalize=False, pretrained=("imagenet",))
def mobilenet_v3_large(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    alpha: float = 1.0,
    minimalistic: bool = False,
    pooling: Literal["avg", "max"] = "avg",
    dropout: float = 0.2,
    weights: str | None = None,  # None, "imagenet" or a weights file (BatchNormalization then frozen)
    keras=None,
):
    return _mobilenet_v3("Large", input_shape, num_classes, alpha, minimalistic, pooling, dropout, weights, keras)


@register("mobilenet_v2", normalize=False, pretrained=("imagenet",))
def mobilenet_v2(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    alpha: float = 1.0,
    pooling: Literal["avg", "max"] = "avg",
    dropout: float = 0.2,
    weights: str | None = None,  # None, "imagenet" or a weights file (BatchNormalization then frozen)
    keras=None,
):
    keras = default_keras(keras)

    def backbone(**kw):
        return keras.applications.MobileNetV2(alpha=alpha, **kw)

    return _classifier(
        backbone, _to_symmetric, input_shape, num_classes, weights, pooling, dropout, "mobilenet_v2", keras
    )


@register("efficientnet_v2_b0", normalize=False, pretrained=("imagenet",))
def efficientnet_v2_b0(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    pooling: Literal["avg", "max"] = "avg",
    dropout: float = 0.2,
    weights: str | None = None,  # None, "imagenet" or a weights file (BatchNormalization then frozen)
    keras=None,
):
    keras = default_keras(keras)
    return _classifier(
        keras.applications.EfficientNetV2B0, _to_255, input_shape, num_classes, weights, pooling, dropout,
        "efficientnet_v2_b0", keras,
    )  # fmt: skip


@register("resnet50_v2", normalize=False, pretrained=("imagenet",))
def resnet50_v2(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    pooling: Literal["avg", "max"] = "avg",
    dropout: float = 0.2,
    weights: str | None = None,  # None, "imagenet" or a weights file (BatchNormalization then frozen)
    keras=None,
):
    keras = default_keras(keras)
    return _classifier(
        keras.applications.ResNet50V2, _to_symmetric, input_shape, num_classes, weights, pooling, dropout,
        "resnet50_v2", keras,
    )  # fmt: skip
