"""Install the two packages of tinydiff: the autograd engine and the diffusion library."""
from setuptools import find_packages, setup

setup(
    name="tinydiff",
    version="0.1.0",
    description="Diffusion models from scratch on a small, readable reverse-mode autograd (NumPy or CuPy).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["autograd", "autograd.*", "tinydiff", "tinydiff.*"]),
    # hypothesis: `tinydiff exercises` grades a learner's functions with property checks at run time
    install_requires=["numpy>=1.24", "scipy>=1.10", "matplotlib>=3.7", "tqdm>=4.60", "hypothesis>=6.80"],
    extras_require={
        # CuPy for the CUDA major version of the machine's driver (nvidia-smi shows it).
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=14"],
        "cuda": ["cupy-cuda12x>=13"],  # the older name of cuda12
        # Data-parallel training (mpiexec -n K tinydiff train ... --distributed): mpi4py and an
        # MPI from the package index (the mpich wheel puts mpiexec into the environment's bin/).
        "mpi": ["mpi4py>=3.1", "mpich"],
        # mpi4py and mpich, so that CI runs the distributed tests; ruff and mypy run as tests
        # (tests/test_lint.py), so CI keeps the code to their rules.
        "test": ["pytest>=7", "hypothesis>=6.80", "mpi4py>=3.1", "mpich", "ruff>=0.5", "mypy>=1.10"],
        # Only for benchmarks/torch_reference.py (the side-by-side speed benchmark); the
        # package itself never imports torch. CPU wheel: pip install torch==2.13.0+cpu
        "bench": ["torch"],
    },
    entry_points={"console_scripts": ["tinydiff=tinydiff.cli:main"]},
)
