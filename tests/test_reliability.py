"""Reliability: untrusted checkpoints, crashes (SIGKILL, Ctrl-C), NaN losses, failed writes, and
fuzzed command lines and input files. Bad input exits 2 with one line, never a traceback.

Each test prints a `reliability:` line with its figures (pytest -s shows them; docs/reliability.md
quotes them)."""

import dataclasses
import errno
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelda import checkpoint, cli, config, exporting
from pixelda.methods import pixelda as pixelda_method
from pixelda.rundir import RunDir

from .conftest import TINY, write_image_folder

ROOT = Path(__file__).resolve().parents[1]
# One torch thread: the 2 CPU cores are shared, and two threads fighting over them are far slower.
ARGS = [*TINY, "--threads", "1"]
# A run long enough to be killed while it trains: a checkpoint and a log line every step.
CRASH_ARGS = [
    *ARGS,
    "--steps",
    "24",
    "--eval-every",
    "8",
    "--sample-every",
    "8",
    "--checkpoint-every",
    "1",
    "--log-every",
    "1",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> list[str]:
    """--source and --target flags for a tiny folder of images: faster than the embedded data."""
    good = _data_folder(tmp_path_factory.mktemp("data") / "good")
    return ["--source", f"folder:{good}", "--target", f"folder:{good}", "--val-size", "4"]


@pytest.fixture(autouse=True)
def _keep_threads():
    """--threads 1 in an in-process run sets torch's global thread count; put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _exits_2_with_one_line(call, capsys) -> str:
    """Run call(); it must exit 2 with exactly one error line and no traceback -> that line."""
    with pytest.raises(SystemExit) as e:
        call()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line]
    assert e.value.code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _train_records(run: Path) -> list[dict]:
    """metrics.jsonl "train" records without their timings."""
    return [
        {k: v for k, v in r.items() if not k.endswith("_s")}
        for r in RunDir(run).read_metrics()
        if r["kind"] == "train"
    ]


# ---- untrusted checkpoints ---------------------------------------------------------------------


def test_a_malicious_checkpoint_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "pixelda-checkpoint", "payload": Evil()}, run / "ckpt.pt")
    (run / "config.json").write_text("{}")
    ckpt = str(run / "ckpt.pt")
    calls = {
        "resume": lambda: cli.train_main(["--out", str(run), "--resume"]),
        "evaluate": lambda: cli.evaluate_main(["--checkpoint", ckpt]),
        "export": lambda: cli.export_main(["--checkpoint", ckpt, "--out", str(tmp_path / "x")]),
    }
    for name, call in calls.items():
        line = _exits_2_with_one_line(call, capsys)
        assert "refused to load code" in line, (name, line)
        assert not marker.exists(), name
    assert not (tmp_path / "x").exists()
    print(f"\nreliability: malicious checkpoint refused by {len(calls)}/3 entry points, never ran")


# ---- crashes: SIGKILL and Ctrl-C -----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> list[dict]:
    """The train records of an uninterrupted run with CRASH_ARGS."""
    out = tmp_path_factory.mktemp("reference") / "run"
    threads = torch.get_num_threads()
    cli.train_main([*CRASH_ARGS, *data, "--out", str(out)])
    torch.set_num_threads(threads)
    return _train_records(out)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pixelda.train", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _wait_for_lines(proc: subprocess.Popen, metrics: Path, n: int, timeout: float = 60) -> None:
    """Until metrics.jsonl holds n lines: the run is in its training loop."""
    deadline = time.monotonic() + timeout
    while _lines(metrics) < n and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never reached its training loop"
        time.sleep(0.005)


def _check_after_crash(run: Path) -> dict:
    """ckpt.pt, if there is one, loads; metrics.jsonl holds whole JSON lines, or a last line
    cut short. -> what was found."""
    found = {"ckpt_step": None, "cut_line": False, "temp_files": len(list(run.glob(".*.tmp")))}
    if (run / "ckpt.pt").exists():
        found["ckpt_step"] = checkpoint.load(run / "ckpt.pt")["step"]
    text = (run / "metrics.jsonl").read_text() if (run / "metrics.jsonl").exists() else ""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        try:
            json.loads(line) if line else None
        except json.JSONDecodeError:
            assert i == len(lines) - 1, f"a broken line that is not the last: {line!r}"
            found["cut_line"] = True
    steps = [r["step"] for r in RunDir(run).read_metrics()]
    if found["ckpt_step"] is not None:
        assert found["ckpt_step"] <= max(steps)
    return found


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_losses(
    tmp_path, reference, data, capsys
):
    rng = random.Random(9)
    run, kills, restarts, resumes = tmp_path / "run", [], 0, 0
    args = [*CRASH_ARGS, *data, "--out", str(run)]
    for kill in range(3):
        proc = _start(args)
        _wait_for_lines(
            proc, run / "metrics.jsonl", _lines(run / "metrics.jsonl") + rng.randint(1, 6)
        )
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        found = _check_after_crash(run)
        kills.append(found)
        if kill == 1:
            # A crash mid-write could leave the last line cut short (SIGKILL never did here:
            # each line is one write() call); resume must drop it.
            with open(run / "metrics.jsonl", "a") as f:
                f.write('{"kind": "train", "step": 9')
        if found["ckpt_step"] is None:  # killed before its first checkpoint
            line = _exits_2_with_one_line(
                lambda: cli.train_main(["--out", str(run), "--resume"]), capsys
            )
            assert "--overwrite" in line
            args, restarts = [*CRASH_ARGS, *data, "--out", str(run), "--overwrite"], restarts + 1
        else:
            args, resumes = ["--out", str(run), "--resume"], resumes + 1
    summary = cli.train_main([*args, "--no-progress"])
    assert summary["steps"] == 24 and summary["finished"]
    assert _train_records(run) == reference
    assert not list(run.glob(".*.tmp"))
    steps = [k["ckpt_step"] for k in kills]
    print(
        f"\nreliability: {len(kills)} runs killed with SIGKILL (last checkpoint at steps {steps}; "
        f"{sum(k['cut_line'] for k in kills)} cut metrics lines, "
        f"{sum(k['temp_files'] for k in kills)} half-written temporary files), {resumes} resumed "
        f"from their last checkpoint, {restarts} restarted; ckpt.pt always loadable; a "
        f"simulated cut line dropped; final losses equal the uninterrupted run's"
    )


def test_ctrl_c_saves_a_checkpoint_and_resume_gives_the_uninterrupted_losses(
    tmp_path, reference, data
):
    run = tmp_path / "run"
    proc = _start([*CRASH_ARGS, *data, "--out", str(run)])
    _wait_for_lines(proc, run / "metrics.jsonl", random.Random(3).randint(2, 8))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    step = checkpoint.load(run / "ckpt.pt")["step"]
    assert f"interrupted at step {step}; checkpoint saved" in err and "--resume" in err
    assert 0 < step < 24
    summary = cli.train_main(["--out", str(run), "--resume", "--no-progress"])
    assert summary["steps"] == 24 and summary["finished"]
    assert _train_records(run) == reference
    print(
        f"\nreliability: Ctrl-C at step {step}: exit 130, checkpoint saved, resume hint printed; resumed run's losses equal the uninterrupted run's"
    )


# ---- NaN and Inf losses --------------------------------------------------------------------------


def _poison_step(monkeypatch, at: int, value: float, seen: dict):
    """pixelda's train_step, but step `at` wrecks the generator and reports a `value` g_loss."""
    real, calls = pixelda_method.train_step, []

    def step(m, opts, batch, cfg, progress):
        calls.append(1)
        losses = real(m, opts, batch, cfg, progress)
        if len(calls) == at:
            ckpt = Path(cfg.out) / "ckpt.pt"
            seen["ckpt"] = ckpt.read_bytes() if ckpt.exists() else None
            with torch.no_grad():
                for p in m["generator"].parameters():
                    p.fill_(value)
            losses["g_loss"] = torch.tensor(value)
        return losses

    monkeypatch.setattr(pixelda_method, "train_step", step)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_nan_loss_stops_with_one_line_and_keeps_the_last_checkpoint(
    value, tmp_path, data, monkeypatch, capsys
):
    seen, run = {}, tmp_path / "run"
    _poison_step(monkeypatch, 3, value, seen)
    args = [*ARGS, *data, "--checkpoint-every", "1", "--out", str(run)]
    line = _exits_2_with_one_line(lambda: cli.train_main(args), capsys)
    assert f"step 3: g_loss is {value}" in line and "last good checkpoint" in line
    assert (run / "ckpt.pt").read_bytes() == seen["ckpt"]
    assert checkpoint.load(run / "ckpt.pt")["step"] == 2


def test_on_nan_skip_undoes_the_bad_step_and_goes_on(tmp_path, data, monkeypatch):
    seen, run = {}, tmp_path / "run"
    _poison_step(monkeypatch, 3, float("nan"), seen)
    summary = cli.train_main([*ARGS, *data, "--on-nan", "skip", "--out", str(run)])
    assert summary["steps"] == 4 and summary["skipped_steps"] == 1
    records = RunDir(run).read_metrics()
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 4]
    assert next(r for r in records if r["kind"] == "skipped")["g_loss"] == "nan"
    weights = checkpoint.load(run / "ckpt.pt")["models"]["generator"]
    assert all(torch.isfinite(w).all() for w in weights.values())
    print(
        "\nreliability: NaN/Inf loss: --on-nan stop exits 2 naming step and loss, checkpoint untouched; --on-nan skip undoes 1 step and finishes"
    )


