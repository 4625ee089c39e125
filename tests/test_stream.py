"""--stream: folders decoded once into a cache on disk and memory-mapped give the same data,
and the same training run, as folders decoded into memory."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from pixelda import checkpoint, cli, config
from pixelda.batches import Batches
from pixelda.data import DataOptions, load, stream
from pixelda.data import folder as folder_module
from pixelda.errors import UserError

from .conftest import TINY, write_image_folder


def _opts(tmp_path, mode: str, **kw) -> DataOptions:
    return DataOptions(image_size=16, cache_dir=str(tmp_path / "cache"), stream=mode, **kw)


def _entries(tmp_path) -> list[str]:
    return sorted(os.listdir(tmp_path / "cache" / "stream"))


def _same(a, b) -> None:
    assert (len(a), a.name, a.classes) == (len(b), b.name, b.classes)
    for name in ("images", "labels", "masks"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or torch.equal(x, y), name
        assert x is None or x.stride() == y.stride(), name  # the same layout, the same convs


def _csv(root):
    """A CSV manifest of 20 images with regression targets and a mask column."""
    root.mkdir()
    rng = np.random.default_rng(1)
    lines = ["path,y1,y2,mask"]
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / f"{i}.png")
        Image.fromarray(rng.integers(0, 2, (12, 10), dtype=np.uint8) * 255).save(root / f"m{i}.png")
        lines.append(f"{i}.png,{i / 10},{-i},{f'm{i}.png' if i % 3 else ''}")
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    return f"csv:{root / 't.csv'}"


@pytest.mark.parametrize("kind", ["gray folder as RGB", "rgba folder", "csv with masks"])
def test_streamed_splits_equal_splits_in_memory(tmp_path, kind):
    if kind == "csv with masks":
        spec, channels = _csv(tmp_path / "c"), None
    else:
        mode = "L" if kind.startswith("gray") else "RGBA"
        root = write_image_folder(tmp_path / "f", per_class=8, size=20, mode=mode)
        spec, channels = f"folder:{root}", 3
    for split in ("train", "test", "eval"):
        kept = load(spec, split, _opts(tmp_path, "off"), channels=channels)
        streamed = load(spec, split, _opts(tmp_path, "on"), channels=channels)
        assert streamed.streamed and not kept.streamed
        _same(streamed, kept)
    assert kind == "gray folder as RGB" or streamed.masks is not None
    # One entry per split, each holding only its own images.
    assert len(_entries(tmp_path)) == 3


def test_a_changed_file_makes_a_new_entry_and_removes_the_stale_one(tmp_path, monkeypatch, capsys):
    root = write_image_folder(tmp_path / "f", classes=2, per_class=5, size=16)
    first = load(f"folder:{root}", "eval", _opts(tmp_path, "on"))
    (entry,) = _entries(tmp_path)
    calls = []
    read = folder_module.read
    monkeypatch.setattr(folder_module, "read", lambda *a, **k: calls.append(1) or read(*a, **k))
    _same(load(f"folder:{root}", "eval", _opts(tmp_path, "on")), first)
    # Asking for the channels the files have is the same entry (as train, then evaluate do).
    _same(load(f"folder:{root}", "eval", _opts(tmp_path, "on"), channels=3), first)
    assert calls == [] and _entries(tmp_path) == [entry]  # mapped again, nothing decoded

    changed = root / "class1" / "2.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new mtime even where the clock is coarse
    again = load(f"folder:{root}", "eval", _opts(tmp_path, "on"))
    (new,) = _entries(tmp_path)  # the entry of the old files is gone
    assert len(calls) == 10 and new != entry
    assert "removed 1 stale stream cache entry" in capsys.readouterr().err
    # Another split (other files, other settings) of the same folder is not stale.
    load(
        f"folder:{root}",
        "eval",
        DataOptions(image_size=20, cache_dir=str(tmp_path / "cache"), stream="on"),
    )
    assert new in _entries(tmp_path) and len(_entries(tmp_path)) == 2
    assert again.images[7, :, 0, 0].tolist() == [1, 2, 3]
    _same(again, load(f"folder:{root}", "eval", _opts(tmp_path, "off")))


def test_bad_files_skipped_with_the_same_warning_cached_or_not(tmp_path, capsys):
    root = write_image_folder(tmp_path / "f", classes=2, per_class=4, size=16)
    (root / "class0" / "empty.png").write_bytes(b"")
    (root / "class1" / "text.png").write_text("not an image")
    with pytest.raises(UserError, match="empty.png: cannot read image"):
        load(f"folder:{root}", "eval", _opts(tmp_path, "on"))
    assert not (tmp_path / "cache" / "stream").exists() or _entries(tmp_path) == []
    results, warnings = [], []
    for mode in ("off", "on", "on"):  # in memory, decoded into the cache, from the cache
        results.append(load(f"folder:{root}", "eval", _opts(tmp_path, mode, skip_bad_files=True)))
        err = capsys.readouterr().err.splitlines()
        warnings.append([line for line in err if line.startswith("warning:")])
    assert warnings[0] == warnings[1] == warnings[2]
    assert len(warnings[0]) == 1 and "skipped 2 unreadable files in folder:" in warnings[0][0]
    _same(results[1], results[0])
    _same(results[2], results[0])
    meta = json.loads(
        (tmp_path / "cache" / "stream" / _entries(tmp_path)[0] / "meta.json").read_text()
    )
    assert meta["n"] == 8 and len(meta["kept"]) == 8


def test_auto_streams_a_split_over_half_the_available_memory(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "f", classes=2, per_class=5, size=16)
    decoded = 10 * (3 + 1) * 16 * 16  # images and masks, at most
    for available, expected in ((2 * decoded + 2, False), (2 * decoded - 2, True), (None, False)):
        monkeypatch.setattr(stream, "available_memory", lambda a=available: a)
        assert stream.wanted("auto", decoded) is expected
        assert load(f"folder:{root}", "eval", _opts(tmp_path, "auto")).streamed is expected
    monkeypatch.setattr(stream, "available_memory", lambda: 1)
    assert not load(f"folder:{root}", "eval", _opts(tmp_path, "off")).streamed
    assert stream.wanted("on", 0) and not stream.wanted("off", 10**15)


def test_streamed_batches_stay_on_the_cpu_until_drawn(tmp_path):
    root = write_image_folder(tmp_path / "f", classes=2, per_class=5, size=16, mode="RGBA")
    data = load(f"folder:{root}", "eval", _opts(tmp_path, "on"))
    # The meta device stands in for a GPU: whatever is moved there whole shows it.
    batches = Batches(data, data.unlabeled(), batch_size=4, seed=0, device=torch.device("meta"))
    assert batches.source.images is data.images and batches.source.masks is data.masks
    assert batches.source.labels.is_meta
    batch = batches.next()
    assert batch.x_src.is_meta and batch.mask_src.is_meta and batch.x_tgt.is_meta
    assert batch.x_src.shape == (4, 3, 16, 16) and batch.mask_src.shape == (4, 1, 16, 16)
    in_memory = load(f"folder:{root}", "eval", _opts(tmp_path, "off"))
    assert Batches(in_memory, None, batch_size=4, seed=0, device="meta").source.images.is_meta


def test_stream_on_trains_exactly_like_stream_off(tmp_path, capsys):
    source = write_image_folder(tmp_path / "src", classes=2, per_class=10, size=20, mode="RGBA")
    # A grayscale target: the RGBA source is converted to one channel as it is decoded.
    target = write_image_folder(tmp_path / "tgt", classes=1, per_class=12, size=20, mode="L")
    for f in (target / "class0").iterdir():  # a flat folder: unlabeled
        f.rename(target / f.name)
    (target / "class0").rmdir()
    args = [*TINY, "--threads", "1", "--content-weight", "1", "--cache-dir", str(tmp_path / "c")]
    args += ["--source", f"folder:{source}", "--target", f"folder:{target}"]
    runs = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        runs[mode] = cli.train_main([*args, "--stream", mode, "--out", str(out)])["metrics"]
        err = capsys.readouterr().err
        assert ("streaming folder:" in err) is (mode == "on")
    assert runs["on"] == runs["off"]
    on, off = (checkpoint.load(tmp_path / m / "ckpt.pt")["models"] for m in ("on", "off"))
    for name in off:
        for key, value in off[name].items():
            assert torch.equal(on[name][key], value), (name, key)
    # Resuming may change --stream: it does not change what is trained.
    cli.train_main(["--out", str(tmp_path / "on"), "--resume", "--steps", "5", "--stream", "off"])


def test_bad_stream_value_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.train_main(["--stream", "bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--stream" in err and "bogus" in err
    with pytest.raises(UserError, match="--stream: expected one of"):
        DataOptions(stream="bogus").read_options()
    with pytest.raises(UserError, match="--stream: expected one of"):
        config.resolve({"stream": "always"})
