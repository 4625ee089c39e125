"""Our paper preset against the architecture of the PyTorch-GAN PixelDA script, same protocol.

Usage: python benchmarks/reference_throughput.py [--batch-size 64] [--steps 10] [--repeats 3]
The reference (eriklindernoren/PyTorch-GAN, implementations/pixelda/pixelda.py) is rebuilt here
from its description, not copied: a generator with a linear noise layer to three image-sized
channels, a 64-filter 3x3 conv, 6 residual blocks (conv-BN-ReLU-conv-BN) and a 3x3 conv with
tanh; a discriminator (a 2x2 patch of least-squares outputs) and a classifier made of four
stride-2 3x3 conv blocks 64-128-256-512 (LeakyReLU 0.2, InstanceNorm after all but the first).
Each iteration does the script's work: G-step (G, T on adapted and source images, D on adapted;
one Adam over G and T), D-step (D on target and detached adapted images), and T on the target
batch for its running accuracy. Its softmax before the cross-entropy is left out (negligible
time; the loss is meant to take logits), as is its data loading (both sides use random images).
Each side runs in a fresh process, interleaved, --repeats times; benchmarks/throughput.py's
protocol: warm-up, then images/s = batch / median step time, and the process's peak RSS.
The default sides: the reference as the script runs (float32, contiguous tensors), our paper
preset in float32 and in bf16 (both with our default channels_last), and the reference given
the same bf16 autocast and channels_last, for equal terms; --sides picks others.
"""

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (
    header,
    interleaved,
    measure,
    median_rate,
    peak_mib,
    rate_text,
    run_json,
    time_steps,
)

CHANNELS, SIZE, CLASSES, LATENT, BLOCKS = 3, 32, 10, 10, 6