# ---- disk full, permission denied ----------------------------------------------------------------

FAILURES = [
    OSError(errno.ENOSPC, "No space left on device"),
    PermissionError(errno.EACCES, "Permission denied"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=["disk-full", "permission"])
def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_old_one(
    failure, tmp_path, data, monkeypatch, capsys
):
    run = tmp_path / "run"
    cli.train_main([*ARGS, *data, "--out", str(run)])
    before = (run / "ckpt.pt").read_bytes()
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "ckpt.pt":
            raise failure
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    resume = ["--out", str(run), "--resume", "--steps", "6"]
    line = _exits_2_with_one_line(lambda: cli.train_main(resume), capsys)
    assert f"cannot write {run / 'ckpt.pt'}: {failure.strerror}" in line
    assert (run / "ckpt.pt").read_bytes() == before
    assert not list(run.glob(".*.tmp"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    cli.train_main([*ARGS, *data, "--out", str(out)])
    return out / "ckpt.pt"


@pytest.mark.parametrize("failure", FAILURES, ids=["disk-full", "permission"])
def test_a_failed_export_is_one_line_and_keeps_the_old_export(
    failure, trained, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "adapted"
    args = ["--checkpoint", str(trained), "--out", str(out), "--limit", "6", "--no-progress"]
    cli.export_main(args)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise failure

    # Disk full while writing images; permission denied when the new export is moved in.
    if isinstance(failure, PermissionError):
        monkeypatch.setattr(os, "rename", fail)
    else:
        monkeypatch.setattr(Image.Image, "save", fail)
    line = _exits_2_with_one_line(lambda: cli.export_main([*args, "--overwrite"]), capsys)
    assert failure.strerror in line and "was left as it was" in line
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapted"]
    print(
        f"\nreliability: {type(failure).__name__} during export: exit 2, one line, old export intact"
    )


# ---- fuzzed command lines and input files --------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (a decompression bomb if opened naively)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _odd_image(path: Path, kind: str) -> None:
    """One awkward input file of `kind` at `path`."""
    rng = np.random.default_rng(len(kind))
    rgb = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        Image.fromarray(rgb).save(path.with_suffix(".tmp.png"))
        data = path.with_suffix(".tmp.png").read_bytes()
        path.with_suffix(".tmp.png").unlink()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("not an image at all")
    elif kind == "bomb":
        _png_header_only(path, 100_000, 100_000)
    elif kind == "cmyk":
        Image.fromarray(rgb).convert("CMYK").save(path, format="JPEG")
    elif kind == "16-bit":
        Image.fromarray(rng.integers(0, 65536, (20, 20), dtype=np.uint16)).save(path)
    elif kind == "palette":
        Image.fromarray(rgb).convert("P").save(path, transparency=0)
    elif kind == "rgba":
        Image.fromarray(rng.integers(0, 256, (20, 20, 4), dtype=np.uint8), "RGBA").save(path)
    elif kind == "float":
        Image.fromarray(rng.random((20, 20), dtype=np.float32)).save(path, format="TIFF")
    elif kind == "1x1":
        Image.new("RGB", (1, 1), (200, 10, 10)).save(path)
    elif kind == "odd name":
        Image.fromarray(rgb).save(path.with_name("a b ü 图 .png"))


ODD_IMAGES = {
    "empty": "empty.png",
    "truncated": "truncated.png",
    "text": "text.png",
    "bomb": "bomb.png",
    "cmyk": "cmyk.jpg",
    "16-bit": "sixteen.png",
    "palette": "palette.png",
    "rgba": "rgba.png",
    "float": "float.tif",
    "1x1": "tiny.png",
    "odd name": "x.png",
}
# Manifests: a good one (which fuzz cases then break), rows relative to the data folder.
CSV_CASES = {
    "no header": "a.png,0\n",
    "only a header": "path,label\n",
    "short row": "path,label\ntrain/class0/0.png\n",
    "long row": "path,label\ntrain/class0/0.png,0,extra\n",
    "empty label": "path,label\ntrain/class0/0.png, \n",
    "missing file": "path,label\nno/such.png,0\n",
    "absolute path": "path,label\n{abs},0\n",
    "not utf-8": b"path,label\n\xff\xfe\xfa.png,0\n",
    "nul byte": "path,label\ntrain/class0/0.png\x00,0\n",
    "unclosed quote": 'path,label\n"train/class0/0.png,0\n',
    "nan target": "path,y1\ntrain/class0/0.png,nan\n",
    "byte-order mark": "\ufeffpath,label\n",
}
FUZZ_DEFAULTS = {
    "--image-size": "16",
    "--batch-size": "4",
    "--g-width": "8",
    "--g-blocks": "1",
    "--d-width": "8",
    "--steps": "2",
    "--eval-every": "2",
    "--sample-every": "2",
    "--checkpoint-every": "2",
    "--threads": "1",
}
# Wrong types, negative, non-finite and empty values, mostly of the flag's own type so that
# many reach validation or training; every valid number is small.
FLAG_VALUES = {
    int: ["-1", "0", "2", "1.5", "abc"],
    float: ["-1", "0", "nan", "inf", "1e3", "-0.5", "0.5"],
    str: ["", "abc", "a b", "ünï", "/no/such/path", "-1"],
}


def _data_folder(root: Path) -> Path:
    """train/ and test/ sub-folders of 2 classes of small RGB images."""
    write_image_folder(root / "train", classes=2, per_class=10, size=20)
    write_image_folder(root / "test", classes=2, per_class=2, size=20, seed=1)
    return root


def _input_cases(tmp: Path, good: Path) -> list[tuple[str, str]]:
    """(description, data spec) for every awkward folder and manifest."""
    cases = []
    for kind, name in ODD_IMAGES.items():
        folder = _data_folder(tmp / f"img-{len(cases)}")
        _odd_image(folder / "train" / "class0" / name, kind)
        cases.append((f"image: {kind}", f"folder:{folder}"))
    for what in ("empty folder", "flat folder", "labeled folder, no splits"):
        folder = tmp / f"dir-{len(cases)}"
        folder.mkdir()
        if what == "flat folder":
            Image.new("RGB", (20, 20)).save(folder / "a.png")
        elif what != "empty folder":
            write_image_folder(folder, classes=2, per_class=3, size=20)
        cases.append((what, f"folder:{folder}"))
    for what, text in CSV_CASES.items():
        path = good / f"manifest-{len(cases)}.csv"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            rows = [f"train/class{c}/{i}.png,{c}\n" for c in range(2) for i in range(10)]
            text = text.format(abs=good / "train" / "class1" / "0.png")
            path.write_text(
                text + ("" if what in ("no header", "only a header") else "".join(rows))
            )
        cases.append((f"csv: {what}", f"csv:{path}"))
    return cases


def _flag_case(rng: random.Random) -> list[str]:
    """1 to 3 random flags: any config field or an unknown one, with a random value (a bool
    flag now and then given a value, a valued flag now and then none)."""
    fields = {f.name: f.default for f in dataclasses.fields(config.TrainConfig)}
    # --compile compiles for minutes on 2 cores (tests/test_speed.py covers it)
    skip = ("out", "resume", "overwrite", "compile")
    names = [n for n in fields if n not in skip] + ["no_such_flag"]
    argv = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        flag = "--" + name.replace("_", "-")
        wants_value = not isinstance(fields.get(name), bool)
        if rng.random() < 0.1:
            wants_value = not wants_value
        pool = FLAG_VALUES.get(type(fields.get(name)), FLAG_VALUES[str])
        if rng.random() < 0.2:
            pool = [v for values in FLAG_VALUES.values() for v in values]
        argv += [flag, rng.choice(pool)] if wants_value else [flag]
    return argv


FLAG_CASES = 16


class Hang(Exception):
    pass


def _run_case(argv: list[str], capsys, main=cli.train_main) -> tuple[int, str]:
    """main(argv) (cli.train_main by default) under a 60 s alarm -> (exit code, error line); any
    escaping exception fails the test."""

    def alarm(signum, frame):
        raise Hang(f"no result after 60 s: {argv}")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out = capsys.readouterr()
    err = out.err
    assert "Traceback" not in err and "Warning" not in err, (argv, err)
    if code != 2:
        assert code == 0, (argv, code, err)
        return code, ""
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], (argv, err)
    return code, errors[0]


def _users_folder(folder: Path, **files: str) -> Path:
    """A folder that is not pixelda's: a .tex file, a sub-folder with a file, and `files`."""
    (folder / "figures").mkdir(parents=True)
    (folder / "paper.tex").write_text("\\documentclass{article}")
    (folder / "figures" / "plot.pdf").write_bytes(b"%PDF-1.4")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _hostile_train_cases(tmp: Path) -> list[tuple[str, list[str]]]:
    """Issue 20's cases, each of which must be refused with one line: sizes no machine here
    holds, negative or malformed values, and --out paths that are not pixelda's to write."""
    mine = _users_folder(tmp / "mine", **{"config.json": '{"editor.fontSize": 14}'})
    (tmp / "a-file").write_text("mine")
    (tmp / "link").symlink_to(mine)
    cases = [
        [flag, "100000000"]
        for flag in ("--latent-dim", "--batch-size", "--g-width", "--d-width", "--g-blocks")
    ]
    cases += [["--method", "cgan", "--embed-dim", "100000000"], ["--threads", "100000"]]
    cases += [["--seed", "-1"], ["--seed", str(2**64)], ["--clip-grad-norm", "-1"]]
    cases += [["--mask-from-background", v] for v in ("1,2", "1,2,3,4", "a,b,c", "0,0,256")]
    cases += [["--mask-tolerance", "300"], ["--channels", "2"]]
    cases += [
        ["--out", str(tmp / "a-file" / "run")],
        ["--out", str(tmp / "a-file")],
        ["--overwrite", "--out", str(tmp / "link")],
        ["--overwrite", "--out", str(mine)],
        ["--overwrite", "--out", str(tmp)],
    ]
    return [(" ".join(c).replace(str(tmp), "…"), c) for c in cases]


def test_fuzzed_flags_and_input_files_work_or_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a fuzzed relative --cache-dir lands here
    rng = random.Random(int(os.environ.get("PIXELDA_FUZZ_SEED", "2017")))
    good = _data_folder(tmp_path / "good")
    base = ["--source", f"folder:{good}", "--target", f"folder:{good}", "--val-size", "4"]
    cases = [
        (what, ["--" + rng.choice(["source", "target"]), spec])
        for what, spec in _input_cases(tmp_path, good)
    ]
    cases += [("flags", _flag_case(rng)) for _ in range(FLAG_CASES)]
    hostile = _hostile_train_cases(tmp_path / "hostile")
    results, table = {0: 0, 2: 0}, []
    for n, (what, argv) in enumerate(cases + hostile):
        # Fuzzed flags keep their values; tiny sizes fill in the rest.
        safe = [x for k, v in FUZZ_DEFAULTS.items() if k not in argv for x in (k, v)]
        out = [] if "--out" in argv else ["--out", str(tmp_path / f"run{n}")]
        code, error = _run_case([*base, *argv, *safe, "--no-progress", *out], capsys)
        results[code] += 1
        if n >= len(cases):
            assert code == 2, (what, "must be refused")
        shown = " ".join(argv) if what == "flags" else what
        table.append(f"  {shown}: " + ("ran" if code == 0 else error.replace(str(tmp_path), "…")))
    mine = tmp_path / "hostile" / "mine"
    assert (mine / "paper.tex").is_file() and (mine / "figures" / "plot.pdf").is_file()
    print("\n" + "\n".join(table))
    print(
        f"\nreliability: {len(cases) + len(hostile)} fuzzed cases ({len(cases) - FLAG_CASES} "
        f"awkward input files or manifests, {FLAG_CASES} random flag sets, {len(hostile)} hostile "
        f"sizes, values and --out paths): {results[0]} ran, {results[2]} refused with a one-line "
        f"error (exit 2), 0 tracebacks, 0 hangs"
    )


EXPORT_FLAG_CASES = 12


def _hostile_export_cases(tmp: Path, ckpt: Path) -> list[list[str]]:
    """Export command lines that must be refused with one line (exit 2)."""
    mine = _users_folder(tmp / "site", **{"manifest.json": '{"name": "my web app"}'})
    (tmp / "a-file").write_text("mine")
    (tmp / "link").symlink_to(mine)
    (tmp / "notes.txt").write_text("not a checkpoint")
    out = ["--out", str(tmp / "new")]
    return [
        ["--checkpoint", str(ckpt), "--out", "/"],
        ["--checkpoint", str(ckpt), "--out", str(tmp / "a-file")],
        ["--checkpoint", str(ckpt), "--out", str(tmp / "a-file" / "x")],
        ["--checkpoint", str(ckpt), "--out", str(tmp / "link"), "--overwrite"],
        ["--checkpoint", str(ckpt), "--out", str(mine), "--overwrite"],
        ["--checkpoint", str(ckpt), "--out", str(tmp), "--overwrite"],
        ["--checkpoint", str(tmp / "notes.txt"), *out],
        ["--checkpoint", str(tmp), *out],
        ["--checkpoint", str(tmp / "missing.pt"), *out],
        ["--checkpoint", str(ckpt), *out, "--variants", "100000000"],
        ["--checkpoint", str(ckpt), *out, "--seed", "-1"],
        ["--checkpoint", str(ckpt), *out, "--source", "folder:/no/such/folder"],
    ]


def _export_flag_case(rng: random.Random, ckpt: Path, out: Path) -> list[str]:
    """A valid export command line with 1 to 3 random flags of ExportConfig added."""
    fields = {f.name: f.default for f in dataclasses.fields(exporting.ExportConfig)}
    names = [n for n in fields if n not in ("checkpoint", "out", "overwrite")] + ["no_such"]
    argv = ["--checkpoint", str(ckpt), "--out", str(out), "--limit", "6", "--no-progress"]
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        flag = "--" + name.replace("_", "-")
        if isinstance(fields.get(name), bool):
            argv += [flag]
        else:
            argv += [flag, rng.choice(FLAG_VALUES.get(type(fields.get(name)), FLAG_VALUES[str]))]
    return argv


def test_fuzzed_export_command_lines_work_or_exit_2_with_one_line(trained, tmp_path, capsys):
    rng = random.Random(int(os.environ.get("PIXELDA_FUZZ_SEED", "2017")))
    hostile = _hostile_export_cases(tmp_path / "hostile", trained)
    cases = [_export_flag_case(rng, trained, tmp_path / f"x{n}") for n in range(EXPORT_FLAG_CASES)]
    results, table = {0: 0, 2: 0}, []
    for n, argv in enumerate(cases + hostile):
        code, error = _run_case([*argv, "--no-progress"], capsys, main=cli.export_main)
        results[code] += 1
        if n >= len(cases):
            assert code == 2, (argv, "must be refused")
        shown = " ".join(argv).replace(str(tmp_path), "…").replace(str(trained), "CKPT")
        table.append(f"  {shown}: " + ("ran" if code == 0 else error.replace(str(tmp_path), "…")))
    site = tmp_path / "hostile" / "site"
    assert (site / "paper.tex").is_file() and (site / "figures" / "plot.pdf").is_file()
    assert not list(tmp_path.rglob("*.partial-*")) and not list(tmp_path.rglob(".*pixelda-lock"))
    print("\n" + "\n".join(table))
    print(
        f"\nreliability: {len(cases) + len(hostile)} fuzzed export command lines "
        f"({EXPORT_FLAG_CASES} random flag sets, {len(hostile)} hostile paths and values): "
        f"{results[0]} ran, {results[2]} refused with a one-line error (exit 2), 0 tracebacks"
    )


def test_awkward_image_modes_convert_to_the_right_pixels(tmp_path):
    """16-bit gray is scaled (not clipped to white); CMYK, palette and RGBA become RGB."""
    from pixelda.data.folder import decode, folder_channels

    gray = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "16.png")
    assert folder_channels(tmp_path / "16.png") == 1
    assert decode(tmp_path / "16.png", 2, 1)[..., 0].tolist() == [[0, 100], [200, 255]]
    rgb = np.full((4, 4, 3), (200, 40, 10), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.tif")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(
        tmp_path / "p.png", transparency=1
    )
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "rgba.png")
    for name in ("cmyk.tif", "p.png", "rgba.png"):
        assert folder_channels(tmp_path / name) == 3
        assert np.abs(decode(tmp_path / name, 4, 3).astype(int) - rgb).max() <= 2, name
