"""The evaluation's figures, written as PNG files into the Evaluation artifact (the report
embeds them): confusion matrix, reliability diagram, per-class bars, robustness curves,
training curves and the error gallery with its heat maps. Matplotlib's Agg canvas only: no
pyplot state, no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from visionpipe.components.common.html import plain

DPI = 90
ANNOTATED_CLASSES = 20  # above this many classes, confusion cells carry no numbers


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def confusion_matrix(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # rows: each true class
    size = min(4 + 0.35 * len(classes), 18)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, label="share of the true class")
    ticks = range(len(classes))
    font = 8 if len(classes) <= 40 else 5
    ax.set_xticks(ticks, [plain(c) for c in classes], rotation=90, fontsize=font)
    ax.set_yticks(ticks, [plain(c) for c in classes], fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if len(classes) <= ANNOTATED_CLASSES:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.5 else "black")  # fmt: skip
    return _save(fig, path)


def reliability(before: dict, after: dict | None, path: Path) -> Path:
    """Accuracy against confidence per bin: on the diagonal is calibrated."""
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, curve, colour in (("before", before, "tab:red"), ("after temperature scaling", after, "tab:blue")):
        if curve is None:
            continue
        bins = [b for b in curve["bins"] if b["images"]]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", color=colour,
                label=f"{name} (ECE {curve['ece']:.3f})")  # fmt: skip
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return _save(fig, path)


def per_class(per_class_metrics: dict, path: Path) -> Path:
    names = list(per_class_metrics)
    height = min(2 + 0.22 * len(names), 30)
    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    for offset, metric, colour in (
        (-0.27, "precision", "tab:blue"),
        (0, "recall", "tab:orange"),
        (0.27, "f1", "tab:green"),
    ):
        ax.barh(y + offset, [per_class_metrics[n][metric] for n in names], height=0.27, color=colour, label=metric)
    ax.set_yticks(y, [plain(n) for n in names], fontsize=8 if len(names) <= 40 else 5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    return _save(fig, path)


def robustness(result: dict, path: Path) -> Path:
    """One curve per corruption (accuracy by severity) and FGSM's (accuracy by epsilon)."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    corruptions, attack = fig.subplots(1, 2)
    clean = result["clean_accuracy"]
    for name, entry in result["corruptions"].items():
        corruptions.plot([0, 1, 2, 3], [clean] + [s["accuracy"] for s in entry["severities"]], marker="o", label=name)
    corruptions.set_xticks([0, 1, 2, 3], ["clean", "1", "2", "3"])
    corruptions.set_xlabel("severity")
    corruptions.set_ylabel("accuracy")
    corruptions.set_ylim(0, 1)
    corruptions.legend(fontsize=8)
    corruptions.set_title("common corruptions")
    epsilons = [0.0] + [f["epsilon"] for f in result["fgsm"]]
    attack.plot(
        [e * 255 for e in epsilons], [clean] + [f["accuracy"] for f in result["fgsm"]], marker="o", color="tab:red"
    )
    attack.set_xlabel("FGSM epsilon (of 255 pixel levels)")
    attack.set_ylim(0, 1)
    attack.set_title("adversarial (FGSM)")
    return _save(fig, path)


def training_curves(history: dict, path: Path) -> Path | None:
    """Loss and accuracy per epoch for train and val, when training recorded them."""
    epochs = len(history.get("loss", []))
    if not epochs:
        return None
    fig = Figure(figsize=(11, 4), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker=".", label=(prefix or "train_") + metric)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    return _save(fig, path)


def gallery(images: np.ndarray, heat: np.ndarray, captions: list[str], methods: list[str], path: Path) -> Path:
    """Each mistake twice: the image, and the image under its heat map, titled with the method
    that made that map (Grad-CAM, or saliency where Grad-CAM's map was empty)."""
    columns = 4  # two mistakes per row
    rows = int(np.ceil(len(images) / 2))
    fig = Figure(figsize=(2.6 * columns, 2.9 * rows), layout="constrained")
    main = max(set(methods), key=methods.count)
    fig.suptitle(f"most confident mistakes; heat: {plain(main)}", fontsize=10)
    axes = np.atleast_2d(fig.subplots(rows, columns))
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, cam, caption, method) in enumerate(zip(images, heat, captions, methods, strict=True)):
        shown = image[..., 0] if image.shape[-1] == 1 else image
        left, right = axes[i // 2, (i % 2) * 2], axes[i // 2, (i % 2) * 2 + 1]
        left.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
        left.set_title(plain(caption), fontsize=7)
        right.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
        right.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        right.set_title("heat map" if method == main else plain(method.split(" (")[0]) + " (see table)", fontsize=7)
    return _save(fig, path)
