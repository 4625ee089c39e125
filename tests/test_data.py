import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from pixelda.data import DataOptions, load, to_float, to_uint8
from pixelda.data.common import match_channels
from pixelda.data.mnist import read_idx
from pixelda.data.mnistm import compose
from pixelda.errors import UserError

from .conftest import SHARED_DATA, requires_shared, write_image_folder


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_plain_and_gzipped(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x").write_bytes(_idx_bytes(a))
    (tmp_path / "x.gz").write_bytes(gzip.compress(_idx_bytes(a)))
    assert np.array_equal(read_idx(tmp_path / "x"), a)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), a)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    a = np.zeros((2, 3, 4), dtype=np.uint8)
    (tmp_path / "short").write_bytes(_idx_bytes(a)[:-5])
    (tmp_path / "foreign").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "short")
    with pytest.raises(UserError, match="not an IDX"):
        read_idx(tmp_path / "foreign")


def test_mnistm_recipe_by_hand():
    digits = np.zeros((1, 2, 2), dtype=np.uint8)
    digits[0, 0, 0] = 7  # any ink > 0 is binarised to 255
    photo = np.full((2, 2, 3), 100, dtype=np.uint8)
    photo[1, 1] = [10, 20, 30]
    out = compose(digits, [photo], seed=0)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [155, 155, 155]  # |100 - 255|
    assert out[0, 1, 1].tolist() == [10, 20, 30]  # background: the photo itself
    assert out[0, 0, 1].tolist() == [100, 100, 100]


def test_mnistm_is_deterministic_for_a_seed_and_varies_with_it():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8)
    photos = [rng.integers(0, 256, (9, 11, 3), dtype=np.uint8) for _ in range(3)]
    assert np.array_equal(compose(digits, photos, 1), compose(digits, photos, 1))
    assert not np.array_equal(compose(digits, photos, 1), compose(digits, photos, 2))


def test_embedded_default_is_a_fixed_disjoint_stratified_split():
    opts = DataOptions(image_size=28)
    train, test = load("mnist", "train", opts), load("mnist", "test", opts)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.labels.bincount().tolist() == [400] * 10
    assert test.labels.bincount().tolist() == [100] * 10
    flat_train = {bytes(x) for x in train.images.flatten(1).numpy()}
    assert not any(bytes(x) in flat_train for x in test.images.flatten(1).numpy())
    tgt = load("mnistm", "test", opts)
    assert tgt.images.shape == (1000, 3, 28, 28) and torch.equal(tgt.labels, test.labels)


def test_contract_uint8_storage_and_float_range():
    data = load("mnist", "test", DataOptions(image_size=32), channels=3)
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, 32, 32)
    x = to_float(data.images[:8])
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    native = to_float(load("mnist", "test", DataOptions(image_size=28)).images[:8])
    assert native.min() == -1 and native.max() == 1  # 0 -> -1 and 255 -> 1 exactly
    assert torch.equal(to_uint8(to_float(data.images[:8])), data.images[:8])


def test_channel_conversion():
    gray = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    rgb = match_channels(gray, 3)
    assert rgb.shape == (2, 3, 4, 4) and torch.equal(rgb[:, 0], rgb[:, 2])
    assert torch.equal(match_channels(rgb, 1), gray)


def test_image_folder_labeled_and_flat(tmp_path):
    labeled = write_image_folder(tmp_path / "lab", classes=3, per_class=20, size=24)
    opts = DataOptions(image_size=16)
    train, test = load(f"folder:{labeled}", "train", opts), load(f"folder:{labeled}", "test", opts)
    assert len(train) + len(test) == 60 and len(test) > 0
    assert train.classes == ["class0", "class1", "class2"]
    assert train.images.shape[1:] == (3, 16, 16)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(5):
        Image.new("L", (30, 20), i * 40).save(flat / f"{i}.jpg")
    unlabeled = load(f"folder:{flat}", "train", opts, channels=3)
    assert unlabeled.labels is None and unlabeled.images.shape == (5, 3, 16, 16)
    assert load(f"folder:{flat}", "test", opts) is None


@requires_shared
def test_real_mnist_and_mnistm_from_shared_data(tmp_path):
    photos = str(SHARED_DATA / "bsds500" / "images" / "train")  # the recipe, not the release
    opts = DataOptions(
        data_root=str(SHARED_DATA), image_size=28, cache_dir=str(tmp_path), photos=photos
    )
    mnist = load("mnist", "test", opts)
    assert mnist.images.shape == (10000, 1, 28, 28)
    assert mnist.labels.bincount().tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    mnistm = load("mnistm", "test", opts)
    assert mnistm.images.shape == (10000, 3, 28, 28) and torch.equal(mnistm.labels, mnist.labels)
    ink = mnist.images[:, 0] > 0
    # where there is no ink, MNIST-M shows the photo, so it is rarely pure black
    assert mnistm.images.float().mean() > 50
    assert ink.any()
    again = load("mnistm", "test", opts)  # from the cache now
    assert torch.equal(again.images, mnistm.images)
    assert len(list(tmp_path.glob("mnistm-test-*.npy"))) == 1


def test_usps_from_torchvision_files(tmp_path):
    import bz2

    rng = np.random.default_rng(0)
    lines = [
        f"{label} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(rng.uniform(-1, 1, 256)))
        for label in (1, 5, 10)
    ]  # USPS labels 1..10 stand for digits 0..9
    (tmp_path / "usps").mkdir()
    (tmp_path / "usps" / "usps.bz2").write_bytes(bz2.compress("\n".join(lines).encode()))
    data = load("usps", "train", DataOptions(data_root=str(tmp_path), image_size=16))
    assert data.images.shape == (3, 1, 16, 16) and data.labels.tolist() == [0, 4, 9]
    assert load("usps", "test", DataOptions(data_root=str(tmp_path), image_size=16)) is None


def test_fonts_source_is_labeled_masked_and_fixed():
    a = load("fonts", "test", DataOptions(image_size=28))
    b = load("fonts", "test", DataOptions(image_size=28))
    assert a.images.shape == (1000, 1, 28, 28) and a.labels.bincount().tolist() == [100] * 10
    assert torch.equal(a.images, b.images)  # deterministic
    assert torch.equal(a.masks[:, 0].bool(), a.images[:, 0] > 0)  # ink is the foreground
    train = load("fonts", "train", DataOptions(image_size=28))
    assert len(train) == 4000 and not torch.equal(train.images[:1000], a.images)
