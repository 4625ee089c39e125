"""The adapted-dataset export: layout, labels, determinism, safety and bad input."""

import csv
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from pixelda import __version__, checkpoint, cli, config, writers
from pixelda.data import DataOptions, load, to_float, to_uint8
from pixelda.exporting import zoom_factors
from pixelda.helpers import zoom_in
from pixelda.methods import DataInfo, pixelda, restore

from .conftest import write_image_folder

ROOT = Path(__file__).resolve().parents[1]
K = 2  # variants in most tests


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny run's checkpoint as training writes it (checkpoint.save, a 16x16 3-channel mnist
    -> mnistm config), minus the training: strong random generator weights instead, because a
    few steps from the N(0, 0.02) start leave every output flat grey, and wrong images would
    pass for right ones."""
    cfg = config.resolve({"image_size": 16, "g_width": 8, "g_blocks": 1, "d_width": 8})
    info = DataInfo(channels=3, image_size=16, num_outputs=10, classes=[str(d) for d in range(10)])
    torch.manual_seed(0)
    models = pixelda.build(cfg, info)
    for w in models["generator"].parameters():
        if w.dim() > 1:
            torch.nn.init.normal_(w, 0.0, 0.3)
    path = tmp_path_factory.mktemp("run") / "ckpt.pt"
    checkpoint.save(
        path,
        config=dataclasses.asdict(cfg),
        data_info=info.to_dict(),
        step=4,
        wall_s=0.0,
        train_s=0.0,
        models=models,
        optimizers=pixelda.optimizers(models, cfg),
        batches={},
    )
    return path


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    """3 labeled classes of 20x20 RGB images; the export resizes them to the run's 16x16."""
    return write_image_folder(tmp_path_factory.mktemp("src") / "digits", per_class=5)


def run_export(ckpt: Path, out: Path, source_dir: Path, *args: str) -> dict:
    return cli.export_main(
        [
            "--checkpoint",
            str(ckpt),
            "--out",
            str(out),
            "--source",
            f"folder:{source_dir}",
            "--variants",
            str(K),
            "--no-progress",
            *args,
        ]
    )


def source_of(source_dir: Path):
    return load(f"folder:{source_dir}", "train", DataOptions(image_size=16), channels=3)


def read_rows(out: Path) -> list[dict]:
    with open(out / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)


def files_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def test_imagefolder_layout_loads_with_torchvision(ckpt, source_dir, tmp_path):
    out = tmp_path / "adapted"
    run_export(ckpt, out, source_dir)
    src = source_of(source_dir)
    folder = ImageFolder(str(out))
    assert len(folder) == len(src) * K == len(read_rows(out))
    assert folder.classes == src.classes == ["class0", "class1", "class2"]
    files = {Path(p).relative_to(out).as_posix(): y for p, y in folder.samples}
    for row in read_rows(out):
        # The label travels with its image: the source's label, and ImageFolder agrees.
        assert int(row["label"]) == int(src.labels[int(row["source_index"])])
        assert files[row["file"]] == int(row["label"])
    assert (out / "preview.png").is_file() and not list(tmp_path.glob("*.partial-*"))


@pytest.mark.parametrize("zoom", [None, "1"])
def test_each_image_is_the_generator_applied_to_its_source_with_its_noise(
    ckpt, source_dir, tmp_path, zoom
):
    out = tmp_path / "adapted"
    run_export(ckpt, out, source_dir, "--seed", "7", *(["--zoom", zoom] if zoom else []))
    run_cfg, _, models = restore(checkpoint.load(ckpt))
    src = source_of(source_dir)
    n = len(src)
    # The documented noise recipe, written out: one torch.Generator per (seed, batch index);
    # all n sources fit in one batch, z[v, i] for variant v of source i.
    seed = int(np.random.SeedSequence([7, 0]).generate_state(1, np.uint64)[0])
    z = torch.rand((K, n, 10), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    # The zoom T learned with (the run's --adapted-zoom and --adapted-zoom-share unless --zoom):
    # u ~ U(0, 1) seeded by (seed + 1,000,003, batch), one per image in the same order; factor 1
    # where u < 1 - share, else from U(1, Z).
    max_zoom, share = (
        (run_cfg.adapted_zoom, run_cfg.adapted_zoom_share) if zoom is None else (float(zoom), 1.0)
    )
    assert (max_zoom, share) == ((1.6, 0.5) if zoom is None else (1.0, 1.0))
    seed = int(np.random.SeedSequence([7 + 1_000_003, 0]).generate_state(1, np.uint64)[0])
    u = torch.rand((K * n,), generator=torch.Generator().manual_seed(seed))
    factors = (1 + ((u - (1 - share)) / share).clamp(min=0) * (max_zoom - 1)).view(K, n)
    x_src = to_float(src.images)
    for row in read_rows(out):
        i, v = int(row["source_index"]), int(row["variant"])
        adapted = pixelda.adapt(models["generator"], x_src[i : i + 1], z[v, i : i + 1])
        if max_zoom > 1:
            adapted = zoom_in(adapted, factors[v, i : i + 1])
        expected = to_uint8(adapted)
        got = png(out / row["file"]).int()
        assert (got - expected[0].int()).abs().max() <= 1, row  # channels_last: ~1e-8 apart
    first = [png(out / r["file"]) for r in read_rows(out)[:K]]
    assert not torch.equal(first[0], first[1]), "variants should differ by their noise"
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["zoom"], manifest["zoom_share"]) == (max_zoom, share)


