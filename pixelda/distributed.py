"""torch.distributed for runs launched by torchrun: the process group, DDP wrappers and the few
collectives the loop, evaluation and export need.

Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op for one process, so
single-process code paths stay exactly as they were.

Usage: torchrun --nproc_per_node=2 -m pixelda.train ...   (gloo on CPU, nccl on CUDA)
"""

import contextlib
import os
import signal
import threading

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import UserError

_started_here = False  # did init() create the process group (and so should shutdown() end it)?


def launched() -> bool:
    """Was this process started by torchrun (or another launcher) as one of several ranks?"""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Only rank 0 writes files and prints results."""
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group when launched by it -> the device this rank works on.

    nccl for CUDA (one GPU per rank: cuda:LOCAL_RANK), gloo for CPU. torchrun's rendezvous
    variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE) say where the other ranks are."""
    global _started_here
    if not launched():
        return device
    if device.type == "mps":
        raise UserError("--device mps: distributed training needs CPU (gloo) or CUDA (nccl)")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s); start at most that many processes per node"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _started_here = True
    return device


def shutdown() -> None:
    global _started_here
    if _started_here and dist.is_initialized():
        dist.destroy_process_group()
    _started_here = False


class Terminated(SystemExit):
    """SIGTERM arrived: torchrun stops the other workers this way when one of them fails."""


@contextlib.contextmanager
def terminate_raises():
    """Inside, SIGTERM raises Terminated (exit 143) instead of killing the process outright, so
    the `finally` and `except` blocks of what is running (a staging folder's removal) run
    first. Under torchrun, when one rank fails the others get SIGTERM. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _collective_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_all(values: torch.Tensor) -> torch.Tensor:
    """values summed over ranks (float64 on the CPU; values itself when there is one rank)."""
    values = values.detach().to(torch.float64)
    if world_size() == 1:
        return values
    out = values.to(_collective_device())
    dist.all_reduce(out)
    return out.cpu()


def agree(losses: dict, *flags: bool, clock: float) -> tuple[dict, list[bool], float]:
    """One all-reduce per step: each loss and the run's wall clock averaged over ranks, and each
    flag true on every rank once it is true on any (a Ctrl-C seen by one rank stops them all at
    the same step). Every rank then sees the same clock, so a time budget ends them together and
    time-based schedules agree. Non-finite losses stay non-finite, so all ranks stop or skip
    together."""
    if world_size() == 1:
        return losses, list(flags), clock
    names = list(losses)
    packed = torch.tensor(
        [float(losses[k]) for k in names] + [clock] + [float(f) for f in flags], dtype=torch.float64
    )
    total = sum_all(packed)
    n = len(names)
    mean = {k: float(v) / world_size() for k, v in zip(names, total[:n])}
    return mean, [bool(v > 0) for v in total[n + 1 :]], float(total[n]) / world_size()


def gather(obj) -> list:
    """obj from every rank, in rank order (a list of one without torchrun)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj):
    """Rank 0's obj on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(models: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP sends them at the
    start of each forward, so after a step each rank holds those of its own last batch; this
    makes every rank evaluate, and rank 0 save, one and the same model."""
    if world_size() == 1:
        return
    for buffer in models.buffers():
        if buffer.is_floating_point() or buffer.dtype == torch.int64:
            dist.broadcast(buffer.data, src=0)


def shard(n: int) -> torch.Tensor:
    """This rank's share of 0..n-1 (every world_size-th index), for evaluation and export."""
    return torch.arange(rank(), n, world_size())


def sync_batchnorm(models: nn.ModuleDict, device: torch.device) -> nn.ModuleDict:
    """BatchNorm layers that average their batch statistics over all ranks (--sync-bn).

    The same parameters and buffers, so optimizers and checkpoints are unaffected."""
    if world_size() == 1:
        return models
    if device.type != "cuda":
        raise UserError("--sync-bn: torch's SyncBatchNorm runs on CUDA only; drop it on CPU")
    return nn.SyncBatchNorm.convert_sync_batchnorm(models)


def wrap(models: nn.ModuleDict, optimizers: dict, device: torch.device) -> nn.ModuleDict:
    """The models a training step calls: under torchrun, every model some optimizer trains is
    wrapped in DistributedDataParallel (its gradients are averaged over ranks in backward);
    models no optimizer trains (the cGAN's weight average) stay as they are.

    The wrappers share parameters and buffers with `models`, which the loop keeps using for
    evaluation, grids and checkpoints (so checkpoint keys carry no "module." prefix)."""
    if world_size() == 1:
        return models
    trained = {id(p) for opt in optimizers.values() for g in opt.param_groups for p in g["params"]}
    ids = None if device.type == "cpu" else [device]
    return nn.ModuleDict(
        {
            name: DistributedDataParallel(m, device_ids=ids)
            if any(id(p) in trained for p in m.parameters())
            else m
            for name, m in models.items()
        }
    )
