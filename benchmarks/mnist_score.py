"""Score saved MNIST samples (e.g. torch_mnist.py's) with the project's judge.

    python benchmarks/mnist_score.py SAMPLES.npy [SAMPLES.npy ...] [--data-dir DIR] [--json OUT]

Each file holds float images (N, 1, 28, 28) or (N, 28, 28) in [-1, 1]. The judge is the one
``tinydiff eval`` uses for MNIST, trained once per machine and never on the samples it judges
(``tinydiff.evaluate.get_classifier``): FID on its penultimate features against the 10,000 test
images, beside the floor of N training images against the same test set; mean confidence and the
share of each predicted class; and the background speckle of ``tinydiff.metrics.background_speckle``
(mean background value, fraction of isolated bright pixels) beside the test set's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinydiff.data import mnist  # noqa: E402
from tinydiff.evaluate import classify, digit_metrics, get_classifier, mnist_fid_floor  # noqa: E402
from tinydiff.metrics import background_speckle  # noqa: E402


def load_samples(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        sys.exit(f"mnist_score.py: cannot read {path} as a .npy array ({error})")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28) or x.dtype.kind != "f":
        sys.exit(f"mnist_score.py: {path} should hold float images (N, 1, 28, 28) in [-1, 1], "
                 f"got {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        sys.exit(f"mnist_score.py: {path} holds NaN or inf")
    return x.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", nargs="+", type=Path, help=".npy files of images in [-1, 1]")
    ap.add_argument("--data-dir", default=None, help="MNIST folder (default: as tinydiff finds it)")
    ap.add_argument("--classifier", default=None, help="classifier .npz (default: the cached one)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = ap.parse_args()
    classifier, info = get_classifier(args.classifier, data_dir=args.data_dir, progress=False)
    test_images, _ = mnist.load_mnist("test", data_dir=args.data_dir, progress=False)
    train_images, _ = mnist.load_mnist("train", data_dir=args.data_dir, progress=False)
    test_features, _ = classify(classifier, test_images)
    test_speckle = background_speckle(test_images)
    print(f"classifier: {100 * info['test_accuracy']:.2f}% test accuracy; test set background mean "
          f"{test_speckle['background_mean']:.4f}, isolated bright pixels "
          f"{100 * test_speckle['isolated_bright']:.4f}%")
    results = {"test_speckle": test_speckle, "classifier_test_accuracy": info["test_accuracy"], "files": {}}
    for path in args.samples:
        x = load_samples(path)
        features, probs = classify(classifier, x)
        digits = digit_metrics(probs, features, test_features)
        floor = mnist_fid_floor(classifier, train_images, test_features, len(x))
        speckle = background_speckle(x)
        print(f"{path} ({len(x)} images):")
        print(digits.report())
        print(f"  FID floor ({len(x)} training images)  {floor:.2f}")
        print(f"  background mean  {speckle['background_mean']:.4f}   isolated bright pixels "
              f"{100 * speckle['isolated_bright']:.4f}%")
        results["files"][str(path)] = {"n": len(x), "fid": digits.fid, "fid_floor": floor,
                                       "mean_confidence": digits.mean_confidence,
                                       "histogram": digits.histogram, **speckle}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