def test_manifest_records_the_checkpoint_run_and_counts(ckpt, source_dir, tmp_path):
    out = tmp_path / "adapted"
    run_export(ckpt, out, source_dir, "--seed", "3")
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["run_config"] == checkpoint.load(ckpt)["config"]
    assert (meta["seed"], meta["variants"], meta["format"]) == (3, K, "imagefolder")
    src = source_of(source_dir)
    expected = {c: int((src.labels == i).sum()) * K for i, c in enumerate(src.classes)}
    assert meta["counts_per_class"] == expected and meta["count"] == len(src) * K
    assert meta["pixelda_version"] == __version__ and meta["created"]


def test_default_source_is_the_runs_own_through_the_script(ckpt, tmp_path):
    out = tmp_path / "adapted"
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "export_adapted.py"),
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--limit",
        "20",
        "--variants",
        "3",
        "--no-progress",
    ]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, timeout=120)
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["source"] == "mnist" and meta["classes"] == [str(d) for d in range(10)]
    mnist = load("mnist", "train", DataOptions(image_size=16), channels=3)
    rows = read_rows(out)
    assert len(rows) == 60 and len({r["source_index"] for r in rows}) == 20
    for row in rows:
        assert int(row["label"]) == int(mnist.labels[int(row["source_index"])])
    # --limit spreads over the class-sorted source; the preview shows 2 per class, 1 + 3 columns
    assert set(meta["counts_per_class"].values()) == {6}
    assert Image.open(out / "preview.png").size == (4 * 66 + 2, 20 * 66 + 2)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(ckpt, source_dir, tmp_path):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        run_export(ckpt, tmp_path / name, source_dir, "--seed", seed, "--batch-size", "4")
    a, b, c = (files_bytes(tmp_path / name) for name in "abc")
    assert a == b and len(a) == len(source_of(source_dir)) * K + 3  # + labels.csv, preview, marker
    assert {k for k in a if a[k] != c[k]} - {"labels.csv"}


def test_npz_holds_the_same_images_and_labels(ckpt, source_dir, tmp_path):
    run_export(ckpt, tmp_path / "png", source_dir, "--seed", "1")
    run_export(ckpt, tmp_path / "npz", source_dir, "--seed", "1", "--format", "npz")
    assert sorted(p.name for p in (tmp_path / "npz").iterdir()) == [
        ".pixelda-export.json",
        "adapted.npz",
        "manifest.json",
        "preview.png",
    ]
    data = np.load(tmp_path / "npz" / "adapted.npz")
    src, rows = source_of(source_dir), read_rows(tmp_path / "png")
    assert data["images"].dtype == np.uint8 and data["images"].shape == (len(rows), 16, 16, 3)
    assert data["labels"].tolist() == src.labels[data["source_index"]].tolist()
    assert data["variant"].tolist() == [int(r["variant"]) for r in rows]
    for image, row in zip(data["images"], rows):
        assert np.array_equal(image, np.array(Image.open(tmp_path / "png" / row["file"])))
    again = tmp_path / "npz2"
    run_export(ckpt, again, source_dir, "--seed", "1", "--format", "npz")
    assert files_bytes(again) == files_bytes(tmp_path / "npz")


def test_refuses_a_non_empty_out_and_overwrite_replaces_it(ckpt, source_dir, tmp_path, capsys):
    out = tmp_path / "adapted"
    run_export(ckpt, out, source_dir, "--variants", "1")
    before = files_bytes(out)
    with pytest.raises(SystemExit) as e:
        run_export(ckpt, out, source_dir)
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert files_bytes(out) == before
    run_export(ckpt, out, source_dir, "--overwrite")
    assert len(read_rows(out)) == len(source_of(source_dir)) * K
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapted"]


