"""Datasets: toy 2D distributions (generated) and MNIST (read from IDX files, cached, downloaded).

The Trainer's batch sources are in ``tinydiff.data.batches`` (not imported here: they read a
``tinydiff.run.TrainConfig``, and run.py imports this package).
"""
from tinydiff.data.mnist import DATA_ENV_VAR, MNISTError, default_cache_dir, load_mnist, load_mnist_uint8, read_idx
from tinydiff.data.toy2d import TOY2D_DATASETS, GaussianMixture2D, sample_toy2d, toy2d_mixture

__all__ = ["TOY2D_DATASETS", "GaussianMixture2D", "sample_toy2d", "toy2d_mixture",
           "DATA_ENV_VAR", "MNISTError", "default_cache_dir", "load_mnist", "load_mnist_uint8",
           "read_idx"]
