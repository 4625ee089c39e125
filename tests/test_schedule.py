"""The learning-rate schedules and the run's budget, against hand-computed values."""

import json

import pytest

from pixelda import cli
from pixelda.adversarial import learning_rate, run_progress
from pixelda.config import resolve


def test_step_schedule_is_the_official_staircase():
    cfg = resolve({"preset": "paper"})
    assert cfg.lr_schedule == "step"
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 9_999, 0.5) == pytest.approx(1e-3)  # progress plays no part
    assert learning_rate(cfg, 10_000, 0.5) == pytest.approx(1e-3 * 0.95)
    assert learning_rate(cfg, 25_000, 0.5) == pytest.approx(1e-3 * 0.95**2)


def test_linear_schedule_falls_to_zero_over_the_budget():
    cfg = resolve({"preset": "fast", "steps": 1000})
    assert cfg.lr_schedule == "linear" and cfg.lr == 2e-3
    assert learning_rate(cfg, 0, run_progress(cfg, 0, 0.0)) == pytest.approx(2e-3)
    assert learning_rate(cfg, 250, run_progress(cfg, 250, 1e6)) == pytest.approx(1.5e-3)
    assert learning_rate(cfg, 999, run_progress(cfg, 999, 0.0)) == pytest.approx(2e-6)


def test_progress_is_steps_or_minutes_whichever_ends_the_run_first():
    cfg = resolve({"steps": 1000, "max_minutes": 10.0})
    assert run_progress(cfg, 100, 60.0) == pytest.approx(0.1)
    assert run_progress(cfg, 100, 150.0) == pytest.approx(0.25)  # time runs out first
    assert run_progress(cfg, 500, 150.0) == pytest.approx(0.5)  # steps run out first
    assert run_progress(cfg, 100, 900.0) == 1.0  # past the budget: never a negative lr
    no_limit = resolve({"steps": 1000})
    assert run_progress(no_limit, 100, 1e9) == pytest.approx(0.1)


def test_cgan_keeps_a_constant_learning_rate_under_the_fast_preset():
    cfg = resolve({"method": "cgan"})
    assert cfg.lr_schedule == "step" and cfg.lr_decay == 1.0
    assert learning_rate(cfg, 3999, 0.99) == pytest.approx(2e-4)


def test_a_run_logs_the_learning_rate_it_used(tmp_path, tiny_args):
    cli.train_main([*tiny_args, "--steps", "4", "--log-every", "1", "--lr", "0.004"])
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lrs = [r["lr"] for r in map(json.loads, records) if r["kind"] == "train"]
    assert lrs == pytest.approx([0.004, 0.003, 0.002, 0.001])
