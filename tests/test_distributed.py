"""Data-parallel training (tinydiff.distributed): K ranks under mpiexec compute the step of one
process on the same global batch, hold identical parameters, and only rank 0 writes.

The multi-process tests start real ``mpiexec -n 2`` runs of a tiny MLP (a second or two each)
with a timeout, so a hang fails instead of blocking the suite. The in-process tests check the
pieces (shards, the gradient average, the checksum) against independent derivations.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from distributed_cases import BATCH, STEPS, Float64Batches, float64_model, toy_config
from test_backend_guard import DeviceArray, fake_cupy  # noqa: F401 (the device stand-in fixture)

from autograd import Tensor
from autograd.nn import Parameter
from tinydiff import distributed
from tinydiff.checkpoint import load_checkpoint
from tinydiff.train import Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT = 90  # seconds for one mpiexec run; the runs here take 1-3 s


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # where the mpich wheel puts it
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[test]' brings it and the mpich wheel)"
    return None if _mpiexec() else "no mpiexec beside the interpreter or on PATH"


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def mpirun(args: list[str], n: int = 2, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python ARGS`` (or an MPMD command line given whole), one thread each."""
    env = {**os.environ, "AUTOGRAD_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [_mpiexec(), "-n", str(n), sys.executable, *args] if n else [_mpiexec(), *args]
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} hung for {TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}")


def cli_args(out: str, steps: int = STEPS, resume: bool = False) -> list[str]:
    """`tinydiff train toy2d` with the options of distributed_cases.toy_config."""
    model = ["--resume"] if resume else ["--hidden-dim", "32", "--num-layers", "2"]
    return ["-m", "tinydiff", "train", "toy2d", "--dataset", "moons", *model, "--steps", str(steps),
            "--batch-size", str(BATCH), "--lr", "1e-2", "--lr-schedule", "constant", "--warmup-steps", "3",
            "--grad-clip", "0.5",
            "--timesteps", "100", "--ckpt-every", "4", "--seed", "3", "--out", out, "--no-progress",
            "--no-preview", "--distributed"]


def one_process(out: Path, steps: int = STEPS, float64: bool = False) -> Trainer:
    config = toy_config(out, steps=steps)
    kwargs = {"model": float64_model(config), "batches": Float64Batches(config)} if float64 else {}
    trainer = Trainer(config, **kwargs)
    trainer.train()
    return trainer


def params_of(path: Path) -> dict[str, np.ndarray]:
    return load_checkpoint(path)["model"]


