"""Run by tests/test_distributed.py under torchrun: tools/export_adapted.py's main on this rank,
with rank FAIL_RANK failing at its first batch, as a rank that runs out of memory would, while
the other rank is still busy with its own (it sleeps), so torchrun stops it with SIGTERM."""

import os
import sys
import time

from pixelda import cli, distributed, exporting


def main() -> None:
    real = exporting.adapt_batches

    def failing(plan):
        if distributed.rank() == int(os.environ["FAIL_RANK"]):
            time.sleep(2)  # the other rank is asleep by now
            raise RuntimeError("injected failure")
        time.sleep(120)  # busy: torchrun's SIGTERM arrives here
        yield from real(plan)

    exporting.adapt_batches = failing
    cli.export_main(sys.argv[1:])


if __name__ == "__main__":
    main()
