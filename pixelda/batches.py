"""Mini-batches by index from datasets held as tensors on the device; resumable streams."""

from dataclasses import dataclass

import torch

from .data import ImageSet, to_float


class IndexStream:
    """Endless shuffled indices into n items, `batch_size` at a time.

    Each epoch's permutation comes from (seed, epoch), so the position (epoch, offset) is the
    whole state and a resumed run draws the same batches as an uninterrupted one."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1:
            raise ValueError("cannot draw batches from an empty dataset")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.offset = 0, 0
        self._perm_epoch, self._perm = -1, None

    def _permutation(self) -> torch.Tensor:
        if self._perm_epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), self.epoch
        return self._perm

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need > 0:
            take = self._permutation()[self.offset : self.offset + need]
            parts.append(take)
            need -= take.numel()
            self.offset += take.numel()
            if self.offset >= self.n:
                self.epoch, self.offset = self.epoch + 1, 0
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])


@dataclass
class Batch:
    """One training step's data: NCHW float32 in [-1, 1] on the device.

    y_tgt is only ever filled for target-only training; the other methods never see it."""

    x_src: torch.Tensor
    y_src: torch.Tensor | None
    mask_src: torch.Tensor | None
    x_tgt: torch.Tensor | None
    y_tgt: torch.Tensor | None = None


class _OnDevice:
    """A dataset's tensors on the device, except streamed images and masks: those stay
    memory-mapped on the CPU and each batch is moved on its own (see Batches.next)."""

    def __init__(self, data: ImageSet, device: torch.device):
        self.device = device
        home = torch.device("cpu") if data.streamed else device  # .to("cpu") keeps the mapping
        self.images = data.images.to(home)
        self.labels = None if data.labels is None else data.labels.to(device)
        self.masks = None if data.masks is None else data.masks.to(home)
        self.rows = None if data.rows is None else data.rows.to(home)

    def index(self, i: torch.Tensor) -> torch.Tensor:
        """Stream indices -> rows of the tensors, on the images' device."""
        i = i.to(self.images.device)
        return i if self.rows is None else self.rows[i]

    def float_images(self, i: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
        """Images i (indices on the images' device) as float32 in [-1, 1] on the device."""
        return to_float(self.images[i].to(self.device)).contiguous(memory_format=memory_format)


class Batches:
    """Source and target batches drawn independently (unpaired), each from its own stream.

    With several ranks (torchrun), every rank follows the same streams of world_size *
    batch_size indices and keeps its own slice of each, so the ranks see different images and
    together one global batch; the stream position is the same on every rank, which is what a
    checkpoint stores (and a single process can resume it)."""

    def __init__(
        self,
        source: ImageSet,
        target: ImageSet | None,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        memory_format: torch.memory_format = torch.contiguous_format,  # of the images
    ):
        self.memory_format = memory_format
        self.source = _OnDevice(source, device)
        self.target = None if target is None else _OnDevice(target, device)
        self.mine = slice(rank * batch_size, (rank + 1) * batch_size)
        total = batch_size * world_size
        self.streams = {"source": IndexStream(len(source), total, seed)}
        if target is not None:
            self.streams["target"] = IndexStream(len(target), total, seed + 1)

    def _draw(self, name: str) -> torch.Tensor:
        return self.streams[name].next()[self.mine]

    def next(self) -> Batch:
        s = self.source
        i = s.index(self._draw("source"))
        batch = Batch(
            x_src=s.float_images(i, self.memory_format),
            y_src=None if s.labels is None else s.labels[i],
            mask_src=None if s.masks is None else s.masks[i].to(s.device).float(),
            x_tgt=None,
        )
        if self.target is not None:
            j = self.target.index(self._draw("target"))
            batch.x_tgt = self.target.float_images(j, self.memory_format)
            if self.target.labels is not None:
                batch.y_tgt = self.target.labels[j]
        return batch

    def state_dict(self) -> dict:
        return {name: s.state_dict() for name, s in self.streams.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, s in self.streams.items():
            s.load_state_dict(state[name])