class RefResidualBlock(nn.Module):
    def __init__(self, *, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return x + self.body(x)


class RefGenerator(nn.Module):
    def __init__(self, *, channels: int, size: int, latent_dim: int, blocks: int):
        super().__init__()
        self.noise = nn.Linear(latent_dim, channels * size * size)
        self.stem = nn.Sequential(nn.Conv2d(2 * channels, 64, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[RefResidualBlock() for _ in range(blocks)])
        self.out = nn.Sequential(nn.Conv2d(64, channels, 3, padding=1), nn.Tanh())

    def forward(self, x, z):
        x = torch.cat([x, self.noise(z).view(x.shape)], dim=1)
        return self.out(self.blocks(self.stem(x)))


def ref_tower(channels: int) -> nn.Sequential:
    """Four stride-2 3x3 conv blocks, 64-128-256-512: conv, LeakyReLU(0.2), InstanceNorm."""
    layers, c_in = [], channels
    for i, c_out in enumerate((64, 128, 256, 512)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.InstanceNorm2d(c_out)] if i > 0 else []
        c_in = c_out
    return nn.Sequential(*layers)


class RefDiscriminator(nn.Module):
    def __init__(self, *, channels: int):
        super().__init__()
        self.tower = ref_tower(channels)
        self.patch = nn.Conv2d(512, 1, 3, padding=1)

    def forward(self, x):
        return self.patch(self.tower(x))  # (B, 1, S/16, S/16)


class RefClassifier(nn.Module):
    def __init__(self, *, channels: int, size: int, classes: int):
        super().__init__()
        self.tower = ref_tower(channels)
        self.logits = nn.Linear(512 * (size // 16) ** 2, classes)

    def forward(self, x):
        return self.logits(self.tower(x).flatten(1))


def reference_models() -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            "generator": RefGenerator(
                channels=CHANNELS, size=SIZE, latent_dim=LATENT, blocks=BLOCKS
            ),
            "discriminator": RefDiscriminator(channels=CHANNELS),
            "classifier": RefClassifier(channels=CHANNELS, size=SIZE, classes=CLASSES),
        }
    )


def measure_reference(
    *, batch: int, steps: int, warmup: int, device: str, bf16: bool, channels_last: bool
) -> dict:
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    m = reference_models().to(device, memory_format=layout)
    g, d, t = m["generator"], m["discriminator"], m["classifier"]
    # The script's optimizers: lr 2e-4, betas (0.5, 0.999); G and T share one.
    opt_g = torch.optim.Adam(itertools.chain(g.parameters(), t.parameters()), 2e-4, (0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, (0.5, 0.999))
    x_src = (torch.rand(batch, CHANNELS, SIZE, SIZE, device=device) * 2 - 1).to(
        memory_format=layout
    )
    x_tgt = (torch.rand(batch, CHANNELS, SIZE, SIZE, device=device) * 2 - 1).to(
        memory_format=layout
    )
    y_src = torch.randint(0, CLASSES, (batch,), device=device)
    y_tgt = torch.randint(0, CLASSES, (batch,), device=device)

    def forward():  # bf16 autocast for the forward passes only, as pixelda's --amp bf16
        return torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16)

    def step():
        opt_g.zero_grad()
        with forward():
            z = torch.rand(batch, LATENT, device=device) * 2 - 1
            x_fake = g(x_src, z)
            fake_logits = t(x_fake).float()
            task = F.cross_entropy(fake_logits, y_src) + F.cross_entropy(t(x_src).float(), y_src)
            d_fake = d(x_fake).float()
            g_loss = F.mse_loss(d_fake, torch.ones_like(d_fake)) + 0.1 * task / 2
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        with forward():
            d_real, d_fake = d(x_tgt).float(), d(x_fake.detach()).float()
            real_loss = F.mse_loss(d_real, torch.ones_like(d_real))
            d_loss = (real_loss + F.mse_loss(d_fake, torch.zeros_like(d_fake))) / 2
        d_loss.backward()
        opt_d.step()
        # The script's running accuracies: T on adapted source and on target (autograd on).
        (fake_logits.argmax(1) == y_src).float().mean().item()
        with forward():
            (t(x_tgt).argmax(1) == y_tgt).float().mean().item()

    times = time_steps(step, steps=steps, warmup=warmup, device=device)
    median = statistics.median(times)
    return {
        "batch": batch,
        "images_per_s": batch / median,
        "s_per_step": median,
        "peak_mib": peak_mib(device),
        "params": {name: sum(p.numel() for p in mod.parameters()) for name, mod in m.items()},
    }


# "ours" sides use pixelda's defaults (channels_last on) plus the flags named; the reference runs
# as the script does (float32, contiguous) and, for equal terms, with the same two speed-ups.
SIDES = (
    "reference",
    "ours --amp none",
    "ours --amp bf16",
    "reference --amp bf16 --channels-last",
)
ALL_SIDES = (*SIDES, "ours --amp none --no-channels-last", "reference --channels-last")


def run_side(side: str, args) -> dict:
    argv = [__file__, "--json", side, "--batch-size", str(args.batch_size)]
    argv += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    return run_json(argv)


def one_side(side: str, args) -> dict:
    if side.startswith("reference"):
        return measure_reference(
            batch=args.batch_size,
            steps=args.steps,
            warmup=args.warmup,
            device=args.device,
            bf16="bf16" in side,
            channels_last="--channels-last" in side,
        )
    overrides = {"preset": "paper", "image_size": SIZE, "batch_size": args.batch_size}
    overrides["amp"] = "bf16" if "bf16" in side else "none"
    overrides["channels_last"] = "--no-channels-last" not in side
    return measure(overrides, steps=args.steps, warmup=args.warmup, device=args.device)


def params_text(params: dict) -> str:
    return ", ".join(f"{name[0].upper()} {n / 1e6:.2f}M" for name, n in params.items())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64, help="the script's default")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sides", nargs="+", default=SIDES, choices=ALL_SIDES)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", metavar="SIDE", choices=ALL_SIDES, help="run one side, print JSON")
    args = p.parse_args(argv)
    if args.json:
        print(json.dumps(one_side(args.json, args)))
        return
    args.image_size = SIZE
    print(header(args) + f", batch {args.batch_size}, {args.repeats} interleaved repeats")
    runs = interleaved(args.sides, lambda side: run_side(side, args), args.repeats)
    ref = median_rate(runs[args.sides[0]])
    for side, rs in runs.items():
        print(
            f"{side:36s} {rate_text(rs, ref)} of {args.sides[0]}, "
            f"{statistics.median(r['s_per_step'] for r in rs) * 1000:.0f} ms/step, peak RSS "
            f"{statistics.median(r['peak_mib'] for r in rs):.0f} MiB; params "
            f"{params_text(rs[0]['params'])} (total {sum(rs[0]['params'].values()) / 1e6:.2f}M)"
        )


if __name__ == "__main__":
    main()
