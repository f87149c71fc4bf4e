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
    install_requires=["numpy>=1.24", "scipy>=1.10", "matplotlib>=3.7", "tqdm>=4.60"],
    extras_require={
        "cuda": ["cupy-cuda12x>=13"],
        # ruff and mypy run as tests (tests/test_lint.py), so CI keeps the code to their rules.
        "test": ["pytest>=7", "hypothesis>=6.80", "ruff>=0.5", "mypy>=1.10"],
        # Only for benchmarks/torch_reference.py (the side-by-side speed benchmark); the
        # package itself never imports torch. CPU wheel: pip install torch==2.13.0+cpu
        "bench": ["torch"],
    },
    entry_points={"console_scripts": ["tinydiff=tinydiff.cli:main"]},
)