def test_overwrite_refuses_a_folder_that_is_not_an_export(ckpt, source_dir, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:
        run_export(ckpt, tmp_path / "notes", source_dir, "--overwrite")
    assert e.value.code == 2 and "manifest.json" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["keep.txt"]


# An OSError (disk full) is a one-line error, exit 2 (tests/test_reliability.py).
@pytest.mark.parametrize("error, code", [(KeyboardInterrupt, 130), (OSError, 2)])
@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_export_leaves_out_untouched(
    ckpt, source_dir, tmp_path, monkeypatch, error, code, existing
):
    out = tmp_path / "adapted"
    if existing:
        run_export(ckpt, out, source_dir, "--seed", "9")
    before = files_bytes(out) if existing else None
    real_write, calls = writers.ImageFolderWriter.write, []

    def failing_write(self, *args):
        calls.append(1)
        if len(calls) == 2:  # after one batch is on disk
            raise error("disk full")
        real_write(self, *args)

    monkeypatch.setattr(writers.ImageFolderWriter, "write", failing_write)
    with pytest.raises(SystemExit if code else error) as e:
        run_export(ckpt, out, source_dir, "--batch-size", "4", "--overwrite")
    assert code is None or e.value.code == code
    assert len(calls) == 2
    assert (files_bytes(out) if existing else out.exists()) == (before if existing else False)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["adapted"] if existing else [])


def _truncated(path: Path, ckpt: Path) -> None:
    path.write_bytes(ckpt.read_bytes()[:2000])


def _not_ours(path: Path, ckpt: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, path)


def _text(path: Path, ckpt: Path) -> None:
    path.write_text("not a checkpoint\n")


def _source_only(path: Path, ckpt: Path) -> None:
    state = torch.load(ckpt, weights_only=True)
    state["config"]["method"] = "source-only"
    torch.save(state, path)


@pytest.mark.parametrize(
    "make_ckpt, args, message",
    [
        (None, [], "no checkpoint at"),
        (_truncated, [], "not a readable pixelda checkpoint"),
        (_not_ours, [], "not a pixelda checkpoint"),
        (_text, [], "not a readable pixelda checkpoint"),
        (_source_only, [], "has no generator"),
        ("ok", ["--format", "tfrecord"], "--format"),
        ("ok", ["--variants", "0"], "--variants"),
        ("ok", ["--out-is-a-file"], "not a folder"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    ckpt, source_dir, tmp_path, capsys, make_ckpt, args, message
):
    path = ckpt if make_ckpt == "ok" else tmp_path / "given.pt"
    if callable(make_ckpt):
        make_ckpt(path, ckpt)
    out = tmp_path / "adapted"
    if args == ["--out-is-a-file"]:
        out.write_text("a file")
        args = []
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as e:
        run_export(path, out, source_dir, *args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_run_folder_exports_its_best_checkpoint_and_the_manifest_says_which(
    ckpt, source_dir, tmp_path
):
    run = tmp_path / "run"
    run.mkdir()
    stored = checkpoint.load(ckpt)
    for name in ("ckpt.pt", "best.pt"):
        (run / name).write_bytes(ckpt.read_bytes())
    # best.pt as the loop writes it: an earlier step, with the score that made it the best.
    best = torch.load(run / "best.pt", weights_only=True)
    best.update(step=2, best={"step": 2, "metric": "target_val_acc", "value": 0.5})
    torch.save(best, run / "best.pt")
    evals = [{"kind": "eval", "step": 2, "target_val_acc": 0.5, "validator_im": 1.5}]
    evals += [{"kind": "eval", "step": 4, "target_val_acc": 0.4, "validator_im": 1.2}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))

    meta = run_export(run, tmp_path / "a", source_dir, "--limit", "3")
    assert Path(meta["checkpoint"]) == run / "best.pt" and meta["checkpoint_kind"] == "best"
    assert meta["checkpoint_step"] == 2
    assert meta["checkpoint_scores"] == {"target_val_acc": 0.5, "validator_im": 1.5}

    (run / "best.pt").unlink()  # a run without validation: its last checkpoint
    meta = run_export(run, tmp_path / "b", source_dir, "--limit", "3")
    assert Path(meta["checkpoint"]) == run / "ckpt.pt" and meta["checkpoint_kind"] == "last"
    assert (meta["checkpoint_step"], meta["checkpoint_scores"]["target_val_acc"]) == (4, 0.4)
    assert stored["step"] == 4


def test_a_folder_without_checkpoints_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.export_main(["--checkpoint", str(tmp_path / "empty"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint at" in err[0] and "ckpt.pt" in err[0]


def test_export_zoom_factors_follow_the_share():
    u = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])  # (u + 1) / 2 = 0, 0.25, 0.5, 0.75, 1
    torch.testing.assert_close(zoom_factors(u, 2.0, 1.0), torch.tensor([1, 1.25, 1.5, 1.75, 2]))
    # Share 0.5: the lower half unzoomed, the upper half spread over U(1, 2).
    torch.testing.assert_close(zoom_factors(u, 2.0, 0.5), torch.tensor([1, 1, 1, 1.5, 2]))
    assert torch.equal(zoom_factors(u, 2.0, 0.0), torch.ones(5))
