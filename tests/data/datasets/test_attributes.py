import numpy as np
import pytest
import torch
from scipy.io import savemat

from omnireid.data.datasets.attributes import (
    label_matrix,
    load_attribute_dataset,
)
from omnireid.data.datasets.base import DatasetLayoutError
from omnireid.data.image_dataset import AttributeImageDataset
from omnireid.data.synthetic import ATTRIBUTES, generate_world, read_attributes
from omnireid.data.transforms import build_eval_transform

PA100K_NAMES = ["Female", "AgeOver60", "Hat"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    generate_world(
        root,
        num_ids_train=3,
        num_ids_test=2,
        images_per_id_per_cam=2,
        num_cams=2,
        num_distractors=2,
    )
    return root


def _cells(strings):
    """A MATLAB cell column of strings, as PA-100K's annotation.mat stores names."""
    cells = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cells[i, 0] = np.array([s])
    return cells


def _write_pa100k(root, labels=None):
    splits = {"train": ["000001.jpg", "000002.jpg"], "val": ["000003.jpg"], "test": ["000004.jpg"]}
    labels = labels or {
        "train": [[1, 0, 1], [0, 0, 0]],
        "val": [[0, 1, 0]],
        "test": [[1, 1, 1]],
    }
    mat = {"attributes": _cells(PA100K_NAMES)}
    for split, files in splits.items():
        mat[f"{split}_images_name"] = _cells(files)
        mat[f"{split}_label"] = np.array(labels[split], dtype=np.uint8)
    (root / "data").mkdir(parents=True, exist_ok=True)
    savemat(root / "annotation.mat", mat)


def test_synthetic_world_labels_come_from_attributes_csv(world):
    ds = load_attribute_dataset("synthetic", world)
    assert ds.attributes == list(ATTRIBUTES)
    assert len(ds.train) == 3 * 2 * 2 and ds.val == []
    assert len(ds.test) == 2 * 2 + (2 * 2 * 2 + 2)  # query + gallery (distractors included)
    truth = read_attributes(world / "Market-1501-v15.09.15")
    for s in ds.train[:3] + ds.test[-3:]:
        key = "/".join(s.path.split("/")[-2:])
        assert s.labels == tuple(truth[key][a] for a in ATTRIBUTES)
    same = load_attribute_dataset("synthetic", world / "Market-1501-v15.09.15")
    assert same.train == ds.train


def test_pa100k_annotation_mat_in_the_real_layout(tmp_path):
    _write_pa100k(tmp_path)
    ds = load_attribute_dataset("pa100k", tmp_path)
    assert ds.attributes == PA100K_NAMES
    assert [len(ds.train), len(ds.val), len(ds.test)] == [2, 1, 1]
    assert ds.train[0].path == str(tmp_path / "data" / "000001.jpg")
    assert ds.train[0].labels == (1, 0, 1) and ds.test[0].labels == (1, 1, 1)
    assert label_matrix(ds.train).tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_pa100k_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"annotation\.mat"):
        load_attribute_dataset("pa100k", tmp_path)
    bad = {"train": [[1, 0], [0, 0]], "val": [[0, 1, 0]], "test": [[1, 1, 1]]}
    _write_pa100k(tmp_path, bad)
    with pytest.raises(DatasetLayoutError, match=r"train_label has shape \(2, 2\)"):
        load_attribute_dataset("pa100k", tmp_path)
    savemat(tmp_path / "annotation.mat", {"attributes": _cells(PA100K_NAMES)})
    with pytest.raises(DatasetLayoutError, match="missing fields"):
        load_attribute_dataset("pa100k", tmp_path)
    with pytest.raises(KeyError, match="available: pa100k, synthetic"):
        load_attribute_dataset("peta", tmp_path)


def test_torch_dataset_items_are_image_labels_index(world):
    ds = load_attribute_dataset("synthetic", world)
    items = AttributeImageDataset(ds.train, build_eval_transform(64, 32))
    image, labels, index = items[1]
    assert image.shape == (3, 64, 32) and index == 1
    assert labels.dtype == torch.float32 and labels.tolist() == list(ds.train[1].labels)
