"""Speed flags (--channels-last, --fused-adam, --compile, --amp bf16): each trains end to end,
changes no checkpoint, may change on --resume, and a bad value is a one-line error."""

import json
import math
import os
import shutil

import pytest
import torch

from pixelda import checkpoint, cli, metrics, runtime, speed
from pixelda.config import resolve
from pixelda.errors import UserError

from .conftest import TINY, write_image_folder

SPEED_FLAGS = ["--channels-last", "--fused-adam", "--amp", "bf16"]


def _train_losses(run) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "train"]


@pytest.mark.parametrize(
    "flags", [["--no-channels-last"], ["--fused-adam"], ["--amp", "bf16"]], ids=lambda f: f[-1]
)
def test_each_flag_trains_two_steps(flags, tmp_path, tiny_args):
    summary = cli.train_main([*tiny_args, "--steps", "2", *flags])
    assert summary["steps"] == 2 and summary["skipped_steps"] == 0
    losses = _train_losses(tmp_path / "run")
    assert len(losses) == 2
    assert all(math.isfinite(v) for r in losses for k, v in r.items() if k.endswith("_loss"))


@pytest.mark.skipif(shutil.which(speed.cxx_compiler()) is None, reason="no C++ compiler")
@pytest.mark.skipif(
    not os.environ.get("PIXELDA_TEST_COMPILE"),
    reason="compiling takes 30-90 s on 2 cores; set PIXELDA_TEST_COMPILE=1 to run",
)
def test_compile_trains_two_steps_with_the_same_checkpoint_keys(tmp_path, tiny_args):
    cli.train_main([*tiny_args, "--steps", "2", "--compile"])
    keys = checkpoint.load(tmp_path / "run" / "ckpt.pt")["models"]["generator"].keys()
    assert all("_orig_mod" not in k for k in keys)
    assert (
        cli.train_main(["--out", str(tmp_path / "run"), "--resume", "--steps", "3"])["steps"] == 3
    )


def test_flags_on_then_resumed_with_them_off_same_weight_keys(tmp_path, tiny_args):
    cli.train_main([*tiny_args, "--steps", "2", *SPEED_FLAGS])
    run = tmp_path / "run"
    on = checkpoint.load(run / "ckpt.pt")
    assert on["optimizers"]["g"]["param_groups"][0]["fused"] is True
    # Evaluation and export rebuild eager models from a checkpoint trained with the flags.
    assert 0 <= cli.evaluate_main(["--checkpoint", str(run / "ckpt.pt"), "--data", "mnist"])["acc"]
    source = write_image_folder(tmp_path / "src", classes=2, per_class=2, size=16)
    argv = ["--checkpoint", str(run / "ckpt.pt"), "--out", str(tmp_path / "adapted")]
    cli.export_main([*argv, "--source", f"folder:{source}", "--variants", "1", "--no-progress"])
    assert len(list((tmp_path / "adapted").rglob("*.png"))) >= 4
    off_flags = ["--no-channels-last", "--no-fused-adam", "--amp", "none", "--no-progress"]
    summary = cli.train_main(["--out", str(run), "--resume", "--steps", "4", *off_flags])
    assert summary["steps"] == 4
    off = checkpoint.load(run / "ckpt.pt")
    assert off["config"]["amp"] == "none" and not off["config"]["fused_adam"]
    assert not off["optimizers"]["g"]["param_groups"][0]["fused"]  # resumed without --fused-adam
    for name, state in on["models"].items():
        assert state.keys() == off["models"][name].keys()
        assert all(torch.isfinite(w.float()).all() for w in off["models"][name].values())
    losses = _train_losses(run)
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    assert all(math.isfinite(v) for r in losses for k, v in r.items() if k.endswith("_loss"))


def test_bf16_losses_are_float32():
    """Under autocast the models compute in bf16; the losses the step returns are float32."""
    from pixelda.batches import Batch
    from pixelda.methods import DataInfo, pixelda

    cfg = resolve({"image_size": 16, "g_width": 8, "g_blocks": 1, "d_width": 8, "amp": "bf16"})
    info = DataInfo(channels=3, image_size=16, num_outputs=10, classes=list("0123456789"))
    torch.manual_seed(0)
    models = speed.prepare_models(pixelda.build(cfg, info), cfg, "cpu")
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    batch = Batch(x_src=x, y_src=torch.arange(4), mask_src=None, x_tgt=x.flip(0))
    with speed.autocast(cfg, "cpu"):
        assert models["classifier"](x).dtype == torch.bfloat16
        losses = pixelda.train_step(models, pixelda.optimizers(models, cfg), batch, cfg, 0.0)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in models.parameters())


