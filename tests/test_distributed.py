"""Distributed training and export: batch shards, and real 2-process gloo runs under torchrun
on the CPU (a few steps of tiny models; CI has 2 cores)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pixelda import checkpoint, cli
from pixelda.batches import Batches
from pixelda.cli import evaluate_main, export_main
from pixelda.data import ImageSet
from pixelda.metrics import score

from .conftest import TINY

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(
    *args: str, nproc: int = 2, ok: bool = True, **extra_env
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **extra_env,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc-per-node={nproc}", *args]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def images(n: int) -> ImageSet:
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageSet(
        images=x, labels=torch.arange(n) % 3, masks=None, classes=["a", "b", "c"], name="toy"
    )


def drawn(batches: Batches) -> tuple[list[int], list[int]]:
    b = batches.next()
    return b.x_src[:, 0, 0, 0].tolist(), b.x_tgt[:, 0, 0, 0].tolist()


def test_ranks_draw_disjoint_slices_of_one_global_batch():
    src, tgt = images(10), images(7)
    one = Batches(src, tgt, batch_size=6, seed=3, device=torch.device("cpu"))
    ranks = [
        Batches(src, tgt, batch_size=3, seed=3, device="cpu", rank=r, world_size=2)
        for r in range(2)
    ]
    for _ in range(4):  # across epoch boundaries
        whole_src, whole_tgt = drawn(one)
        (src0, tgt0), (src1, tgt1) = drawn(ranks[0]), drawn(ranks[1])
        assert src0 + src1 == whole_src and tgt0 + tgt1 == whole_tgt
        assert src0 != src1
    # The stream position is the same on every rank, and a single process can go on from it.
    assert ranks[0].state_dict() == ranks[1].state_dict() == one.state_dict()


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """A 2-rank gloo PixelDA run of 4 steps; -> (run dir, dump dir with each rank's weights)."""
    root = tmp_path_factory.mktemp("ddp")
    out, dump = root / "run", root / "dump"
    dump.mkdir()
    torchrun(str(WORKER), str(dump), *TINY, "--out", str(out))
    return out, dump


def test_two_ranks_train_in_step_and_rank_zero_writes_once(two_rank_run):
    out, dump = two_rank_run
    rank0, rank1 = weights(dump / "rank0.pt"), weights(dump / "rank1.pt")
    assert same(rank0, rank1), "the ranks' parameters differ after training"
    ckpt = checkpoint.load(out / "ckpt.pt")
    saved = {f"{m}.{k}": v for m, state in ckpt["models"].items() for k, v in state.items()}
    assert same(saved, rank0)
    assert len(ckpt["rng_ranks"]) == 2
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["best.pt", "ckpt.pt"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["finished"]
    alone = evaluate_main(["--checkpoint", str(out / "ckpt.pt")])
    assert alone["n"] == 1000 and alone["acc"] == pytest.approx(summary["target_test_acc"])


def _scored_by_rank(rank: int, store: str, results) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=2
    )
    model, data, targets = _scoring_problem()
    results[rank] = [score(model, data), score(model, replace(data, labels=targets))]
    torch.distributed.destroy_process_group()


def _scoring_problem():
    """A fixed random classifier and 101 images whose labels it gets right about half the time;
    also regression targets for the same images."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    torch.nn.init.normal_(model[1].weight, generator=g)
    torch.nn.init.normal_(model[1].bias, generator=g)
    x = torch.randint(0, 256, (101, 3, 2, 2), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        right = model(x.float() / 127.5 - 1).argmax(1)
    labels = torch.where(torch.rand(101, generator=g) < 0.5, right, (right + 1) % 3)
    targets = torch.randn(101, 3, generator=g)
    return model, ImageSet(images=x, labels=labels, name="toy"), targets


def test_evaluation_split_over_two_ranks_scores_the_whole_split(tmp_path):
    model, data, targets = _scoring_problem()
    alone = [score(model, data), score(model, replace(data, labels=targets))]
    assert 0.3 < alone[0]["acc"] < 0.7 and alone[1]["rmse"] > 0
    results = torch.multiprocessing.Manager().dict()
    torch.multiprocessing.spawn(
        _scored_by_rank, args=(str(tmp_path / "store"), results), nprocs=2, join=True
    )
    for rank in range(2):
        assert results[rank][0] == pytest.approx(alone[0])
        assert results[rank][1]["rmse"] == pytest.approx(alone[1]["rmse"])
        assert results[rank][1]["rmse_per_output"] == pytest.approx(alone[1]["rmse_per_output"])


def test_a_two_rank_checkpoint_resumes_in_one_process(two_rank_run, tmp_path):
    out, _ = two_rank_run
    copy = tmp_path / "run"
    copy.mkdir()
    for p in out.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    summary = cli.train_main(["--out", str(copy), "--resume", "--steps", "6", "--no-progress"])
    assert summary["steps"] == 6 and summary["finished"] and summary["processes"] == 1


def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    """Source-only (no batch norm, no dropout): 2 ranks x 4 images = 1 process x 8 images."""
    common = [*TINY, "--method", "source-only", "--steps", "3", "--amp", "none"]
    dump = tmp_path / "dump"
    dump.mkdir()
    torchrun(str(WORKER), str(dump), *common, "--out", str(tmp_path / "ddp"))
    cli.train_main([*common, "--batch-size", "8", "--out", str(tmp_path / "one")])
    one = checkpoint.load(tmp_path / "one" / "ckpt.pt")["models"]["classifier"]
    ddp = checkpoint.load(tmp_path / "ddp" / "ckpt.pt")["models"]["classifier"]
    # Float rounding differs (one sum of 8 vs two of 4, then averaged), and Adam divides small
    # gradients by their small running scale: within 1% of one step's size (lr 1e-3).
    assert all(torch.allclose(one[k], ddp[k], rtol=0, atol=1e-5) for k in one)


@pytest.mark.parametrize("fmt", ["imagefolder", "npz"])
def test_a_two_rank_export_equals_a_one_process_export(two_rank_run, tmp_path, fmt):
    out, _ = two_rank_run
    args = ["--checkpoint", str(out / "ckpt.pt"), "--format", fmt, "--limit", "40"]
    args += ["--batch-size", "8", "--variants", "2", "--no-progress"]
    export_main([*args, "--out", str(tmp_path / "one")])
    torchrun(str(REPO / "tools" / "export_adapted.py"), *args, "--out", str(tmp_path / "two"))
    files = {p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")}
    assert files == {p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")}
    for name in sorted(files):
        a, b = tmp_path / "one" / name, tmp_path / "two" / name
        if name.name == "manifest.json":  # equal but for the time it was written
            ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
            assert ma.pop("created") and mb.pop("created") and ma == mb
        elif a.is_file():
            assert a.read_bytes() == b.read_bytes(), name


@pytest.mark.parametrize("fail_rank", [0, 1])
def test_a_failed_rank_of_an_export_leaves_no_partial_folder(two_rank_run, tmp_path, fail_rank):
    out, _ = two_rank_run
    dest = tmp_path / "exports" / "adapted"
    dest.parent.mkdir()
    args = ["--checkpoint", str(out / "ckpt.pt"), "--out", str(dest), "--limit", "40"]
    args += ["--batch-size", "8", "--no-progress"]
    worker = Path(__file__).with_name("export_worker.py")
    torchrun(str(worker), *args, ok=False, FAIL_RANK=str(fail_rank))
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no .partial-* staging folder, no lock left
