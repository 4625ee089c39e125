"""Issue 20, "nothing a user has is lost or silently wrong": folders pixelda does not own are never
deleted, class names are matched by name, one writer per output folder, one line and exit 2 for
what a user can cause (130 for Ctrl-C), and nothing half-written left behind.

docs/guarantees.md lists each promise beside the test here that proves it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelda import cli, loggers, rundata, training
from pixelda.config import resolve
from pixelda.data import DataOptions, load
from pixelda.data.folder import ReadOptions, load_folder, scan
from pixelda.data.manifest import load_csv
from pixelda.errors import UserError

from .conftest import write_image_folder
from .test_reliability import ARGS, _exits_2_with_one_line

ROOT = Path(__file__).resolve().parents[1]


def _classes(root: Path, names: list[str], *, per_class: int = 6, seed: int = 0) -> Path:
    """root/<name>/<i>.png for each class name: random 20x20 RGB images."""
    rng = np.random.default_rng(seed)
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """train/ and test/ splits of classes named 0..3."""
    root = tmp_path_factory.mktemp("digits") / "digits"
    _classes(root / "train", ["0", "1", "2", "3"])
    _classes(root / "test", ["0", "1", "2", "3"], per_class=3, seed=1)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits) -> Path:
    """A finished tiny run on `digits` (its own source and target)."""
    out = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()
    cli.train_main([*ARGS, *_data(digits), "--out", str(out)])
    torch.set_num_threads(threads)
    return out


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _data(digits: Path) -> list[str]:
    return ["--source", f"folder:{digits}", "--target", f"folder:{digits}", "--val-size", "4"]


def _foreign(folder: Path, **files: str) -> Path:
    """A user's folder: a .tex file, a sub-folder with a file, and `files` (name -> text)."""
    (folder / "figures").mkdir(parents=True)
    (folder / "paper.tex").write_text("\\documentclass{article}")
    (folder / "figures" / "plot.pdf").write_bytes(b"%PDF-1.4")
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text)
    return folder


def _intact(folder: Path) -> bool:
    return (folder / "paper.tex").is_file() and (folder / "figures" / "plot.pdf").is_file()


# ---- ownership: --overwrite deletes only what pixelda can prove it wrote ----------------------


@pytest.mark.parametrize("config", ['{"editor.fontSize": 14}', "{}", "not json"])
def test_train_overwrite_keeps_a_folder_whose_config_json_is_not_ours(
    config, digits, tmp_path, capsys
):
    folder = _foreign(tmp_path / "mine", config_json=config)
    args = [*ARGS, *_data(digits), "--overwrite", "--out", str(folder)]
    line = _exits_2_with_one_line(lambda: cli.train_main(args), capsys)
    assert "refusing to delete" in line and "nothing was deleted" in line
    assert _intact(folder) and (folder / "config.json").read_text() == config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no lock file left


