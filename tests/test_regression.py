"""--task regression: K numeric targets from a csv: manifest, MSE loss, RMSE reported."""

import numpy as np
import pytest
from PIL import Image

from pixelda import cli
from pixelda.data import DataOptions, load
from pixelda.errors import UserError

from .conftest import TINY


def _manifest(root, n=30, seed=0, header="path,y1,y2", bad_row=None):
    """Images whose brightness is the first target: a learnable regression problem."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for i in range(n):
        level = rng.uniform(0, 1)
        Image.fromarray(np.full((20, 20, 3), int(level * 255), np.uint8)).save(root / f"{i}.png")
        lines.append(f"{i}.png,{level:.4f},{rng.uniform(-1, 1):.4f}")
    if bad_row is not None:
        lines.append(bad_row)
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def test_csv_manifest_gives_float_targets_and_a_fixed_held_out_split(tmp_path):
    csv = _manifest(tmp_path / "src", n=40)
    opts = DataOptions(image_size=16)
    train_set, test_set = load(f"csv:{csv}", "train", opts), load(f"csv:{csv}", "test", opts)
    assert len(train_set) + len(test_set) == 40 and len(test_set) > 0
    assert train_set.labels.shape[1] == 2 and train_set.labels.dtype.is_floating_point
    assert train_set.classes is None


@pytest.mark.parametrize(
    "bad_row,expected",
    [("99.png,0.5", ":32: expected 3"), ("99.png,0.5,abc", ":32: regression targets")],
)
def test_csv_bad_rows_name_file_and_line(tmp_path, bad_row, expected):
    csv = _manifest(tmp_path / "src", bad_row=bad_row)
    with pytest.raises(UserError, match=expected):
        load(f"csv:{csv}", "train", DataOptions(image_size=16))


@pytest.mark.parametrize("method", ["source-only", "dann", "pixelda"])
def test_regression_runs_end_to_end_and_reports_rmse(tmp_path, method):
    src = _manifest(tmp_path / "src", seed=0)
    tgt = _manifest(tmp_path / "tgt", seed=1)
    summary = cli.train_main(
        [
            *TINY,
            "--out",
            str(tmp_path / "run"),
            "--method",
            method,
            "--task",
            "regression",
            "--source",
            f"csv:{src}",
            "--target",
            f"csv:{tgt}",
            "--val-size",
            "4",
        ]
    )
    metrics = summary["metrics"]
    assert metrics["target_test_rmse"] >= 0 and len(metrics["target_test_rmse_per_output"]) == 2
    assert metrics["target_val_rmse"] >= 0 and len(metrics["target_val_rmse_per_output"]) == 2
    assert "target_test_acc" not in summary and "target_val_acc" not in summary
    assert summary["best"]["metric"] == "target_val_rmse"


def test_regression_targets_need_the_regression_task(tmp_path, capsys):
    src = _manifest(tmp_path / "src")
    with pytest.raises(SystemExit) as e:
        cli.train_main([*TINY, "--out", str(tmp_path / "run"), "--source", f"csv:{src}"])
    assert e.value.code == 2 and "--task regression" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
