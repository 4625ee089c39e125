"""Your own data: foreground masks, non-square images and bad files in folders and CSV manifests."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixelda import cli, config, losses
from pixelda.data import DataOptions, load
from pixelda.errors import UserError

from .conftest import TINY, write_image_folder

OPTS = DataOptions(image_size=8)


def _rgba_folder(root, *, per_class=6, size=8):
    """root/class{0,1}/i.png: RGBA, opaque (alpha 255) on the left half, transparent on the right."""
    alpha = np.zeros((size, size), dtype=np.uint8)
    alpha[:, : size // 2] = 255
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            rgb = np.full((size, size, 3), 40 * i + c, dtype=np.uint8)
            Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(root / f"class{c}" / f"{i}.png")
    return root


def test_rgba_folder_gives_alpha_masks_and_keeps_rgb(tmp_path):
    root = _rgba_folder(tmp_path / "src")
    data = load(f"folder:{root}", "eval", OPTS)
    assert data.images.shape == (12, 3, 8, 8) and data.masks.shape == (12, 1, 8, 8)
    assert data.masks.dtype == torch.uint8
    assert (data.masks[:, :, :, :4] == 1).all() and (data.masks[:, :, :, 4:] == 0).all()
    assert data.images[1, :, 0, 7].tolist() == [40, 40, 40]  # RGB kept under transparent alpha
    train_split = load(f"folder:{root}", "train", OPTS)
    assert len(train_split.masks) == len(train_split)


def test_plain_rgb_folder_has_no_masks(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "a" / "0.png")
    assert load(f"folder:{tmp_path}", "eval", OPTS).masks is None


def _csv_with_masks(root, *, mask_size=(8, 8)):
    root.mkdir()
    lines = ["path,label,mask"]
    for i in range(4):
        Image.new("RGB", (8, 8), (50, 60, 70)).save(root / f"{i}.png")
        mask = np.zeros(mask_size[::-1], dtype=np.uint8)
        mask[: i + 1] = 200  # the first i+1 rows are foreground
        Image.fromarray(mask, "L").save(root / f"{i}_mask.png")
        lines.append(f"{i}.png,{'ab'[i % 2]},{i}_mask.png")
    lines.append("4.png,a,")  # no mask: all foreground
    Image.new("RGB", (8, 8)).save(root / "4.png")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def test_csv_mask_column(tmp_path):
    data = load(f"csv:{_csv_with_masks(tmp_path / 'c')}", "eval", OPTS)
    assert data.labels.tolist() == [0, 1, 0, 1, 0] and data.classes == ["a", "b"]
    rows = data.masks[:, 0, :, 0]
    for i in range(4):
        assert rows[i].tolist() == [1] * (i + 1) + [0] * (7 - i)
    assert (data.masks[4] == 1).all()


def test_csv_mask_of_another_size_is_an_error_naming_both_files(tmp_path):
    csv = _csv_with_masks(tmp_path / "c", mask_size=(8, 6))
    with pytest.raises(UserError, match=r"0_mask\.png: mask is 8x6 but its image .*0\.png is 8x8"):
        load(f"csv:{csv}", "eval", OPTS)


def test_mask_from_background_colour(tmp_path):
    (tmp_path / "a").mkdir()
    pixels = np.zeros((2, 3, 3), dtype=np.uint8)  # renders on black
    pixels[0, 0] = (0, 0, 11)  # one channel beyond the tolerance: foreground
    pixels[0, 1] = (10, 10, 10)  # within it: background
    pixels[1, 2] = (200, 0, 0)
    Image.fromarray(pixels).save(tmp_path / "a" / "0.png")
    opts = DataOptions(image_size=16, resize_mode="crop", mask_from_background="0,0,0")
    data = load(f"folder:{tmp_path}", "eval", DataOptions(image_size=16, **_bg("0,0,0")))
    mask = data.masks[0, 0][[0, 15]][:, [0, 8, 15]]  # nearest: 16x16 back to the 2x3 cells
    assert mask.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert load(f"folder:{tmp_path}", "eval", opts).masks.shape == (1, 1, 16, 16)
    for bad in ("0,0", "0,0,256", "a,b,c"):
        with pytest.raises(UserError, match="--mask-from-background"):
            load(f"folder:{tmp_path}", "eval", DataOptions(**_bg(bad)))


def _bg(colour: str) -> dict:
    return {"mask_from_background": colour, "mask_tolerance": 10}


def _stripes(path):
    """A 12x4 (wide) image: left third red, middle green, right third blue; alpha all opaque."""
    pixels = np.zeros((4, 12, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[:, :4, 0] = pixels[:, 4:8, 1] = pixels[:, 8:, 2] = 255
    Image.fromarray(pixels, "RGBA").save(path)


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_resize_modes_on_a_wide_image(tmp_path, mode):
    (tmp_path / "a").mkdir()
    _stripes(tmp_path / "a" / "0.png")
    Image.new("RGB", (5, 9), (9, 9, 9)).save(tmp_path / "a" / "1.png")  # mixed sizes are fine
    data = load(f"folder:{tmp_path}", "eval", DataOptions(image_size=12, resize_mode=mode))
    assert data.images.shape == (2, 3, 12, 12) and data.masks.shape == (2, 1, 12, 12)
    image, mask = data.images[0], data.masks[0, 0]
    dominant = image.argmax(0)  # 0 red, 1 green, 2 blue
    if mode == "stretch":  # all three stripes, each 4 wide, over the full height
        assert dominant[6, 1] == 0 and dominant[6, 6] == 1 and dominant[6, 10] == 2
        assert (mask == 1).all()
    elif mode == "crop":  # height 4 -> 12, width 36, centre 12 columns: all green
        inner = image[:, :, 1:-1]  # the edge columns blend into the neighbouring stripes
        assert (inner[1] == 255).all() and (inner[0] == 0).all() and (inner[2] == 0).all()
        assert (mask == 1).all()
    else:  # width stays 12, height 4 centred: rows 4..7 are the stripes, the rest black
        assert (image[:, :4] == 0).all() and (image[:, 8:] == 0).all()
        assert dominant[5, 1] == 0 and dominant[5, 6] == 1 and dominant[5, 10] == 2
        assert (mask[4:8] == 1).all() and (mask[:4] == 0).all() and (mask[8:] == 0).all()


def _bad_folder(root):
    (root / "a").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(root / "a" / f"{i}.png")
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "text.jpg").write_text("not an image")
    good = (root / "a" / "0.png").read_bytes()
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    return root


def test_bad_files_are_an_error_by_default_and_skipped_on_request(tmp_path, capsys):
    root = _bad_folder(tmp_path / "f")
    with pytest.raises(UserError, match="empty.png: cannot read image"):
        load(f"folder:{root}", "eval", OPTS)
    data = load(f"folder:{root}", "eval", DataOptions(image_size=8, skip_bad_files=True))
    assert len(data) == 3 and data.labels.tolist() == [0, 0, 0]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"warning: skipped 3 unreadable files in folder:{root} (first: ")
    assert "empty.png: cannot read image" in err[0]


def test_bad_csv_rows_and_files_skipped_and_counted(tmp_path, capsys):
    root = tmp_path / "c"
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(root / f"{i}.png")
    (root / "zero.png").write_bytes(b"")
    lines = ["path,y1", "0.png,0.5", "1.png,abc", "2.png,", "zero.png,1", "2.png,2"]
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"t\.csv:3: regression targets must be numbers"):
        load(f"csv:{root / 't.csv'}", "eval", OPTS)
    data = load(f"csv:{root / 't.csv'}", "eval", DataOptions(image_size=8, skip_bad_files=True))
    assert data.labels[:, 0].tolist() == [0.5, 2.0]
    err = capsys.readouterr().err
    assert "skipped 2 bad rows and 1 unreadable file in csv:" in err and "t.csv:3:" in err


def test_train_flags_reach_data_options():
    cfg = config.resolve(
        {"resize_mode": "pad", "mask_from_background": "0,0,0", "skip_bad_files": True}
    )
    opts = DataOptions.from_config(cfg)
    assert (opts.resize_mode, opts.mask_from_background, opts.skip_bad_files) == (
        "pad",
        "0,0,0",
        True,
    )
    with pytest.raises(UserError, match="--resize-mode"):
        config.resolve({"resize_mode": "squash"})


def test_pixelda_content_loss_sees_the_alpha_mask(tmp_path, monkeypatch):
    root = _rgba_folder(tmp_path / "src", per_class=4, size=16)
    seen = []

    def spy(x_fake, x_src, mask=None):
        seen.append(mask)
        return masked_pmse(x_fake, x_src, mask)

    masked_pmse = losses.masked_pmse
    monkeypatch.setattr(losses, "masked_pmse", spy)
    args = [*TINY, "--out", str(tmp_path / "run"), "--threads", "1", "--content-weight", "1"]
    target = write_image_folder(tmp_path / "tgt", classes=2, per_class=6, size=16)
    cli.train_main(
        [*args, "--source", f"folder:{root}", "--target", f"folder:{target}", "--val-size", "2"]
    )
    assert len(seen) == 4
    for mask in seen:
        assert mask is not None and mask.shape == (4, 1, 16, 16)
        assert (mask[..., :8] == 1).all() and (mask[..., 8:] == 0).all()


def test_csv_splits_share_class_indices_with_mask_column_and_skipping(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    Image.new("RGB", (8, 8), (5, 5, 5)).save(root / "x.png")
    lines = ["path,label,mask"] + [f"x.png?{i},a," for i in range(3)]
    for i in range(30):
        Image.new("RGB", (8, 8), (i, i, i)).save(root / f"{i}.png")
        lines.append(f"{i}.png,{'a' if i else 'z'},")
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    opts = DataOptions(image_size=8, skip_bad_files=True)
    splits = [load(f"csv:{root / 't.csv'}", s, opts) for s in ("train", "test")]
    assert all(s.classes == ["a", "z"] for s in splits)
    assert sum(len(s) for s in splits) == 30 and sum(int(s.labels.sum()) for s in splits) == 1
