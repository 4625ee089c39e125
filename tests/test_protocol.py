"""The evaluation protocol: a fixed, stratified validation split carved out of the target's
training split, best.pt by validation score, train-only releases of MNIST-M and USPS, and the
MNIST-M recipe composed at the output size."""

import bz2
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixelda import checkpoint, cli, config, distributed, rundata
from pixelda.data import DataOptions, load, split_validation
from pixelda.data.common import resize, validation_split
from pixelda.data.mnistm import compose
from pixelda.data.photos import embedded_photo_files, load_photos
from pixelda.errors import UserError

from .conftest import SHARED_DATA, TINY, requires_shared


def sharpness(images: torch.Tensor) -> float:
    """Mean absolute difference of horizontally adjacent pixels (0..255)."""
    return (images[..., 1:].float() - images[..., :-1].float()).abs().mean().item()


@pytest.mark.parametrize("size", [10, 37, 1000])
def test_validation_split_is_disjoint_stratified_and_fixed(size):
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([900, 500, 100, 1500])])
    labels = labels[torch.randperm(len(labels), generator=g)]
    pool, val = validation_split(labels, size, seed=0)
    assert len(val) == size and len(pool) == len(labels) - size
    assert not set(pool.tolist()) & set(val.tolist())
    assert sorted(pool.tolist() + val.tolist()) == list(range(len(labels)))
    counts, total = labels.bincount(), len(labels)
    expected = counts.double() * size / total
    assert ((val_counts := labels[val].bincount(minlength=4)) - expected).abs().max() < 1
    assert val_counts.sum() == size
    again_pool, again_val = validation_split(labels, size, seed=0)
    assert torch.equal(again_val, val) and torch.equal(again_pool, pool)
    assert not torch.equal(validation_split(labels, size, seed=1)[1], val)


def test_validation_split_of_regression_targets_is_a_random_subset():
    labels = torch.rand(50, 2)
    pool, val = validation_split(labels, 7, seed=0)
    assert len(val) == 7 and not set(pool.tolist()) & set(val.tolist())


