"""Transfer learning from pretrained weights in two phases (Keras' transfer-learning guide).

Phase 1 trains the new head on a frozen backbone (``train.finetune.head_epochs``), so the
random head cannot push large gradients into the pretrained features. Phase 2 unfreezes the
backbone's top ``train.finetune.unfreeze`` layers (or all of it) and trains for
``train.epochs`` at ``train.finetune.learning_rate_scale`` x the learning rate. BatchNorm
layers stay frozen and in inference mode throughout (the builders call a pretrained backbone
with ``training=False``): their statistics were learned on far more data than ours.
"""

from __future__ import annotations

import keras

BACKBONE = "backbone"  # the name the registered builders give a pretrained backbone


def find_backbone(classifier: keras.Model) -> keras.Model | None:
    for layer in classifier._flatten_layers():
        if isinstance(layer, keras.Model) and layer.name == BACKBONE:
            return layer
    return None


def freeze(backbone: keras.Model) -> None:
    backbone.trainable = False


def unfreeze_top(backbone: keras.Model, count: int) -> int:
    """Makes the top ``count`` weighted layers trainable (-1: all), BatchNorm excepted;
    returns how many layers train."""
    backbone.trainable = True
    weighted = [layer for layer in backbone.layers if layer.weights]
    top = set(map(id, weighted if count < 0 else weighted[len(weighted) - count :] if count else []))
    for layer in backbone.layers:
        layer.trainable = id(layer) in top and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(layer.trainable for layer in weighted)
