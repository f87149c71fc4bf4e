"""Data-parallel training: K processes share every step, over MPI on CPUs and NCCL on GPUs.

    mpiexec -n 2 tinydiff train toy2d --distributed
    mpiexec -n 4 tinydiff train mnist --device cuda --distributed     # one GPU per process

The algorithm
-------------
The loss of a step is a mean over the B examples of the global batch,

    L(theta) = (1/B) sum_{i=1..B} l_i(theta),

and the gradient is linear, so grad L = (1/B) sum_i grad l_i. Cut the batch into K equal
shards S_1..S_K of B/K examples each. Process k computes the mean over its own shard,
L_k = (K/B) sum_{i in S_k} l_i, and its gradient g_k = grad L_k. Then

    (1/K) sum_k g_k = (1/K) sum_k (K/B) sum_{i in S_k} grad l_i = (1/B) sum_i grad l_i = grad L:

the average of the shard gradients *is* the full-batch gradient. An all-reduce (every process
sends its g_k and receives sum_k g_k) followed by a division by K gives each process that
average. Every process then applies the same optimizer step (gradient clipping, Adam, EMA) to
the same gradient, so all K copies of the model stay identical without ever sending weights.
The shards must be equal for the plain average to be right (unequal shards would need weights
|S_k|/B), so the global batch size must be a multiple of K. The result differs from a
one-process run of the same batch only in the order of floating-point additions (a mean over
B/K then over K, instead of over B): equal to float rounding, not bit for bit.

What must be identical on every rank, and where it comes from
--------------------------------------------------------------
- The initial parameters: every rank seeds ``autograd.random`` with the run's seed and builds
  the same model (or loads the same checkpoint). A checksum of the parameters is compared
  across ranks when training starts and after every checkpoint; a mismatch stops the run.
- The global batch of every step: x_0 (which examples), t, eps and the label dropout of
  classifier-free guidance. Every rank owns the same data and noise Generators (spawned from
  the run's seed, see ``tinydiff.train``), draws the *whole* global batch and keeps its slice
  ``shard_slice(B, rank, K)``. Drawing the whole batch costs a little host time per rank, and
  buys the key property: a K-process run sees exactly the batches, timesteps and noise of a
  one-process run, and a checkpoint's RNG state means the same thing for any K, so
  ``--resume`` works with a different number of processes.
- The optimizer, scheduler and EMA state: they follow from identical gradients.

What may differ: dropout. Dropout masks come from ``autograd.random``'s engine generator. If
every rank drew from the same stream, rank 0's example j and rank 1's example j would get the
same mask: the shards would be correlated. So with K > 1 each rank reseeds the engine
generator at every step from (seed, step, rank) (``dropout_seed``). Masks are then independent
across ranks and steps, and a resumed run draws the masks of the uninterrupted one (same K),
without any per-rank state in the checkpoint. A model with dropout therefore trains a different
(equally valid) sequence of masks for each K; without dropout (the toy MLP, the default MNIST
UNet) a K-process run matches the one-process run.

Only rank 0 prints, writes loss.csv, config.json and checkpoints. The loss it logs is the
all-reduced mean over the global batch, so the log is that of the one-process run.

Transports
----------
- CPU: MPI through mpi4py (``MPICommunicator``): ``Allreduce`` on NumPy buffers. Install with
  ``pip install "tinydiff[mpi]"`` (mpi4py and the ``mpich`` wheel, whose ``mpiexec`` lands in
  the environment's ``bin/``).
- GPU: NCCL through CuPy (``NCCLCommunicator``, ``cupy.cuda.nccl``), one GPU per process,
  reducing device buffers without a trip through the host; MPI only hands the NCCL unique id
  from rank 0 to the others.

All buffers cross with MPI's buffer interface (upper-case ``Allreduce``/``Bcast``/
``Allgather``), never with pickled Python objects.

A rank that dies takes the run with it: ``mpiexec`` ends the other processes when one exits
abnormally, and an exception in one rank (other than those every rank raises at the same step:
divergence, a parameter mismatch, Ctrl-C) is printed with its rank and aborts all of them
(``abort_on_error``), rather than leaving the others waiting forever inside an all-reduce.
To stop a distributed run from a callback, call ``trainer.request_stop()`` (the ranks agree on
it in the next all-reduce) rather than raising KeyboardInterrupt on one rank.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from autograd.backend import get_array_module, to_numpy
from tinydiff.run import TrainingDiverged

# Any 32-bit constant: keeps the dropout seeds' SeedSequence apart from the run's other streams.
_DROPOUT_TAG = 0x64726F70  # "drop"


class DistributedError(RuntimeError):
    """Distributed training cannot start or continue (MPI missing, bad batch split, ...)."""


class RanksDisagree(DistributedError):
    """The ranks' parameters are not identical; raised on every rank at the same point."""


# --------------------------------------------------------------------------- communicators

def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"--distributed needs mpi4py and an MPI library ({exc}); install them "
                               f"with: pip install \"tinydiff[mpi]\"") from None
    return MPI


