"""End-to-end runs of `python -m pixelda.train` (cli.train_main) on tiny data: determinism,
resume, run directory rules."""

import json

import pytest
import torch

from pixelda import checkpoint, cli
from pixelda.data import to_float
from pixelda.methods import restore

from .conftest import TINY


def _losses(run_dir, kinds=("train", "eval")):
    """metrics.jsonl records without their timings."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if not k.endswith("_s")} for r in records if r["kind"] in kinds
    ]


def test_same_seed_same_losses(tmp_path, tiny_args):
    cli.train_main(tiny_args)
    other = [*tiny_args[:-1], str(tmp_path / "again")]
    cli.train_main(other)
    assert _losses(tmp_path / "run") == _losses(tmp_path / "again")
    third = [*tiny_args[:-1], str(tmp_path / "seed1"), "--seed", "1"]
    cli.train_main(third)
    assert _losses(tmp_path / "run") != _losses(tmp_path / "seed1")


@pytest.mark.parametrize("method", ["pixelda", "source-only", "target-only"])
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, tiny_args, method):
    # The split run changes --steps on resume, which the linear schedule's learning rate reads,
    # so both runs use the staircase; tests/test_reliability.py resumes linear runs.
    flags = [*tiny_args, "--method", method, "--lr-schedule", "step"]
    cli.train_main([*flags, "--steps", "6"])
    out = str(tmp_path / "split")
    cli.train_main([*flags, "--steps", "3", "--out", out])
    summary = cli.train_main(["--out", out, "--resume", "--steps", "6", "--no-progress"])
    assert summary["steps"] == 6
    # The stopped run also evaluated at its last step (3); training losses must match exactly.
    assert _losses(tmp_path / "run", ["train"]) == _losses(tmp_path / "split", ["train"])
    assert len(_losses(tmp_path / "split", ["train"])) == 6


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, tiny_args):
    cli.train_main(tiny_args)
    ckpt = checkpoint.load(tmp_path / "run" / "ckpt.pt")
    assert ckpt["step"] == 4 and ckpt["config"]["image_size"] == 16
    cfg, _info, models = restore(ckpt)
    _, _, again = restore(checkpoint.load(tmp_path / "run" / "ckpt.pt"))
    x = to_float(torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8))
    z = torch.rand(3, cfg.latent_dim) * 2 - 1
    with torch.no_grad():
        assert torch.equal(models["generator"](x, z), again["generator"](x, z))
        assert torch.equal(models["classifier"](x), again["classifier"](x))
    # loadable by plain torch with weights_only=True
    raw = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert isinstance(raw["config"], dict) and raw["format"] == "pixelda-checkpoint"


def test_run_directory_is_never_silently_overwritten(tmp_path, tiny_args, capsys):
    cli.train_main(tiny_args)
    before = (tmp_path / "run" / "ckpt.pt").read_bytes()
    with pytest.raises(SystemExit) as e:
        cli.train_main(tiny_args)
    assert e.value.code == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "run" / "ckpt.pt").read_bytes() == before
    cli.train_main([*tiny_args, "--overwrite", "--seed", "3"])
    assert (tmp_path / "run" / "ckpt.pt").read_bytes() != before


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, tiny_args, capsys):
    precious = tmp_path / "run"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(SystemExit):
        cli.train_main([*tiny_args, "--overwrite"])
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert "not a pixelda run directory" in capsys.readouterr().err


def test_metrics_and_summary_are_held_out(tmp_path, tiny_args):
    summary = cli.train_main(tiny_args)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert summary["target_test_acc"] == evals[-1]["target_test_acc"]
    for key in ("method", "steps", "wall_s", "target_test_acc", "source_test_acc", "device"):
        assert key in summary


def test_without_out_each_run_gets_a_fresh_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [*TINY, "--steps", "1", "--method", "source-only"]
    cli.train_main(args)
    cli.train_main(args)
    assert (tmp_path / "runs" / "source-only" / "ckpt.pt").is_file()
    assert (tmp_path / "runs" / "source-only-2" / "ckpt.pt").is_file()
    assert "run in runs/source-only-2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.train_main(["--resume", "--no-progress"])
    assert "error: --resume: name the run to continue with --out RUN" in capsys.readouterr().err


def test_the_summary_keeps_every_warning_the_console_printed(tmp_path, tiny_args, capsys):
    # An untrained classifier on tiny data predicts some class too rarely at every evaluation.
    summary = cli.train_main([*tiny_args, "--eval-every", "1"])
    captured = capsys.readouterr()
    printed = [
        line.removeprefix("warning: ").split(" (python -m pixelda.select")[0]
        for line in captured.out.splitlines()
        if line.startswith("warning: step ")
    ]
    assert printed and summary["warnings"] == printed
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["warnings"] == printed
    assert f"{len(printed)} warnings during the run, the last at {printed[-1]}" in captured.err
