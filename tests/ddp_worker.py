"""Run by tests/test_distributed.py under torchrun: `pixelda.cli.train_main(argv)` on this rank,
then this rank's final weights to DUMP/rank<R>.pt, so the test can compare the ranks."""

import sys
from pathlib import Path

import torch

from pixelda import adversarial, cli, distributed, training


def main() -> None:
    dump, argv = Path(sys.argv[1]), sys.argv[2:]
    real_fit = adversarial.fit

    def fit_and_dump(run, state):
        state = real_fit(run, state)
        path = dump / f"rank{distributed.rank()}.pt"
        torch.save({k: v.clone() for k, v in run.models.state_dict().items()}, path)
        return state

    training.fit = fit_and_dump
    cli.train_main(argv)


if __name__ == "__main__":
    main()