@pytest.mark.parametrize("size", [0, 2, 4000, 5000])
def test_bad_val_size_is_a_one_line_error(size, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.train_main([*TINY, "--out", str(tmp_path / "run"), "--val-size", str(size)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: --val-size") and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_pool_shrinks_by_val_size_and_the_split_ignores_seed_and_ranks(monkeypatch):
    cfg = config.resolve({"val_size": 300, "image_size": 16})
    data = rundata.load_data(cfg)
    full = load("mnistm", "train", DataOptions.from_config(cfg))
    assert len(data.target_train) == len(full) - 300 and len(data.target_val) == 300
    assert data.target_train.labels is None  # the pool is unlabeled for every method but one
    assert data.target_val.labels.bincount().tolist() == [30] * 10  # 400 of each class
    # Not one validation image is in the pool (the embedded digits hold no duplicates).
    pool = {bytes(x.numpy()) for x in data.target_train.images}
    assert not any(bytes(x.numpy()) in pool for x in data.target_val.images)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    other = rundata.load_data(config.resolve({"val_size": 300, "image_size": 16, "seed": 5}))
    assert torch.equal(other.target_val.images, data.target_val.images)
    assert torch.equal(other.target_train.images, data.target_train.images)


def test_evaluations_log_validation_and_best_pt_holds_the_best_step(tmp_path):
    out = tmp_path / "run"
    summary = cli.train_main([*TINY, "--out", str(out), "--steps", "6", "--eval-every", "1"])
    evals = [
        json.loads(line)
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "eval"
    ]
    assert [r["step"] for r in evals] == [1, 2, 3, 4, 5, 6]
    assert all("target_val_acc" in r and "target_test_acc" in r for r in evals)
    best = max(evals, key=lambda r: (r["target_val_acc"], -r["step"]))  # the first best
    assert summary["best"] == {
        "step": best["step"],
        "metric": "target_val_acc",
        "value": best["target_val_acc"],
    }
    assert summary["target_val_acc"] == evals[-1]["target_val_acc"]
    saved = checkpoint.load(out / "best.pt")
    assert saved["step"] == best["step"] and checkpoint.load(out / "ckpt.pt")["step"] == 6


def test_a_best_pt_scores_as_its_evaluation_did(tmp_path):
    out = tmp_path / "run"
    summary = cli.train_main([*TINY, "--out", str(out), "--steps", "3", "--eval-every", "1"])

    result = cli.evaluate_main(["--checkpoint", str(out / "best.pt"), "--split", "val"])
    assert result["acc"] == pytest.approx(summary["best"]["value"])


def _usps_file(path, rows: list[str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress("\n".join(rows).encode()))


def _usps_rows(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"{i % 10 + 1} "
        + " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(rng.uniform(-1, 1, 256)))
        for i in range(n)
    ]


def test_a_target_without_a_test_split_reports_validation_only(tmp_path, capsys):
    from .conftest import write_image_folder

    _usps_file(tmp_path / "data" / "usps" / "usps.bz2", _usps_rows(60))
    source = write_image_folder(tmp_path / "src", classes=10, per_class=3, size=16, mode="L")
    for c in range(10):  # named as USPS's digits: labeled splits are matched by class name
        (source / f"class{c}").rename(source / str(c))
    summary = cli.train_main(
        [
            *TINY,
            "--out",
            str(tmp_path / "run"),
            "--data-root",
            str(tmp_path / "data"),
            "--source",
            f"folder:{source}",
            "--target",
            "usps",
            "--val-size",
            "20",
        ]
    )
    err = capsys.readouterr().err
    assert "note: no target test split: no USPS test file" in err
    assert summary["finished"] and summary["target_val_acc"] is not None
    assert "target_test_acc" not in summary and "target_test_acc" not in summary["metrics"]


def test_a_malformed_usps_line_is_named_or_skipped(tmp_path, capsys):
    rows = _usps_rows(5)
    rows[2] = rows[2].replace("7:", "8:", 1)
    _usps_file(tmp_path / "usps" / "usps.bz2", rows)
    opts = DataOptions(data_root=str(tmp_path), image_size=16)
    with pytest.raises(UserError, match=r"usps\.bz2:3: expected index 7, got '8:"):
        load("usps", "train", opts)
    data = load("usps", "train", DataOptions(data_root=str(tmp_path), skip_bad_files=True))
    assert len(data) == 4 and data.labels.tolist() == [0, 1, 3, 4]
    assert "warning: skipped 1 bad line(s)" in capsys.readouterr().err
    assert load("usps", "test", opts) is None


def _release(root, rows: dict[str, int]):
    folder = root / "mnist_m"
    (folder / "mnist_m_train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in rows:
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "mnist_m_train" / name)
    listing = "".join(f"{name} {label}\n" for name, label in rows.items())
    (folder / "mnist_m_train_labels.txt").write_text(listing)
    return folder


def test_a_train_only_release_loads_and_names_a_missing_image(tmp_path, capsys):
    folder = _release(tmp_path, {f"{i:08d}.png": i % 10 for i in range(12)})
    opts = DataOptions(data_root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    data = load("mnistm", "train", opts)
    assert data.images.shape == (12, 3, 32, 32) and data.labels.tolist() == [
        i % 10 for i in range(12)
    ]
    assert load("mnistm", "test", opts) is None
    (folder / "mnist_m_train" / "00000004.png").unlink()
    with open(folder / "mnist_m_train_labels.txt", "a") as f:  # a new listing: a new cache key
        f.write("00000099.png 3\n")
    with pytest.raises(UserError, match=r"mnist_m_train_labels\.txt:5: cannot read .*00000004"):
        load("mnistm", "train", opts)
    skipping = DataOptions(data_root=str(tmp_path), skip_bad_files=True)
    assert len(load("mnistm", "train", skipping)) == 11
    assert "warning: skipped 2 unreadable image(s)" in capsys.readouterr().err


def test_the_recipe_is_composed_at_the_output_size(tmp_path):
    opts = DataOptions(image_size=32, cache_dir=str(tmp_path))
    built = load("mnistm", "test", opts)
    assert built.images.shape == (1000, 3, 32, 32)
    # Composing at 28x28 and resizing to 32 (the earlier recipe) blurs the strokes and photo.
    digits = load("mnist", "test", DataOptions(image_size=28)).images[:, 0].numpy()
    resized = compose(digits, load_photos(embedded_photo_files()), seed=2)
    resized = resize(torch.from_numpy(resized).permute(0, 3, 1, 2).contiguous(), 32)
    assert sharpness(built.images) > 1.08 * sharpness(resized)
    # The digit sits in the release's frame: the 2-pixel border holds no ink, so it is the photo.
    framed = load("mnist", "test", DataOptions(image_size=32)).images
    assert framed.shape == (1000, 1, 32, 32) and framed[..., :2, :].max() == 0


@requires_shared
def test_the_shared_release_is_train_only_and_matches_mnist(tmp_path):
    if not (SHARED_DATA / "mnist_m" / "mnist_m_train_labels.txt").is_file():
        pytest.skip("Ganin's MNIST-M release is not under ../shared/data")
    opts = DataOptions(data_root=str(SHARED_DATA))  # the session's cache: decoded once
    release = load("mnistm", "train", opts)
    assert release.images.shape == (59000, 3, 32, 32)
    assert load("mnistm", "test", opts) is None
    names = (SHARED_DATA / "mnist_m" / "mnist_m_train_labels.txt").read_text().split()[::2]
    index = torch.tensor([int(n.removesuffix(".png")) for n in names])
    mnist = load("mnist", "train", opts)
    assert torch.equal(release.labels, mnist.labels[index])
    recipe = load(
        "mnistm",
        "train",
        DataOptions(
            data_root=str(SHARED_DATA), photos=str(SHARED_DATA / "bsds500" / "images" / "train")
        ),
    )
    # Same framing and sharpness as the release, within 10 % (release 14.0, recipe 14.9).
    assert sharpness(recipe.images[:5000]) == pytest.approx(
        sharpness(release.images[:5000]), rel=0.1
    )
    pool, val = split_validation(release, 1000)
    assert len(pool) == 58000 and val.labels.bincount().min() >= 90
