"""Flags come from the config dataclass; bad input exits 2 with one line and writes nothing."""

import dataclasses

import pytest
import torch
from PIL import Image

from pixelda import checkpoint, cli
from pixelda.config import PRESETS, TrainConfig, resolve
from pixelda.flags import build_parser

from .conftest import TINY


def test_every_config_field_has_a_flag_with_its_default_in_help(capsys):
    parser = build_parser(TrainConfig, prog="t", description="d", presets=PRESETS)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "fast 1200, paper 250000" in " ".join(text.split())


def test_preset_then_flags_override_defaults():
    assert resolve({"preset": "paper"}).g_blocks == 6  # Bousmalis et al. 2017
    fast = resolve({})
    assert fast.preset == "fast" and fast.g_blocks == PRESETS["fast"]["g_blocks"]
    assert resolve({"g_blocks": 4}).g_blocks == 4
    assert resolve({"preset": "paper", "lr": 0.5}).lr == 0.5
    # A preset's True is turned off by the --no- form of its flag.
    parser = build_parser(TrainConfig, prog="t", description="d", presets=PRESETS)
    assert resolve({}).target_recolour
    assert not resolve(vars(parser.parse_args(["--no-target-recolour"]))).target_recolour


def _bad(argv, tmp_path, capsys, expected: str):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as e:
        cli.train_main([*TINY, "--out", str(out), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert len([line for line in err if "error" in line]) == 1 and expected in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--method", "magic"], "--method"),
        (["--source", "imagenet"], "unknown dataset 'imagenet'"),
        (["--target", "folder:/no/such/folder"], "not a folder"),
        (["--data-root", "/no/such/root"], "--data-root"),
        (["--image-size", "30"], "--image-size"),
        (["--image-size", "256"], "--image-size"),
        (["--steps", "0"], "--steps"),
        (["--preset", "turbo"], "--preset"),
        (["--steps", "many"], "--steps"),
        (["--resume"], "--resume"),
    ],
)
def test_bad_flags(argv, expected, tmp_path, capsys):
    _bad(argv, tmp_path, capsys, expected)


def test_photo_folder_without_readable_images(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.txt").write_text("no photos here")
    _bad(["--photos", str(photos)], tmp_path, capsys, "no image files")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    _bad(["--photos", str(photos)], tmp_path, capsys, "cannot read")


def test_data_root_without_mnist(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    _bad(["--data-root", str(root)], tmp_path, capsys, "no MNIST")


def test_unlabeled_source_folder(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (16, 16)).save(flat / "a.png")
    _bad(["--source", f"folder:{flat}"], tmp_path, capsys, "no labels")


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04truncated zip"])
def test_resume_or_evaluate_from_a_file_that_is_not_a_checkpoint(content, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "ckpt.pt").write_bytes(content)
    (run / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        cli.train_main(["--out", str(run), "--resume"])
    assert e.value.code == 2 and "not a readable pixelda checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.evaluate_main(["--checkpoint", str(run / "ckpt.pt")])
    assert e.value.code == 2 and "not a readable pixelda checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt", "config.json"]


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, capsys):
    import os

    import torch

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "pixelda-checkpoint", "payload": Evil()}, tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit) as e:
        cli.evaluate_main(["--checkpoint", str(tmp_path / "ckpt.pt")])
    assert e.value.code == 2 and "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_resume_refuses_changed_model_flags(tmp_path, tiny_args, capsys):
    cli.train_main(tiny_args)
    with pytest.raises(SystemExit) as e:
        cli.train_main(["--out", str(tmp_path / "run"), "--resume", "--g-width", "16"])
    assert e.value.code == 2 and "--g-width" in capsys.readouterr().err


def test_resume_keeps_an_option_newer_than_the_run_off(tmp_path, tiny_args, monkeypatch):
    # A checkpoint written before --target-class-thresholds existed (no option, no buffer),
    # resumed by a pixelda whose preset turns it on.
    monkeypatch.setitem(PRESETS["fast"], "target_class_thresholds", True)
    cli.train_main(tiny_args)
    path = tmp_path / "run" / "ckpt.pt"
    ckpt = checkpoint.load(path)
    del ckpt["config"]["target_class_thresholds"]
    del ckpt["models"]["teacher"]["confident_shares"]
    torch.save(ckpt, path)
    cli.train_main(["--out", str(tmp_path / "run"), "--resume", "--steps", "6", "--no-progress"])
    resumed = checkpoint.load(path)
    assert resumed["step"] == 6 and resumed["config"]["target_class_thresholds"] is False
    assert "confident_shares" not in resumed["models"]["teacher"]


def test_evaluate_scores_a_checkpoint(tmp_path, tiny_args, capsys):
    cli.train_main(tiny_args)
    result = cli.evaluate_main(
        [
            "--checkpoint",
            str(tmp_path / "run" / "ckpt.pt"),
            "--data",
            "mnist",
            "--out",
            str(tmp_path / "eval.json"),
        ]
    )
    assert result["n"] == 1000 and 0 <= result["acc"] <= 1
    assert (tmp_path / "eval.json").is_file()