@pytest.mark.parametrize(
    "argv,expected",
    [(["--amp", "fp8"], "--amp"), (["--amp"], "--amp"), (["--compile", "yes"], "unrecognized")],
)
def test_bad_speed_flags_exit_2_with_one_line(argv, expected, tmp_path, tiny_args, capsys):
    with pytest.raises(SystemExit) as e:
        cli.train_main([*tiny_args, *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and expected in err[0]
    assert not (tmp_path / "run").exists()


def test_compile_without_a_cxx_compiler_is_a_one_line_error(
    tmp_path, tiny_args, monkeypatch, capsys
):
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as e:
        cli.train_main([*tiny_args, "--compile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "--compile" in err[-1] and "C++ compiler" in err[-1]
    assert not (tmp_path / "run").exists()


def test_bf16_forward_sees_weights_updated_within_the_same_step():
    """A D-step updates D in place; a later forward in the same step must use the new weights."""
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    with speed.autocast(resolve({"amp": "bf16"}), "cpu"):
        before = layer(x)
        with torch.no_grad():
            layer.weight.add_(1.0)
        after = layer(x)
    assert after.dtype == torch.bfloat16 and not torch.allclose(before, after)


def test_bf16_is_refused_where_autocast_has_no_bf16():
    with pytest.raises(UserError, match="--amp bf16"):
        speed.check_amp(resolve({"amp": "bf16"}), torch.device("mps"))


def test_fused_adam_where_unsupported_is_a_one_line_error(monkeypatch):
    def adam(params, fused=None, **kwargs):
        raise RuntimeError("`fused=True` requires all the params to be on supported devices\nmore")

    monkeypatch.setattr(speed.torch.optim, "Adam", adam)
    with pytest.raises(
        UserError, match=r"^--fused-adam: not available here \(`fused=True`[^\n]*\)$"
    ):
        speed.adam([torch.zeros(1)], resolve({"fused_adam": True}), lr=1.0)


def test_fused_adam_gives_plain_adams_parameters():
    """Given the same gradients, fused and plain Adam differ only by float32 rounding.

    Gradients are drawn, not computed from the weights: computed ones would feed each step's
    rounding back into the next gradient and amplify it by the model's own sensitivity. One
    Adam step is a handful of float32 operations on each element, each rounding by at most
    u = 2**-24 of its magnitude, and the magnitudes involved are the weight and its update;
    so step t may differ by at most K * u * (|p_t| + |update_t|), with K = 16 (twice the eight
    dependent operations of an update), and the differences of T steps add up."""
    k, u, steps = 16, 2.0**-24, 5
    g = torch.Generator().manual_seed(0)
    start = torch.randn(64, 32, generator=g)
    scale = 10 ** torch.empty(steps, 64, 32).uniform_(-4, 1, generator=g)  # tiny to large
    grads = list(torch.randn(steps, 64, 32, generator=g) * scale)

    def trained(fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.nn.Parameter(start.clone())
        opt = speed.adam([p], resolve({"fused_adam": fused}), lr=1e-2, betas=(0.5, 0.999))
        bound = torch.zeros_like(start)
        for grad in grads:
            before = p.detach().clone()
            p.grad = grad.clone()
            opt.step()
            bound += k * u * (before.abs() + (p.detach() - before).abs())
        return p.detach(), bound

    fused, _ = trained(True)
    plain, bound = trained(False)
    assert not torch.equal(plain, start)
    ratio = ((fused - plain).abs() / bound).max()
    assert ratio <= 1, ratio


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_is_bf16_only_where_the_hardware_has_it(native, monkeypatch):
    monkeypatch.setattr(speed, "native_bf16", lambda device: native)
    cfg = resolve({})
    assert cfg.amp == "auto"
    assert speed.amp_mode(cfg, "cpu") == ("bf16" if native else "none")
    with speed.autocast(cfg, "cpu"):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    # An explicit choice is kept whatever the hardware.
    assert speed.amp_mode(resolve({"amp": "none"}), "cpu") == "none"
    assert speed.amp_mode(resolve({"amp": "bf16"}), "cpu") == "bf16"


def test_summary_says_which_precision_the_run_used(tmp_path, tiny_args):
    summary = cli.train_main([*tiny_args, "--steps", "1"])
    assert summary["amp"] == speed.amp_mode(resolve({}), "cpu")
    summary = cli.train_main([*TINY, "--steps", "1", "--amp", "none", "--out", str(tmp_path / "n")])
    assert summary["amp"] == "none"


def test_hardware_names_the_gpu_a_run_computed_on(monkeypatch):
    # No GPU in CI: the name torch would report is stood in for. summary.json's "hardware" is
    # runtime.hardware(the run's device).
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    cpu = runtime.hardware("cpu")
    assert cpu.endswith(" torch threads") and "NVIDIA" not in cpu
    assert runtime.hardware("cuda:0") == f"NVIDIA H200; {cpu}"
    assert runtime.hardware("mps") == f"Apple MPS; {cpu}"


def test_scoring_batches_by_device_and_any_batch_gives_the_same_outputs():
    assert metrics.eval_batch("cpu") == metrics.CPU_EVAL_BATCH
    assert metrics.eval_batch(torch.device("cuda", 0)) == metrics.ACCELERATOR_EVAL_BATCH
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    images = torch.randint(0, 256, (300, 3, 4, 4), dtype=torch.uint8)  # 3 CPU batches
    whole = metrics.predict(model, images, device="cpu", batch_size=len(images))
    torch.testing.assert_close(metrics.predict(model, images, device="cpu"), whole)