class MPICommunicator:
    """Collectives over MPI (``mpi4py``) on host (NumPy) buffers."""

    backend = "mpi"

    def __init__(self, comm: Any = None) -> None:
        MPI = _import_mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce_sum_(self, buffer: np.ndarray) -> None:
        """Replace ``buffer`` (contiguous, NumPy) by its sum over all ranks, in place."""
        self.comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)

    def allgather(self, values: np.ndarray) -> np.ndarray:
        """Every rank's ``values`` (1-D int64), stacked: shape (size, len(values))."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        out = np.empty((self.size, values.size), dtype=np.int64)
        self.comm.Allgather(values, out)
        return out

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


class NCCLCommunicator:
    """Collectives over NCCL (``cupy.cuda.nccl``) on device (CuPy) buffers, one GPU per rank.

    MPI is used once, to broadcast the NCCL unique id that rank 0 creates.
    """

    backend = "nccl"

    def __init__(self, mpi: MPICommunicator | None = None, nccl: Any = None, cupy: Any = None) -> None:
        if cupy is None:  # optional: only a GPU run gets here
            cupy = importlib.import_module("cupy")
        if nccl is None:
            try:
                nccl = importlib.import_module("cupy.cuda.nccl")
            except ImportError as exc:
                raise DistributedError(f"--distributed --device cuda needs NCCL in CuPy "
                                       f"(cupy.cuda.nccl): {exc}") from None
        self.mpi = mpi if mpi is not None else MPICommunicator()
        self.rank, self.size = self.mpi.rank, self.mpi.size
        self._cupy, self._nccl = cupy, nccl
        uid = nccl.get_unique_id() if self.rank == 0 else None
        self.comm = nccl.NcclCommunicator(self.size, self._broadcast_id(uid), self.rank)

    def _broadcast_id(self, uid: Any) -> Any:
        """Rank 0's NCCL unique id, on every rank: 128 bytes (a tuple of ints before CuPy 14)."""
        buf = np.zeros(128, dtype=np.uint8)
        if uid is not None:
            raw = (np.frombuffer(bytes(uid), dtype=np.uint8) if isinstance(uid, (bytes, bytearray))
                   else (np.asarray(uid, dtype=np.int64) % 256).astype(np.uint8))  # C chars as ints
            buf[:raw.size] = raw
        self.mpi.comm.Bcast(buf, root=0)
        if int(self._cupy.__version__.split(".")[0]) >= 14:
            return buf.tobytes()
        return tuple(int(v) for v in buf.view(np.int8))

    def _dtype(self, dtype: Any) -> int:
        table = {np.dtype(np.float32): self._nccl.NCCL_FLOAT32, np.dtype(np.float64): self._nccl.NCCL_FLOAT64,
                 np.dtype(np.int64): self._nccl.NCCL_INT64}
        try:
            return table[np.dtype(dtype)]
        except KeyError:
            raise DistributedError(f"NCCL all-reduce: no NCCL type for dtype {dtype}") from None

    def allreduce_sum_(self, buffer: Any) -> None:
        """Replace ``buffer`` (contiguous, on this rank's GPU) by its sum over all ranks."""
        stream = self._cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self._dtype(buffer.dtype),
                            self._nccl.NCCL_SUM, stream)

    def allgather(self, values: np.ndarray) -> np.ndarray:
        send = self._cupy.asarray(np.ascontiguousarray(values, dtype=np.int64))
        recv = self._cupy.empty(self.size * send.size, dtype=np.int64)
        stream = self._cupy.cuda.get_current_stream()
        self.comm.allGather(send.data.ptr, recv.data.ptr, send.size, self._nccl.NCCL_INT64, stream.ptr)
        return self._cupy.asnumpy(recv).reshape(self.size, send.size)

    def abort(self, code: int = 1) -> None:
        self.mpi.abort(code)


def init_distributed(device: str = "cpu") -> MPICommunicator | NCCLCommunicator:
    """The communicator of this process for ``device``: MPI on 'cpu', NCCL on 'cuda'.

    On 'cuda' it first selects this rank's GPU (the rank among the processes on this node,
    modulo the GPUs visible), so call it before anything touches CuPy.
    """
    mpi = MPICommunicator()
    if device != "cuda":
        return mpi
    import cupy  # noqa: PLC0415 (optional: only a GPU run gets here)
    MPI = mpi._MPI
    local = mpi.comm.Split_type(MPI.COMM_TYPE_SHARED, key=mpi.rank)
    local_rank = local.Get_rank()
    local.Free()
    cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
    return NCCLCommunicator(mpi)


# --------------------------------------------------------------------------- the step