def losses(path: Path) -> list[float]:
    with open(path, newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def assert_params_close(a: dict, b: dict, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


# ---------------------------------------------------------------- K processes = one process

@pytest.fixture(scope="module")
def two_rank_cli_run(tmp_path_factory):
    """A 2-rank CLI run where each rank has its own working directory (MPMD), so that the
    relative --out of rank 1 shows whatever it wrote."""
    base = tmp_path_factory.mktemp("mpmd")
    (base / "rank0").mkdir()
    (base / "rank1").mkdir()
    args = cli_args("run")
    proc = mpirun(["-prepend-rank", "-n", "1", "-wdir", str(base / "rank0"), sys.executable, *args,
                   ":", "-n", "1", "-wdir", str(base / "rank1"), sys.executable, *args], n=0)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return base, proc


@needs_mpi
def test_two_ranks_end_where_one_process_does_float32(two_rank_cli_run, tmp_path):
    base, _ = two_rank_cli_run
    ref = one_process(tmp_path / "one")
    two = params_of(base / "rank0" / "run" / "checkpoint.npz")
    assert next(iter(two.values())).dtype == np.float32
    # Only the order of additions differs (a mean of two half-batch means): float32 rounding,
    # a few ulps of parameters of size ~0.1-1 after 8 Adam steps.
    assert_params_close(two, ref.model.state_dict(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses(base / "rank0" / "run" / "loss.csv"),
                               [i.loss for i in ref.history], rtol=1e-5)


@needs_mpi
def test_only_rank_0_prints_and_writes(two_rank_cli_run):
    base, proc = two_rank_cli_run
    assert sorted(p.name for p in (base / "rank0" / "run").iterdir()) == \
        ["checkpoint.npz", "config.json", "loss.csv"]
    assert list((base / "rank1").iterdir()) == [], "rank 1 wrote files"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert any(line.startswith("[0]") and "in 2 processes (mpi)" in line for line in lines)
    assert not [line for line in lines if line.startswith("[1]")], proc.stdout


@needs_mpi
def test_float64_ranks_hold_the_same_parameters_as_one_process(tmp_path):
    proc = mpirun([str(HERE / "mpi_worker.py"), "float64", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rank0, rank1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1))
    for name in rank0:  # the same all-reduced gradient, the same update: bit for bit
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    ref = one_process(tmp_path / "one", float64=True).model.state_dict()
    assert rank0[next(iter(rank0))].dtype == np.float64
    # float64: the two orders of addition agree to ~1e-16 relative per step; 1e-12 leaves
    # room for Adam's division by sqrt(v) on small gradients over 8 steps.
    assert_params_close(rank0, ref, rtol=1e-12, atol=1e-13)


@needs_mpi
def test_a_resumed_two_rank_run_equals_the_uninterrupted_one(two_rank_cli_run, tmp_path):
    base, _ = two_rank_cli_run
    first = mpirun(cli_args(str(tmp_path / "run"), steps=STEPS // 2))
    assert first.returncode == 0, first.stdout + first.stderr
    shutil.copytree(tmp_path / "run", tmp_path / "half")
    second = mpirun(cli_args(str(tmp_path / "run"), steps=STEPS, resume=True))
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"at step {STEPS // 2} of {STEPS}" in second.stdout
    whole = base / "rank0" / "run"
    for name, a in params_of(whole / "checkpoint.npz").items():  # same K: bit for bit
        np.testing.assert_array_equal(params_of(tmp_path / "run" / "checkpoint.npz")[name], a)
    assert losses(tmp_path / "run" / "loss.csv") == losses(whole / "loss.csv")
    # --resume with another K: one process continues the 2-rank run, to float32 rounding.
    one = Trainer.resume(tmp_path / "half", steps=STEPS)
    one.train()
    assert_params_close(one.model.state_dict(), params_of(whole / "checkpoint.npz"), rtol=1e-5, atol=1e-6)


@needs_mpi
@pytest.mark.parametrize("mode, message", [
    ("raise", "rank 1 of 2: RuntimeError: planted failure on rank 1; stopping every process"),
    ("die", "BAD TERMINATION"),  # mpiexec's own report of a rank killed by a signal
])
def test_a_rank_that_fails_stops_the_others(mode, message, tmp_path):
    proc = mpirun([str(HERE / "mpi_worker.py"), mode, str(tmp_path)])  # fails the test on a hang
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@needs_mpi
def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    """Rank 1 alone is asked to stop during step 3; the request travels in step 4's all-reduce,
    so both ranks stop after step 4, and the checkpoint (a collective) is that of step 4."""
    proc = mpirun([str(HERE / "mpi_worker.py"), "stop", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rank 0 stopped after step 4" in proc.stdout and "rank 1 stopped after step 4" in proc.stdout
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["step"] == 4


@needs_mpi
def test_ranks_whose_parameters_differ_stop_at_the_start(tmp_path):
    proc = mpirun([str(HERE / "mpi_worker.py"), "perturb", str(tmp_path)])
    assert proc.returncode != 0
    assert proc.stderr.count("RanksDisagree: the parameters differ across the 2 processes at the start "
                             "(step 0)") == 2, proc.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@needs_mpi
def test_a_batch_that_does_not_split_evenly_is_refused_by_every_rank(tmp_path):
    args = cli_args(str(tmp_path / "run"))
    args[args.index("--batch-size") + 1] = "33"
    proc = mpirun(args)
    assert proc.returncode == 1
    assert proc.stderr.count("tinydiff: error: --batch-size 33 cannot be split evenly over 2") == 1, proc.stderr
    assert not (tmp_path / "run").exists()


@needs_mpi
def test_mpiexec_without_distributed_is_refused(tmp_path):
    args = [a for a in cli_args(str(tmp_path / "run")) if a != "--distributed"]
    proc = mpirun(args)
    assert proc.returncode == 1
    assert "this is one of 2 processes started by mpiexec, but without --distributed" in proc.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- the pieces, in one process

class ThreadRanks:
    """K in-process 'ranks' (threads) whose collectives meet at a barrier: the MPI semantics of
    allreduce (every rank gets the sum) and allgather, without MPI."""

    def __init__(self, size: int) -> None:
        self.size, self._barrier, self._slots = size, threading.Barrier(size), [None] * size

    def rank(self, r: int) -> "_Rank":
        return _Rank(self, r)


class _Rank:
    backend = "threads"

    def __init__(self, group: ThreadRanks, rank: int) -> None:
        self.group, self.rank, self.size = group, rank, group.size

    def _exchange(self, value):
        self.group._slots[self.rank] = value.copy()
        self.group._barrier.wait()
        gathered = list(self.group._slots)
        self.group._barrier.wait()
        return gathered

    def allreduce_sum_(self, buffer) -> None:
        parts = self._exchange(buffer)
        total = parts[0].copy()
        for part in parts[1:]:  # rank order, as MPI's reduction would add them
            total += part
        buffer[...] = total

    def allgather(self, values):
        return np.stack(self._exchange(np.asarray(values, dtype=np.int64)))


def test_shards_tile_the_batch_and_an_uneven_split_is_refused():
    for size in (1, 2, 3, 4):
        rows = np.concatenate([np.arange(12)[distributed.shard_slice(12, r, size)] for r in range(size)])
        np.testing.assert_array_equal(rows, np.arange(12))
    with pytest.raises(distributed.DistributedError, match="--batch-size 10 cannot be split evenly over 4 "
                                                           "processes.*multiple of 4, e.g. 8"):
        distributed.shard_slice(10, 0, 4)


def test_averaged_shard_gradients_are_the_full_batch_gradient():
    """Least squares, L(W) = mean((X W - Y)^2) over all B x m entries, whose full-batch
    gradient has the closed form 2 X^T (X W - Y) / (B m): 3 ranks' average must equal it."""
    rng = np.random.default_rng(0)
    X, Y, W0 = rng.normal(size=(12, 4)), rng.normal(size=(12, 3)), rng.normal(size=(4, 3))
    full = 2.0 * X.T @ (X @ W0 - Y) / Y.size  # d/dW of mean((X W - Y)^2)
    group, results = ThreadRanks(3), {}

    def rank(r: int) -> None:
        comm = group.rank(r)
        rows = distributed.shard_slice(12, r, 3)
        w = Parameter(Tensor(W0.copy()))
        loss = ((Tensor(X[rows]) @ w - Tensor(Y[rows])) ** 2).mean()
        loss.backward()
        total = distributed.average_gradients(comm, [w], [loss.item(), float(r == 1)])
        results[r] = (w.grad, total)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    full_loss = np.mean((X @ W0 - Y) ** 2)
    for r in range(3):
        grad, total = results[r]
        np.testing.assert_allclose(grad, full, rtol=1e-12)
        np.testing.assert_allclose(total, [3 * full_loss, 1.0], rtol=1e-12)


def test_the_checksum_check_names_the_ranks_that_differ():
    same = {"w": np.arange(6.0), "b": np.ones(2)}
    other = {"w": np.arange(6.0), "b": np.array([1.0, np.nextafter(1.0, 2.0)])}  # one ulp apart
    assert distributed.checksum(same) != distributed.checksum(other)
    group, errors = ThreadRanks(2), {}

    def rank(r: int, arrays) -> None:
        try:
            distributed.check_identical(group.rank(r), arrays, "after step 4")
        except distributed.RanksDisagree as exc:
            errors[r] = str(exc)

    threads = [threading.Thread(target=rank, args=(0, same)), threading.Thread(target=rank, args=(1, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors.keys() == {0, 1} and errors[0] == errors[1]  # every rank stops, with one message
    assert "differ across the 2 processes after step 4" in errors[0]
    assert f"rank 1: {distributed.checksum(other):08x}" in errors[0]


def test_dropout_seeds_differ_per_rank_and_step_and_repeat():
    seeds = {(s, r): distributed.dropout_seed(7, s, r) for s in range(3) for r in range(4)}
    assert len(set(seeds.values())) == len(seeds)
    assert distributed.dropout_seed(7, 2, 3) == seeds[(2, 3)]


# ---------------------------------------------------------------- the CuPy/NCCL paths, without a GPU

class _MirrorRanks:
    """Rank 0 of 2 whose partner holds the very same buffers: the all-reduce doubles them."""
    rank, size, backend = 0, 2, "mirror"

    def allreduce_sum_(self, buffer) -> None:
        buffer += buffer


def test_gradient_averaging_stays_on_the_device(fake_cupy):
    """Under test_backend_guard's device stand-in: the packed gradients are device arrays end to
    end; the one transfer is the step's scalars (loss, stop flag) coming to the host."""
    w0 = np.random.default_rng(1).normal(size=(3, 2))
    w = Parameter(Tensor(w0.copy().view(DeviceArray)))
    b = Parameter(Tensor(np.ones(2).view(DeviceArray)))
    loss = ((w * w).sum() + (b * 3.0).sum())
    loss.backward()
    total = distributed.average_gradients(_MirrorRanks(), [w, b], [1.5, 0.0])
    assert type(w.grad) is DeviceArray and type(b.grad) is DeviceArray
    np.testing.assert_allclose(w.grad.view(np.ndarray), 2 * w0, rtol=1e-15)  # d(w^2)/dw, mean of 2 equal
    np.testing.assert_allclose(b.grad.view(np.ndarray), [3.0, 3.0], rtol=1e-15)
    np.testing.assert_array_equal(total, [3.0, 0.0])
    assert fake_cupy.transfers == 1
    host = {"w": w0, "b": np.ones(2)}
    assert distributed.checksum({"w": Tensor(w0.view(DeviceArray)).data, "b": np.ones(2).view(DeviceArray)}) \
        == distributed.checksum(host)


class _FakeNccl:
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT64, NCCL_SUM = 7, 8, 4, 0

    def __init__(self, uid):
        self.uid, self.calls = uid, []
        nccl = self

        class NcclCommunicator:
            def __init__(self, size, uid, rank):
                nccl.calls.append(("init", size, uid, rank))

            def allReduce(self, *args):
                nccl.calls.append(("allReduce", *args))
        self.NcclCommunicator = NcclCommunicator

    def get_unique_id(self):
        return self.uid


class _FakeMPI:
    rank, size = 0, 2

    def __init__(self):
        self.comm = self
        self.sent = None

    def Bcast(self, buf, root):
        self.sent = buf.copy()


@pytest.mark.parametrize("version, uid", [("14.2.0", bytes(range(128))),
                                          ("13.6.0", tuple(range(-64, 64)))])
def test_the_nccl_communicator_hands_on_the_id_and_reduces_device_pointers(version, uid):
    """CuPy 14 gives the NCCL id as 128 bytes, older CuPy as a tuple of 128 small ints: either way
    it crosses MPI as 128 raw bytes and is rebuilt in the form NcclCommunicator takes."""
    nccl = _FakeNccl(uid)
    stream = SimpleNamespace(ptr=99)
    cupy = SimpleNamespace(__version__=version, cuda=SimpleNamespace(get_current_stream=lambda: stream))
    comm = distributed.NCCLCommunicator(_FakeMPI(), nccl=nccl, cupy=cupy)
    assert nccl.calls[0] == ("init", 2, uid, 0)
    buffer = SimpleNamespace(data=SimpleNamespace(ptr=1234), size=10, dtype=np.dtype(np.float32))
    comm.allreduce_sum_(buffer)
    assert nccl.calls[1] == ("allReduce", 1234, 1234, 10, _FakeNccl.NCCL_FLOAT32, _FakeNccl.NCCL_SUM, 99)
    with pytest.raises(distributed.DistributedError, match="no NCCL type for dtype float16"):
        comm.allreduce_sum_(SimpleNamespace(data=buffer.data, size=1, dtype=np.dtype(np.float16)))
