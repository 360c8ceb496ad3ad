"""A tiny TFDS dataset prepared offline (no downloads), shared by the tests that read TFDS.

Session-scoped: TFDS registers a builder class once per process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DS_NAME = "vp_tfds_source_test_pets"  # snake_case of the builder class below; unique in the TFDS registry
COUNTS = {"train": 6, "validation": 3, "test": 3}
# A multi-label dataset: a Sequence of ClassLabel per image, as VOC's "labels".
MULTI_NAME = "vp_tfds_source_test_tags"
TAGS = ["red", "green", "blue"]
MULTI_COUNTS = {"train": 12, "test": 6}


def tag_ids(split: str, i: int) -> list[int]:
    """The label ids of multi-label image i: a seeded subset of TAGS; train image 0 carries none."""
    if (split, i) == ("train", 0):
        return []
    chosen = [t for t in range(len(TAGS)) if (i + t) % 3 != 0 or t == i % 3]
    return chosen or [i % 3]


def _example(split: str, i: int) -> tuple[np.ndarray, int]:
    """Height 8+i and label i%2, so each decoded record can be checked against what was written."""
    seed = list(COUNTS).index(split) * 100 + i
    return np.random.default_rng(seed).integers(0, 256, (8 + i, 10, 3), dtype=np.uint8), i % 2


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory) -> Path:
    import tensorflow_datasets as tfds

    class TinyDataset(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """An image and one label feature per example; the subclasses name the feature and the splits."""

        VERSION = tfds.core.Version("1.0.0")
        LABEL_KEY = ""
        SPLITS: dict[str, int] = {}

        def label_feature(self):
            raise NotImplementedError

        def label_of(self, split: str, i: int):
            raise NotImplementedError

        def _info(self):
            features = {"image": tfds.features.Image(shape=(None, None, 3)), self.LABEL_KEY: self.label_feature()}
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in self.SPLITS}

        def _generate_examples(self, split):
            for i in range(self.SPLITS[split]):
                yield f"{split}-{i}", {"image": _example(split, i)[0], self.LABEL_KEY: self.label_of(split, i)}

    class VpTfdsSourceTestPets(TinyDataset):
        # A dotted module (tests.components...) makes TFDS 4.9.10 look up its checksums via the
        # `importlib_resources` backport, which is not installed; a bare name skips that (as in Colab).
        __module__ = DS_NAME
        LABEL_KEY, SPLITS = "label", COUNTS

        def label_feature(self):
            return tfds.features.ClassLabel(names=["cat", "dog"])

        def label_of(self, split, i):
            return _example(split, i)[1]

    class VpTfdsSourceTestTags(TinyDataset):
        __module__ = MULTI_NAME
        LABEL_KEY, SPLITS = "labels", MULTI_COUNTS

        def label_feature(self):
            return tfds.features.Sequence(tfds.features.ClassLabel(names=TAGS))

        def label_of(self, split, i):
            return tag_ids(split, i)

    root = tmp_path_factory.mktemp("tfds")
    for builder_class, name in ((VpTfdsSourceTestPets, DS_NAME), (VpTfdsSourceTestTags, MULTI_NAME)):
        builder = builder_class(data_dir=str(root))
        assert builder.name == name
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return root