def shard_slice(batch_size: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s rows of a global batch: the ``rank``-th of ``size`` equal, consecutive shards."""
    check_batch_split(batch_size, size)
    n = batch_size // size
    return slice(rank * n, (rank + 1) * n)


def check_batch_split(batch_size: int, size: int) -> None:
    if batch_size % size != 0:
        raise DistributedError(
            f"--batch-size {batch_size} cannot be split evenly over {size} processes: the global "
            f"batch is cut into equal shards (so that averaging their gradients gives the full "
            f"batch's); use a multiple of {size}, e.g. {max(size, batch_size // size * size)}")


def dropout_seed(seed: int, step: int, rank: int) -> int:
    """The seed of rank ``rank``'s engine generator (dropout) for step ``step`` (counting from 0)."""
    return int(np.random.SeedSequence([_DROPOUT_TAG, int(seed), int(step), int(rank)]).generate_state(1)[0])


def average_gradients(comm: Any, params: Sequence[Any], scalars: Sequence[float]) -> np.ndarray:
    """Replace each parameter's ``.grad`` by its mean over the ranks; returns ``scalars`` summed.

    The gradients are packed into one flat buffer per dtype (one all-reduce instead of one per
    parameter), on their own device: a CuPy gradient never visits the host. ``scalars`` (the
    shard's loss, a stop flag) travel in one small float64 all-reduce. Parameters without a
    gradient are skipped; every rank runs the same model, so the same ones are skipped on each.
    """
    groups: dict[Any, list[Any]] = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault(p.grad.dtype, []).append(p)
    for group in groups.values():
        xp = get_array_module(group[0].grad)
        flat = xp.concatenate([p.grad.reshape(-1) for p in group])
        comm.allreduce_sum_(flat)
        flat /= comm.size
        offset = 0
        for p in group:
            n = p.grad.size
            p.grad = flat[offset:offset + n].reshape(p.grad.shape)
            offset += n
    xp = get_array_module(*(g[0].grad for g in groups.values()))
    values = xp.asarray(np.asarray(scalars, dtype=np.float64))
    comm.allreduce_sum_(values)
    return to_numpy(values)


# --------------------------------------------------------------------------- agreement

def checksum(arrays: dict[str, Any]) -> int:
    """CRC-32 of the arrays' bytes, in name order: equal iff (almost surely) bit-identical."""
    crc = 0
    for name in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(to_numpy(arrays[name])).tobytes(), crc)
    return crc


def check_identical(comm: Any, arrays: dict[str, Any], where: str) -> None:
    """Raise RanksDisagree on every rank unless ``arrays`` are bit-identical on all of them
    (or unless some rank could not start: see ``report_failed_start``)."""
    gathered = comm.allgather(np.array([1, checksum(arrays)], dtype=np.int64))
    failed = [r for r in range(comm.size) if gathered[r, 0] == 0]
    if failed:
        raise RanksDisagree(f"{len(failed)} of the {comm.size} processes could not start (rank "
                            f"{', '.join(map(str, failed))}; its error is printed above); stopping")
    sums = gathered[:, 1]
    if np.any(sums != sums[0]):
        listing = ", ".join(f"rank {r}: {int(s):08x}" for r, s in enumerate(sums))
        raise RanksDisagree(f"the parameters differ across the {comm.size} processes {where} "
                            f"(checksums {listing}); the ranks did not run the same steps. Stopping; "
                            f"the last checkpoint is kept")


def report_failed_start(comm: Any) -> bool:
    """Tell the other ranks, waiting in the first ``check_identical`` of training, that this one
    failed before it; returns True when every rank failed (then rank 0 alone need say why)."""
    gathered = comm.allgather(np.array([0, 0], dtype=np.int64))
    return bool(np.all(gathered[:, 0] == 0))


# --------------------------------------------------------------------------- processes

# Exceptions that every rank raises at the same step, from the same all-reduced numbers: each
# rank can stop on its own. Anything else may be one rank's alone, and must abort the others.
def _agreed_errors() -> tuple[type[BaseException], ...]:
    return (KeyboardInterrupt, TrainingDiverged, RanksDisagree)


@contextlib.contextmanager
def abort_on_error(comm: Any) -> Iterator[None]:
    """Around a distributed run: an exception that only this rank may have raised is printed
    with the rank, then every process is stopped (MPI Abort), so no rank waits forever."""
    try:
        yield
    except _agreed_errors():
        raise
    except BaseException as exc:  # noqa: BLE001 (an exception here must not strand the others)
        if isinstance(exc, SystemExit) and not exc.code:
            raise
        print(f"tinydiff: error: rank {comm.rank} of {comm.size}: {type(exc).__name__}: {exc}; "
              f"stopping every process of the run", file=sys.stderr, flush=True)
        # mpiexec relays a rank's output asynchronously and Abort tears the job down at once, which
        # can lose the message above (benchmarks/results/tinydiff-measurements.md#mpi-abort-a-pause-before-it).
        time.sleep(0.5)
        comm.abort(1)
        raise


@contextlib.contextmanager
def quiet_unless_root(comm: Any) -> Iterator[None]:
    """Send the standard output of ranks other than 0 to /dev/null (errors still show)."""
    if comm.rank == 0:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield
