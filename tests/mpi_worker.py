"""One rank of a distributed test run, started by tests/test_distributed.py under mpiexec.

    mpiexec -n 2 python tests/mpi_worker.py MODE OUT_DIR

MODE:
  float64  train the toy MLP in float64 through the Python API; every rank saves its own
           parameters to OUT_DIR/rank{r}.npz (a test artefact, not part of the run)
  die      rank 1 kills itself (SIGKILL) in the callback of step 3, as an OOM kill would
  raise    rank 1 raises RuntimeError in the callback of step 3
  perturb  rank 1 nudges one weight by one ulp before training: the start check must stop both
  stop     Ctrl-C reaches rank 1 alone, during step 3: both ranks must stop after the same step
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder, for the config helper
from distributed_cases import Float64Batches, float64_model, toy_config  # noqa: E402

from tinydiff import distributed  # noqa: E402
from tinydiff.train import Trainer  # noqa: E402


def main(mode: str, out: Path) -> None:
    comm = distributed.init_distributed("cpu")
    if mode == "float64":
        config = toy_config(out / "run")
        trainer = Trainer(config, model=float64_model(config), batches=Float64Batches(config), dist=comm)
        trainer.train()
        np.savez(out / f"rank{comm.rank}.npz", **trainer.model.state_dict())
        return

    if mode == "perturb":
        trainer = Trainer(toy_config(out / "run"), dist=comm)
        if comm.rank == 1:
            w = trainer.params[0].data
            w.flat[0] = np.nextafter(w.flat[0], np.inf)
        trainer.train()
        return

    if mode == "stop":
        def ctrl_c(trainer: Trainer, info) -> None:
            if comm.rank == 1 and info.step == 3:
                trainer.request_stop()  # what the SIGINT handler does
        trainer = Trainer(toy_config(out / "run", steps=1000, ckpt_every=1000), callbacks=[ctrl_c], dist=comm)
        try:
            trainer.train()
        except KeyboardInterrupt:
            print(f"rank {comm.rank} stopped after step {trainer.step}", flush=True)
        return

    def crash(trainer: Trainer, info) -> None:
        if comm.rank == 1 and info.step == 3:
            if mode == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("planted failure on rank 1")

    trainer = Trainer(toy_config(out / "run", steps=1000), callbacks=[crash], dist=comm)
    with distributed.abort_on_error(comm):
        trainer.train()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
