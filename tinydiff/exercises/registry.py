"""The chapters and their exercises, and how a command line's selection ("1.3", "2", "all") maps to them."""
from __future__ import annotations

from typing import NamedTuple

from tinydiff.exercises import ch1_gradients, ch2_layers, ch3_forward, ch4_reverse, ch5_samplers
from tinydiff.exercises.grading import Exercise


class Chapter(NamedTuple):
    number: int
    title: str
    filename: str        # the workspace file
    intro: str           # the file's opening markdown cell, and docs/exercises.md
    setup: str           # the file's first code cell
    exercises: list


CHAPTERS = [
    Chapter(1, "Gradients by hand", "chapter1_gradients.py",
            "Write the backward of each op on NumPy arrays: given the inputs (and the output y where\n"
            "the forward kept it) and grad = dL/dy, return dL/d(input). The grader wraps your backward\n"
            "in an autograd node and runs autograd.gradcheck: float64 central differences of the\n"
            "forward, on hypothesis-drawn shapes and values. Every gradient must have its input's shape.",
            "import numpy as np\n", ch1_gradients.EXERCISES),
    Chapter(2, "Layers", "chapter2_layers.py",
            "The layers of tinydiff's UNet and MLP: their backwards (graded by gradcheck, as in\n"
            "chapter 1), conv2d's forward by im2col (graded against scipy.signal.correlate) and the\n"
            "sinusoidal time embedding (graded by its rotation property and measured frequencies).",
            "import numpy as np\n", ch2_layers.EXERCISES),
    Chapter(3, "The forward process", "chapter3_forward.py",
            "DDPM's forward process q (Ho et al. 2020, arXiv 2006.11239) and its posterior. t is the\n"
            "code index 0..T-1 of the paper's step t + 1: alpha_bar[t] = prod_{s<=t} (1 - beta_s), and\n"
            "alpha_bar_{t-1} at t = 0 is 1. Graded against the iterated one-step chain (eq. 2), Bayes'\n"
            "rule in precision form, Monte Carlo draws, and finite differences in the angle phi.",
            "import numpy as np\n", ch3_forward.EXERCISES),
    Chapter(4, "Reverse process and training", "chapter4_reverse.py",
            "DDPM's Algorithms 1 and 2 and DDIM (Song et al. 2020, arXiv 2010.02502). Graded with a model\n"
            "that knows x_0 (its eps is exact), against Bayes' posterior, DDIM eta = 1 against the DDPM\n"
            "step, and, last, the toy moons sampled with your functions and scored by sliced W2.",
            "import numpy as np\n\n"
            "# Your chapter 3 (this folder is on the path when the grader runs this file):\n"
            "from chapter3_forward import alpha_bar, posterior_variance\n", ch4_reverse.EXERCISES),
    Chapter(5, "Samplers", "chapter5_samplers.py",
            "The probability-flow ODE in EDM's coordinates (Karras et al. 2022, arXiv 2206.00364):\n"
            "x_bar = x_t / sqrt(alpha_bar), sigma = sqrt((1 - alpha_bar) / alpha_bar), and\n"
            "d x_bar / d sigma = (x_bar - D(x_bar, sigma)) / sigma. Graded by the measured order of\n"
            "accuracy on Gaussian data, where the ODE's solution is known in closed form.",
            "import numpy as np\n", ch5_samplers.EXERCISES),
]

EXERCISES: dict[str, Exercise] = {ex.id: ex for ch in CHAPTERS for ex in ch.exercises}


def chapter_of(exercise: Exercise) -> Chapter:
    return CHAPTERS[exercise.chapter - 1]


def select(which: str | None) -> list[Exercise]:
    """'all' (or None), a chapter number '2', or an exercise id '2.4'; ValueError names what is valid."""
    if which is None or which == "all":
        return list(EXERCISES.values())
    if which in EXERCISES:
        return [EXERCISES[which]]
    if which.isdigit() and 1 <= int(which) <= len(CHAPTERS):
        return list(CHAPTERS[int(which) - 1].exercises)
    raise ValueError(f"no exercise or chapter {which!r}: give 'all', a chapter 1..{len(CHAPTERS)}, or an "
                     f"exercise id such as 1.3 (see 'tinydiff exercises list')")
