import json

from pixelda import train


def test_tiny_pixelda_run_writes_a_complete_run_directory(tiny_args, tmp_path):
    summary = train.main(tiny_args)
    run = tmp_path / "run"
    for name in (
        "config.json",
        "metrics.jsonl",
        "ckpt.pt",
        "curves.png",
        "summary.json",
        "samples/latest.png",
    ):
        assert (run / name).is_file(), name
    assert summary["steps"] == 4 and 0.0 <= summary["target_test_acc"] <= 1.0
    assert json.loads((run / "summary.json").read_text())["method"] == "pixelda"
