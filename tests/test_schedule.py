"""The learning-rate schedules and the run's budget, against hand-computed values."""

import json

import pytest

from pixelda import cli
from pixelda.config import resolve
from pixelda.errors import UserError
from pixelda.schedules import learning_rate, lr_cycles, run_progress


def test_step_schedule_is_the_official_staircase():
    cfg = resolve({"preset": "paper"})
    assert cfg.lr_schedule == "step"
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 9_999, 0.5) == pytest.approx(1e-3)  # progress plays no part
    assert learning_rate(cfg, 10_000, 0.5) == pytest.approx(1e-3 * 0.95)
    assert learning_rate(cfg, 25_000, 0.5) == pytest.approx(1e-3 * 0.95**2)


def test_linear_schedule_falls_to_zero_over_the_budget():
    cfg = resolve({"preset": "fast", "steps": 1000, "lr_hold": 0.0})
    assert cfg.lr_schedule == "linear" and cfg.lr == 2e-3
    assert learning_rate(cfg, 0, run_progress(cfg, 0, 0.0)) == pytest.approx(2e-3)
    assert learning_rate(cfg, 250, run_progress(cfg, 250, 1e6)) == pytest.approx(1.5e-3)
    assert learning_rate(cfg, 999, run_progress(cfg, 999, 0.0)) == pytest.approx(2e-6)


def test_linear_schedule_restarts_in_cycles_on_a_long_time_budget():
    cfg = resolve(
        {"preset": "fast", "max_minutes": 120.0, "lr_cycle_minutes": 30.0, "lr_hold": 0.0}
    )
    assert lr_cycles(cfg) == 4 and cfg.lr_cycle_decay == 0.5
    # progress 0.1 is 0.4 of the first cycle; 0.3 is 0.2 of the second, which starts at lr / 2
    assert learning_rate(cfg, 0, 0.1) == pytest.approx(2e-3 * 0.6)
    assert learning_rate(cfg, 0, 0.3) == pytest.approx(1e-3 * 0.8)
    assert learning_rate(cfg, 0, 0.875) == pytest.approx(2.5e-4 * 0.5)
    assert learning_rate(cfg, 0, 0.25 - 1e-9) == pytest.approx(0.0, abs=1e-8)  # each ends at 0
    assert learning_rate(cfg, 0, 1.0) == 0.0
    assert lr_cycles(resolve({"max_minutes": 100.0, "lr_cycle_minutes": 30.0})) == 4  # <= 30 each


def test_cycles_leave_short_and_step_budgets_to_the_plain_linear_decay():
    for overrides in ({"max_minutes": 30.0}, {"max_minutes": 0.0}, {"lr_cycle_minutes": 0.0}):
        cfg = resolve(
            {
                "preset": "fast",
                "max_minutes": 120.0,
                "lr_cycle_minutes": 30.0,
                "lr_hold": 0.0,
                **overrides,
            }
        )
        assert lr_cycles(cfg) == 1
        for p in (0.0, 0.3, 0.9):
            assert learning_rate(cfg, 0, p) == pytest.approx(2e-3 * (1 - p))


def test_linear_schedule_holds_the_learning_rate_then_decays_over_the_rest():
    cfg = resolve({"preset": "fast", "lr_hold": 0.6})
    for p in (0.0, 0.3, 0.6):
        assert learning_rate(cfg, 0, p) == pytest.approx(2e-3)
    # the last 0.4 of the budget falls from 2e-3 to 0: 3/4 of the way at 0.9
    assert learning_rate(cfg, 0, 0.7) == pytest.approx(1.5e-3)
    assert learning_rate(cfg, 0, 0.9) == pytest.approx(5e-4)
    assert learning_rate(cfg, 0, 1.0) == 0.0
    # in cycles, each cycle holds its own starting lr: 2 cycles of 30 minutes, the second at lr/2
    cycled = resolve(
        {"preset": "fast", "lr_hold": 0.5, "max_minutes": 60.0, "lr_cycle_minutes": 30.0}
    )
    assert learning_rate(cycled, 0, 0.2) == pytest.approx(2e-3)
    assert learning_rate(cycled, 0, 0.375) == pytest.approx(1e-3)
    assert learning_rate(cycled, 0, 0.7) == pytest.approx(1e-3)
    assert learning_rate(cycled, 0, 0.875) == pytest.approx(5e-4)


def test_the_fast_preset_holds_pixeldas_learning_rate_but_not_the_baselines():
    assert resolve({"preset": "fast"}).lr_hold == 0.7
    assert resolve({"preset": "paper"}).lr_hold == 0.0  # the paper's staircase, untouched
    for method in ("source-only", "target-only", "dann"):
        assert resolve({"preset": "fast", "method": method}).lr_hold == 0.0
    assert resolve({"preset": "fast", "lr_hold": 0.2}).lr_hold == 0.2  # the user's flag wins


@pytest.mark.parametrize("hold", [-0.1, 1.0])
def test_a_hold_outside_the_budget_is_refused(hold):
    with pytest.raises(UserError, match="--lr-hold"):
        resolve({"lr_hold": hold})


@pytest.mark.parametrize(
    "flag", [{"lr_cycle_minutes": -1.0}, {"lr_cycle_decay": 0.0}, {"lr_cycle_decay": 1.5}]
)
def test_bad_cycle_flags_are_refused(flag):
    with pytest.raises(UserError, match="--lr-cycle-minutes, --lr-cycle-decay"):
        resolve(flag)


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


@pytest.mark.parametrize(
    "hold,expected", [("0", [0.004, 0.003, 0.002, 0.001]), ("0.5", [0.004, 0.004, 0.004, 0.002])]
)
def test_a_run_logs_the_learning_rate_it_used(tmp_path, tiny_args, hold, expected):
    args = ["--steps", "4", "--log-every", "1", "--lr", "0.004", "--lr-hold", hold]
    cli.train_main([*tiny_args, *args])
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lrs = [r["lr"] for r in map(json.loads, records) if r["kind"] == "train"]
    assert lrs == pytest.approx(expected)
