"""python -m pixelda.select: ranking hand-written and real tiny runs by a label-free validator."""

import importlib.util
import json
from pathlib import Path

import pytest

from pixelda import cli, selection


def _write_run(folder, evals):
    folder.mkdir()
    lines = [{"kind": "train", "step": 1, "d_loss": 1.0}]
    lines += [{"kind": "eval", **e} for e in evals]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def _eval(step, im, kid, keeping, **more):
    return {
        "step": step,
        "validator_im": im,
        "validator_kid": kid,
        "validator_label_keeping": keeping,
        **more,
    }


@pytest.fixture
def two_runs(tmp_path):
    a = _write_run(
        tmp_path / "a",
        [
            _eval(100, im=0.5, kid=0.3, keeping=0.95, target_val_acc=0.6),
            _eval(200, im=1.5, kid=0.1, keeping=0.97, target_val_acc=0.8),
        ],
    )
    b = _write_run(
        tmp_path / "b",
        [
            _eval(100, im=1.0, kid=0.2, keeping=0.99),
            _eval(200, im=1.2, kid=0.05, keeping=0.92),
            _eval(300, im=0.2, kid=0.4, keeping=0.8),
        ],
    )
    return str(a), str(b)


def test_select_ranks_checkpoints_by_the_validators_direction(two_runs):
    a, b = two_runs
    by_im = selection.select([a, b], by="im")  # higher is better
    assert [(r["run"], r["step"]) for r in by_im] == [
        (a, 200), (b, 200), (b, 100), (a, 100), (b, 300)
    ]  # fmt: skip
    assert by_im[0]["target_val_acc"] == 0.8 and by_im[1]["target_val_acc"] is None
    by_kid = selection.select([a, b], by="kid")  # lower is better
    assert [(r["run"], r["step"]) for r in by_kid][:2] == [(b, 200), (a, 200)]


def test_select_flags_a_fall_in_label_keeping(two_runs):
    a, b = two_runs
    flags = {(r["run"], r["step"]): r["flag"] for r in selection.select([a, b], by="im")}
    assert not flags[a, 100] and not flags[a, 200] and not flags[b, 100]
    assert "fell to 0.920 from 0.990" in flags[b, 200]  # > 5 points below its best so far
    assert "0.800 < 0.9" in flags[b, 300]


def test_select_command_prints_the_ranking(two_runs, capsys):
    a, b = two_runs
    cli.select_main([a, b, "--by", "im"])
    out = capsys.readouterr().out.splitlines()
    assert "im (higher better)" in out[0] and "target_val_acc" in out[0]
    assert out[1].split()[:3] == ["1", a, "200"]
    assert f"{a}: best checkpoint by im is step 200" in out
    assert any(line.startswith(f"! {b}:") and "steps 200, 300" in line for line in out)


@pytest.mark.parametrize(
    "make, by, message",
    [
        (lambda tmp: str(tmp / "missing"), "im", "no such run folder"),
        (lambda tmp: str(_write_run(tmp / "empty", [])), "im", "no evaluations"),
        (lambda tmp: str(_write_run(tmp / "r", [{"step": 1, "validator_im": 1.0}])), "acc",
         "unknown validator 'acc'"),
        (lambda tmp: str(_write_run(tmp / "r", [{"step": 1, "validator_dev": 1.0}])), "im",
         "logs no validator_im (its validators: dev)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(make, by, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.select_main([make(tmp_path), "--by", by])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_select_two_real_tiny_runs(tmp_path, tiny_args):
    runs = []
    for seed in (0, 1):
        out = str(tmp_path / f"run{seed}")
        cli.train_main([*tiny_args[:-2], "--out", out, "--seed", str(seed), "--threads", "1"])
        runs.append(out)
    rows = cli.select_main([*runs, "--by", "label_keeping"])
    assert len(rows) == 4  # evaluations at steps 2 and 4 of each run
    assert {r["run"] for r in rows} == set(runs)
    assert all(r["target_val_acc"] is not None for r in rows)  # shown, never used to rank
    values = [r["value"] for r in rows]
    assert values == sorted(values, reverse=True)
    for by in ("im", "entropy", "snd", "dev", "kid"):
        assert len(selection.select(runs, by=by)) == 4
    header = (Path(runs[0]) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {f"validator_{k}" for k in ("im", "kid", "label_keeping")} <= set(header)
    assert (Path(runs[0]) / "curves.png").stat().st_size > 0


def _study():
    spec = importlib.util.spec_from_file_location(
        "validator_study", Path(__file__).resolve().parents[1] / "benchmarks/validator_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spearman_hand_values():
    study = _study()
    assert study.ranks([10.0, 30.0, 20.0, 20.0]) == [1.0, 4.0, 2.5, 2.5]
    assert study.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert study.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3) vs (1, 3, 2): 1 - 6 * (0 + 1 + 1) / (3 * 8) = 0.5
    assert study.spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert study.spearman([1, 1, 1], [1, 2, 3]) is None


def test_validator_study_on_hand_written_runs(tmp_path, capsys):
    a = _write_run(
        tmp_path / "a",
        [
            _eval(100, im=0.5, kid=0.3, keeping=0.9, target_test_acc=0.6),
            _eval(200, im=1.5, kid=0.1, keeping=0.9, target_test_acc=0.8),
            _eval(300, im=1.0, kid=0.2, keeping=0.9, target_test_acc=0.7),
        ],
    )
    result = _study().main([str(a)])["?"]  # no config.json: target unknown
    assert result["accuracy"] == "target_test_acc"  # no target_val_acc logged
    assert result["oracle"] == 0.8 and result["last"] == 0.7
    assert result["validators"]["im"]["picked"] == 0.8
    assert result["validators"]["im"]["picked_overall"] == result["oracle_overall"] == 0.8
    assert result["validators"]["im"]["spearman_pooled"] == pytest.approx(1.0)
    assert result["validators"]["kid"]["spearman_pooled"] == pytest.approx(1.0)  # lower better
    assert "im" in capsys.readouterr().out


def test_validator_study_flags_a_pick_below_source_only_per_pair(tmp_path):
    def run(name, method, target, evals):
        folder = _write_run(tmp_path / name, evals)
        (folder / "config.json").write_text(json.dumps({"method": method, "target": target}))
        return str(folder)

    runs = [
        run("src", "source-only", "usps", [_eval(100, 0.5, 0.3, 0.9, target_val_acc=0.70)]),
        run(
            "pix",
            "pixelda",
            "usps",
            [
                _eval(100, im=2.0, kid=0.3, keeping=0.9, target_val_acc=0.60),  # im's pick
                _eval(200, im=1.0, kid=0.1, keeping=0.9, target_val_acc=0.90),  # kid's pick
            ],
        ),
        run("m", "pixelda", "mnistm", [_eval(100, 1.0, 0.1, 0.9, target_val_acc=0.8)]),
    ]
    plot, md = tmp_path / "study.png", tmp_path / "study.md"
    studies = _study().main([*runs, "--plot", str(plot), "--markdown", str(md)])
    assert sorted(studies) == ["mnistm", "usps"]
    usps = studies["usps"]
    assert usps["source_only"] == 0.70
    assert usps["validators"]["im"]["below_source_only"] is True
    assert usps["validators"]["kid"]["below_source_only"] is False
    assert "below_source_only" not in studies["mnistm"]["validators"]["im"]  # no floor there
    assert plot.stat().st_size > 0 and "MNIST → usps" in md.read_text()