def test_export_overwrite_keeps_a_folder_whose_manifest_json_is_not_ours(run, tmp_path, capsys):
    folder = _foreign(tmp_path / "site", manifest_json='{"name": "my web app"}')
    args = ["--checkpoint", str(run / "ckpt.pt"), "--out", str(folder), "--overwrite"]
    line = _exits_2_with_one_line(lambda: cli.export_main([*args, "--no-progress"]), capsys)
    assert "refusing to delete" in line
    assert _intact(folder) and json.loads((folder / "manifest.json").read_text())["name"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_overwrite_replaces_a_marked_run_and_a_run_of_the_previous_version(run, digits, tmp_path):
    for legacy in (False, True):
        out = tmp_path / f"run-{legacy}"
        cli.train_main([*ARGS, *_data(digits), "--steps", "2", "--out", str(out)])
        assert (out / ".pixelda-run.json").is_file()
        if legacy:  # as the previous version left it: config.json, ckpt.pt, no marker
            (out / ".pixelda-run.json").unlink()
        cli.train_main([*ARGS, *_data(digits), "--overwrite", "--out", str(out)])
        assert json.loads((out / "summary.json").read_text())["steps"] == 4


@pytest.mark.parametrize("entry", ["train", "export"])
def test_a_symlink_given_as_out_is_refused_not_followed(entry, run, digits, tmp_path, capsys):
    target = tmp_path / "real"
    _foreign(target, config_json="{}", manifest_json="{}")
    link = tmp_path / "link"
    link.symlink_to(target)
    if entry == "train":
        call = lambda: cli.train_main([*ARGS, *_data(digits), "--overwrite", "--out", str(link)])
    else:
        ckpt = str(run / "ckpt.pt")
        call = lambda: cli.export_main(["--checkpoint", ckpt, "--out", str(link), "--overwrite"])
    assert "symbolic link" in _exits_2_with_one_line(call, capsys)
    assert link.is_symlink() and _intact(target)


@pytest.mark.parametrize("entry", ["train", "export"])
def test_out_below_a_regular_file_is_one_line(entry, run, digits, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "run"
    if entry == "train":
        call = lambda: cli.train_main([*ARGS, *_data(digits), "--out", str(out)])
    else:
        call = lambda: cli.export_main(["--checkpoint", str(run / "ckpt.pt"), "--out", str(out)])
    assert "which is a file" in _exits_2_with_one_line(call, capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_export_to_a_filesystem_root_is_one_line(run, capsys):
    call = lambda: cli.export_main(["--checkpoint", str(run / "ckpt.pt"), "--out", "/"])
    assert "filesystem root" in _exits_2_with_one_line(call, capsys)


# ---- one writer per folder -----------------------------------------------------------------


def test_a_locked_run_folder_or_export_destination_refuses_a_second_writer(
    run, digits, tmp_path, capsys
):
    from pixelda import locks

    out = tmp_path / "out"
    with locks.hold(out):
        line = _exits_2_with_one_line(
            lambda: cli.train_main([*ARGS, *_data(digits), "--out", str(out)]), capsys
        )
        assert "in use by another pixelda process" in line and not out.exists()
        ckpt = str(run / "ckpt.pt")
        line = _exits_2_with_one_line(
            lambda: cli.export_main(["--checkpoint", ckpt, "--out", str(out), "--no-progress"]),
            capsys,
        )
        assert "in use by another pixelda process" in line and not out.exists()
    assert not locks.lock_path(out).exists()
    cli.export_main(["--checkpoint", str(run / "ckpt.pt"), "--out", str(out), "--no-progress"])
    assert (out / "manifest.json").is_file() and not locks.lock_path(out).exists()


def test_two_trainings_on_one_out_one_is_refused_and_a_killed_holder_does_not_block(
    digits, tmp_path, capsys
):
    from pixelda import locks

    out = tmp_path / "run"
    args = [*ARGS, *_data(digits), "--steps", "100000", "--log-every", "1", "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, "-m", "pixelda.train", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").is_file() and first.poll() is None:
            assert time.monotonic() < deadline, "the first run never started training"
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[1]
        second = [*ARGS, *_data(digits), "--overwrite", "--out", str(out)]
        line = _exits_2_with_one_line(lambda: cli.train_main(second), capsys)
        assert "in use by another pixelda process" in line
    finally:
        first.kill()  # SIGKILL: the lock file stays behind, the kernel drops its lock
        first.communicate(timeout=30)
    summary = cli.train_main([*ARGS, *_data(digits), "--overwrite", "--out", str(out)])
    assert summary["steps"] == 4 and not locks.lock_path(out).exists()


def test_a_run_folder_in_a_read_only_parent_is_locked_itself(tmp_path, monkeypatch):
    from pixelda import locks
    from pixelda.errors import UserError

    real_open = os.open

    def read_only_parent(path, flags, *args):
        if str(path).endswith(".pixelda-lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_parent)
    run = tmp_path / "run"
    run.mkdir()
    with locks.hold(run):
        with pytest.raises(UserError, match="in use by another pixelda process"):
            with locks.hold(run):
                pass
    with locks.hold(run):  # released
        pass


def test_the_next_export_removes_a_staging_folder_a_killed_export_left(run, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its PID now names no live process
    out = tmp_path / "adapted"
    stale = tmp_path / f"adapted.partial-{dead.pid}"
    (stale / "0").mkdir(parents=True)
    (stale / "0" / "0_0.png").write_bytes(b"half")
    cli.export_main(["--checkpoint", str(run / "ckpt.pt"), "--out", str(out), "--no-progress"])
    assert "removed adapted.partial-" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapted"]


# ---- one line and exit 2 (130 for Ctrl-C), nothing half-written ---------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--latent-dim", "100000000"],
        ["--batch-size", "100000000"],
        ["--g-width", "100000000"],
        ["--d-width", "100000000"],
        ["--g-blocks", "100000000"],
    ],
    ids=lambda f: f[0],
)
def test_absurd_sizes_are_refused_before_anything_is_allocated_or_written(
    flags, digits, tmp_path, capsys
):
    out = tmp_path / "run"
    start = time.monotonic()
    line = _exits_2_with_one_line(
        lambda: cli.train_main([*ARGS, *_data(digits), *flags, "--out", str(out)]), capsys
    )
    assert flags[0] in line and time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags",
    [
        ["--seed", "-1"],
        ["--clip-grad-norm", "-1"],
        ["--mask-from-background", "1,2"],
        ["--mask-from-background", "a,b,c"],
        ["--mask-from-background", "0,0,256"],
        ["--channels", "2"],
    ],
    ids=" ".join,
)
def test_bad_values_are_refused_up_front(flags, tmp_path, capsys):
    out = tmp_path / "run"  # the embedded data: no folder would check the colour later
    line = _exits_2_with_one_line(
        lambda: cli.train_main([*ARGS, *flags, "--out", str(out)]), capsys
    )
    assert flags[0] in line and not out.exists()


@pytest.mark.parametrize("moment", ["loading data", "after the run folder is made"])
def test_ctrl_c_during_start_up_is_one_line_exit_130_and_leaves_nothing(
    moment, digits, tmp_path, monkeypatch, capsys
):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if moment == "loading data":
        monkeypatch.setattr(training, "load_data", interrupt)
    else:
        monkeypatch.setattr(loggers, "open_loggers", interrupt)
    out = tmp_path / "new" / "run"
    try:
        cli.train_main([*ARGS, *_data(digits), "--out", str(out)])
    except BaseException as e:  # an escaping KeyboardInterrupt would end the whole session
        caught = e
    err = capsys.readouterr().err
    assert isinstance(caught, SystemExit) and caught.code == 130, repr(caught)
    assert "Traceback" not in err and len(err.splitlines()) <= 3
    assert "interrupted" in err.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", ["-m pixelda.train", "tools/export_adapted.py"])
def test_ctrl_c_while_a_script_loads_torch_is_one_line_exit_130(entry, digits, tmp_path):
    out = tmp_path / "out"
    args = [*ARGS, *_data(digits)] if entry.startswith("-m") else ["--checkpoint", "x.pt"]
    proc = subprocess.Popen(
        [sys.executable, *entry.split(), *args, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child of a non-interactive shell may inherit SIGINT ignored; a terminal's would not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(0.5)  # well before torch has loaded
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted") and not out.exists()


def test_a_release_layout_without_its_test_labels_trains_and_is_named_by_evaluate(
    digits, tmp_path, capsys
):
    release = tmp_path / "root" / "mnist_m"
    (release / "mnist_m_train").mkdir(parents=True)
    lines = []
    for i in range(24):
        Image.new("RGB", (28, 28), (i * 10, 0, 0)).save(release / "mnist_m_train" / f"{i}.png")
        lines.append(f"{i}.png {i % 10}")
    (release / "mnist_m_train_labels.txt").write_text("\n".join(lines) + "\n")
    _classes(tmp_path / "src", [str(c) for c in range(10)], per_class=2)
    args = [*ARGS, "--source", f"folder:{tmp_path / 'src'}", "--target", "mnistm"]
    args += ["--data-root", str(tmp_path / "root"), "--val-size", "10"]
    cli.train_main([*args, "--out", str(tmp_path / "run")])  # no test split: validation only
    capsys.readouterr()
    ckpt = str(tmp_path / "run" / "ckpt.pt")
    call = lambda: cli.evaluate_main(["--checkpoint", ckpt, "--split", "test"])
    assert "mnist_m_test_labels.txt" in _exits_2_with_one_line(call, capsys)


# ---- class names -----------------------------------------------------------------------------


def test_numeric_class_names_sort_by_value(tmp_path):
    _classes(tmp_path / "f", ["10", "2", "1", "b", "a"], per_class=1)
    assert scan(tmp_path / "f")[2] == ["1", "2", "10", "a", "b"]
    rows = [f"f/{name}/0.png,{name}" for name in ("10", "2", "1")] * 12
    (tmp_path / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    assert load_csv(tmp_path / "m.csv", "eval", size=16).classes == ["1", "2", "10"]


def test_evaluate_scores_a_folder_of_some_classes_against_the_right_outputs(run, digits, tmp_path):
    some = tmp_path / "some"
    for name in ("1", "3"):  # the test images of classes 1 and 3 only
        (some / name).mkdir(parents=True)
        for f in (digits / "test" / name).iterdir():
            (some / name / f.name).write_bytes(f.read_bytes())
    result = cli.evaluate_main(["--checkpoint", str(run / "ckpt.pt"), "--data", f"folder:{some}"])
    assert result["counts_per_class"] == {"1": 3, "3": 3}
    import pixelda

    adapter = pixelda.load(run / "ckpt.pt")
    data = load_folder(some, "eval", size=16)
    predicted = adapter.classify(data.images.float() / 127.5 - 1)
    truth = torch.tensor([1] * 3 + [3] * 3)  # the model's indices of classes "1" and "3"
    assert result["acc"] == pytest.approx((predicted == truth).float().mean().item())
    right = (predicted == truth).float()
    by_hand = {"1": right[:3].mean().item(), "3": right[3:].mean().item()}
    assert result["acc_per_class"] == pytest.approx(by_hand)


def test_accuracy_per_class_by_hand():
    from pixelda.data import ImageSet
    from pixelda.metrics import score

    class Fixed(torch.nn.Module):  # class 0 for the first 3 images of a batch, 2 for the rest
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))  # predict() reads the device from it

        def forward(self, x):
            out = torch.zeros(len(x), 3)
            out[:, 2], out[:3, 0] = 1, 2
            return out

    model = Fixed()
    images = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    # Labels 0, 0, 2, 2, 2: class 0 right twice of 2, class 2 twice of 3, class 1 absent.
    data = ImageSet(images, torch.tensor([0, 0, 2, 2, 2]), "t", ["a", "b", "c"])
    assert score(model, data, per_class=True)["acc_per_class"] == pytest.approx(
        {"a": 1.0, "c": 2 / 3}
    )


def test_evaluate_refuses_a_class_the_model_does_not_know(run, tmp_path, capsys):
    _classes(tmp_path / "other", ["1", "cat"], per_class=2)
    data = f"folder:{tmp_path / 'other'}"
    call = lambda: cli.evaluate_main(["--checkpoint", str(run / "ckpt.pt"), "--data", data])
    assert "class 'cat' is not one of the model's classes" in _exits_2_with_one_line(call, capsys)


def test_training_refuses_a_labeled_target_whose_class_names_the_source_lacks(tmp_path, capsys):
    source = _classes(tmp_path / "letters", ["a", "b"])
    target = tmp_path / "digits"
    _classes(target / "train", ["0", "1"])
    _classes(target / "test", ["0", "1"], per_class=2)
    args = [*ARGS, "--source", f"folder:{source}", "--target", f"folder:{target}"]
    args += ["--val-size", "2"]
    line = _exits_2_with_one_line(
        lambda: cli.train_main([*args, "--out", str(tmp_path / "r")]), capsys
    )
    assert "class '0' is not one of the model's classes" in line
    assert not (tmp_path / "r").exists()


def test_training_maps_a_target_test_of_some_classes_by_name(digits, tmp_path):
    target = tmp_path / "target"
    _classes(target / "train", ["0", "1", "2", "3"], per_class=2)
    _classes(target / "test", ["2"], per_class=3)
    overrides = {"source": f"folder:{digits}", "target": f"folder:{target}"}
    cfg = resolve({**overrides, "image_size": 16, "val_size": 4})
    data = rundata.load_data(cfg)
    assert data.target_test.classes == ["0", "1", "2", "3"]
    assert data.target_test.labels.tolist() == [2, 2, 2]


# ---- mixed image modes and CSV manifests --------------------------------------------------------


def test_a_folder_mixing_gray_and_colour_follows_the_majority_or_channels(tmp_path, capsys):
    folder = tmp_path / "mixed"
    write_image_folder(folder / "c", classes=1, per_class=5, mode="RGB")
    Image.new("L", (20, 20), 128).save(folder / "c" / "class0" / "0_gray_first.png")
    (folder / "c" / "class0" / "0_gray_first.png").rename(folder / "c" / "class0" / "0.png")
    data = load_folder(folder / "c", "eval", size=16)
    assert data.channels == 3 and "mixes grayscale (1) and colour (4)" in capsys.readouterr().err
    opts = DataOptions(image_size=16, channels=1)
    assert load(f"folder:{folder / 'c'}", "eval", opts).channels == 1


def test_a_csv_of_a_million_junk_rows_fails_on_its_first_bad_row_at_once(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_text("path,label\n" + "junk,1,2,3,4,5,6,7,8,9\n" * 1_000_000)
    for skip in (False, True):
        start = time.monotonic()
        with pytest.raises(UserError, match=r"junk\.csv:2: expected 2 non-empty values"):
            load_csv(path, "train", size=16, opts=ReadOptions(skip_bad_files=skip))
        assert time.monotonic() - start < 2.0, skip
