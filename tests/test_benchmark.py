"""The accuracy benchmark (benchmarks/accuracy.py, tools/benchmark.py) on tiny settings:
embedded data, a few steps, two seeds."""

import json
import statistics
import sys
import types
from pathlib import Path

import pytest

from pixelda import cli, training

from .conftest import TINY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import accuracy as benchmark  # noqa: E402
import common  # noqa: E402  (benchmarks/common.py: run_one trains or reuses)
from report import PAPER  # noqa: E402

# the benchmark sets --steps itself
TRAIN_FLAGS = [a for i, a in enumerate(TINY) if "--steps" not in TINY[max(0, i - 1) : i + 1]]


def test_tiny_benchmark_writes_results_next_to_the_paper(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    argv = [
        "--methods",
        "source-only",
        "dann",
        "--seeds",
        "2",
        "--steps",
        "3",
        "--out",
        str(out),
        "--",
        *TRAIN_FLAGS,
    ]
    results = benchmark.main(argv)
    assert results == json.loads((out / "results.json").read_text())
    assert list(results["tasks"]) == ["mnist->mnistm"] and results["complete"]
    for method in ("source-only", "dann"):
        row = results["tasks"]["mnist->mnistm"][method]
        runs = [out / "runs" / "mnist-to-mnistm" / method / f"seed{s}" for s in (0, 1)]
        summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
        accs = [100 * s["target_val_acc"] for s in summaries]
        tests = [100 * s["target_test_acc"] for s in summaries]
        assert row["seeds"] == [0, 1] and row["steps"] == [3, 3] and row["failed"] == 0
        assert row["acc_mean"] == pytest.approx(statistics.fmean(accs))
        assert row["acc_std"] == pytest.approx(statistics.stdev(accs))
        assert row["test_acc_mean"] == pytest.approx(statistics.fmean(tests))
        assert row["paper"] == PAPER["mnist->mnistm"][method]
    assert {"cpu", "torch_threads", "torch_version"} <= set(results["hardware"])
    text = (out / "results.md").read_text()
    assert "MNIST → MNIST-M" in text and "| dann |" in text and "77.4" in text and "83.2" in text
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Asked again, finished runs of the same config are reused, not retrained.
    fail = types.SimpleNamespace(train=lambda **kw: pytest.fail("retrained a finished run"))
    monkeypatch.setattr(common, "pixelda", fail)
    again = benchmark.main(argv)
    assert again["tasks"] == results["tasks"]


def test_minutes_is_a_clean_wall_clock_budget_per_run(tmp_path):
    argv = [
        "--methods",
        "dann",
        "--seeds",
        "1",
        "--minutes",
        "1e-9",
        "--out",
        str(tmp_path / "bench"),
        "--",
        *TRAIN_FLAGS,
        "--steps",
        "50",
    ]
    row = benchmark.main(argv)["tasks"]["mnist->mnistm"]["dann"]
    assert row["steps"] == [1] and row["acc_mean"] is not None


def test_usps_task_only_where_its_files_are(tmp_path):
    assert [t[0] for t in benchmark.tasks(str(tmp_path))] == ["mnist->mnistm"]
    (tmp_path / "usps").mkdir()
    (tmp_path / "usps" / "usps.bz2").write_bytes(b"")
    assert [t[0] for t in benchmark.tasks(str(tmp_path))] == ["mnist->mnistm", "mnist->usps"]
    assert [t[0] for t in benchmark.tasks("")] == ["mnist->mnistm"]


def test_flags_after_double_dash_pass_through_and_cannot_override_the_plan(tmp_path):
    args, extra = benchmark.parse_args(["--minutes", "2", "--", "--preset", "paper", "--seed", "9"])
    overrides = benchmark.run_overrides(
        args, extra, source="mnist", target="usps", method="dann", seed=1, out=tmp_path
    )
    cfg = training.config_from_overrides(overrides)[0]
    assert (cfg.preset, cfg.seed, cfg.method, cfg.target, cfg.max_minutes) == (
        "paper",
        1,
        "dann",
        "usps",
        2.0,
    )
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--steps", "3", "--minutes", "1"])


def test_judge_changes_counts_digits_the_judge_reads_as_another_class(tiny_args, monkeypatch):
    import judge_changes

    cli.train_main(tiny_args)  # the fast preset trains a recoloured judge
    ckpt = str(Path(tiny_args[-1]) / "ckpt.pt")
    r = judge_changes.judge_changes(ckpt, "", 50)
    assert r["images"] == 50 and r["above_0.9"] <= r["changed"] <= 50
    assert r["quantiles"] == sorted(r["quantiles"]) and len(r["quantiles"]) in (0, 5)
    # A generator that hands back its input changes no digit.
    monkeypatch.setattr(judge_changes, "adapt", lambda generator, x, z: x)
    assert judge_changes.judge_changes(ckpt, "", 50)["changed"] == 0
