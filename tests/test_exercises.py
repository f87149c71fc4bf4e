"""The grader of `tinydiff exercises` itself: stubs fail, tinydiff's own solutions pass, the
learner's syntax errors, exceptions, endless loops and crashes are one failed exercise each, and
the command line and notebook API behave."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinydiff.cli import main
from tinydiff.exercises import EXERCISES, check, workspace
from tinydiff.exercises.registry import CHAPTERS, select
from tinydiff.exercises.runner import grade, run_workspace

SOLUTION_BODIES = {i: f"from tinydiff.exercises.solutions import {e.name}\n" for i, e in EXERCISES.items()}


@pytest.fixture
def few_examples(monkeypatch):
    """Five hypothesis examples per property: enough to exercise every check, fast."""
    monkeypatch.setenv("TINYDIFF_EXERCISE_EXAMPLES", "5")


def solution_workspace(path: Path, **replace: str) -> Path:
    workspace.write(path, force=True, bodies={**SOLUTION_BODIES, **replace})
    return path


def test_at_least_thirty_exercises_in_five_chapters():
    assert len(EXERCISES) >= 30
    assert [c.number for c in CHAPTERS] == [1, 2, 3, 4, 5]
    assert all(len(c.exercises) >= 3 for c in CHAPTERS)


def test_stubs_state_the_task_and_never_the_solution():
    for ex in EXERCISES.values():
        assert ex.stub.startswith(f"def {ex.name}(")
        assert ex.stub.rstrip().endswith("raise NotImplementedError")
        assert '"""' in ex.stub and ex.hints and ex.solution
        assert "return" not in ex.stub.split('"""')[-1]  # no code after the docstring


def test_every_stub_fails_every_check_with_not_implemented(tmp_path, few_examples):
    workspace.write(tmp_path)
    for chapter in CHAPTERS:
        namespace, errors, setup_error = workspace.load(tmp_path / chapter.filename)
        assert not errors and setup_error is None
        for ex in chapter.exercises:
            result = grade(ex, namespace[ex.name])
            assert not result.passed and result.kind == "not implemented", (ex.id, result.message)
            assert "not implemented yet" in result.message


def test_tinydiff_solutions_pass_in_a_workspace_through_the_worker(tmp_path, few_examples):
    ws = solution_workspace(tmp_path)
    quick = [ex for ex in EXERCISES.values() if ex.id != "4.6"]  # the moons: its own test below
    results = list(run_workspace(ws, quick))
    failed = {r.id: r.message for r in results if not r.passed}
    assert not failed
    assert [r.id for r in results] == [ex.id for ex in quick]


def test_the_moons_sampled_with_tinydiffs_functions_pass_and_report_the_ratio(tmp_path):
    result = grade(EXERCISES["4.6"], __import__("tinydiff.exercises.solutions", fromlist=["x"]).ddpm_sample)
    assert result.passed, result.message
    ratio = float(result.message.rsplit("ratio ", 1)[1])
    assert 0.5 < ratio < 1.5


@pytest.mark.slow
def test_solutions_pass_every_check_with_the_default_examples(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYDIFF_EXERCISE_EXAMPLES", raising=False)
    results = list(run_workspace(solution_workspace(tmp_path), list(EXERCISES.values())))
    assert all(r.passed for r in results), [(r.id, r.message) for r in results if not r.passed]


def test_start_never_overwrites_without_force(tmp_path, capsys):
    assert main(["exercises", "start", str(tmp_path)]) == 0
    first = tmp_path / CHAPTERS[0].filename
    first.write_text("my work\n")
    assert main(["exercises", "start", str(tmp_path)]) == 0
    assert first.read_text() == "my work\n"
    assert "--force" in capsys.readouterr().out
    assert main(["exercises", "start", str(tmp_path), "--force"]) == 0
    assert "raise NotImplementedError" in first.read_text()


def test_workspace_files_are_percent_format_notebooks(tmp_path):
    workspace.write(tmp_path)
    text = (tmp_path / CHAPTERS[0].filename).read_text()
    assert "format_name: percent" in text and "# %% [markdown]" in text
    assert text.count("# %% Exercise ") == len(CHAPTERS[0].exercises)


def test_a_syntax_error_or_an_exception_fails_only_its_exercise(tmp_path, few_examples):
    ws = solution_workspace(tmp_path, **{
        "1.2": "def div_backward(a, b, grad)\n    return a\n",
        "1.3": "def tanh_backward(x, y, grad):\n    raise ValueError('oops')\n"})
    results = {r.id: r for r in run_workspace(ws, select("1")[:4])}
    assert results["1.1"].passed and results["1.4"].passed
    assert not results["1.2"].passed and "syntax error" in results["1.2"].message
    assert "line" in results["1.2"].message
    assert not results["1.3"].passed and "raised ValueError: oops" in results["1.3"].message


def test_an_endless_loop_or_a_crash_is_one_failed_exercise(tmp_path, few_examples):
    ws = solution_workspace(tmp_path, **{
        "1.2": "def div_backward(a, b, grad):\n    while True:\n        pass\n",
        "1.3": "import os\ndef tanh_backward(x, y, grad):\n    os._exit(3)\n"})
    results = {r.id: r for r in run_workspace(ws, select("1")[:4], time_limit=2)}
    assert results["1.1"].passed and results["1.4"].passed
    assert results["1.2"].kind == "timeout" and "longer than 2 s" in results["1.2"].message
    assert results["1.3"].kind == "error" and "exit code 3" in results["1.3"].message


def test_check_from_python_shows_the_solution_only_after_a_pass(capsys, few_examples):
    assert check("1.3", lambda x, y, grad: grad * (1 - y * y))
    out = capsys.readouterr().out
    assert "PASS" in out and "autograd/ops/unary.py" in out
    assert not check("1.3", lambda x, y, grad: grad * (1 - x * x))
    out = capsys.readouterr().out
    assert "FAIL" in out and "counterexample" in out and "central differences" in out
    assert "reference solution" not in out
    assert not check("1.3", lambda x, y, grad: grad * (1 - x * x), show_solution=True)
    assert "reference solution" in capsys.readouterr().out


def test_check_from_python_stops_an_endless_loop(capsys):
    def forever(x, y, grad):
        while True:
            pass
    assert not check("1.3", forever, time_limit=1)
    assert "longer than 1 s" in capsys.readouterr().out


def test_cli_check_exit_codes_list_and_hints(tmp_path, capsys, few_examples):
    ws = solution_workspace(tmp_path / "sol")
    assert main(["exercises", "check", "1.3", "--dir", str(ws)]) == 0
    assert "1 of 1 passed" in capsys.readouterr().out
    stubs = tmp_path / "stubs"
    main(["exercises", "start", str(stubs)])
    assert main(["exercises", "check", "1.3", "--dir", str(stubs)]) == 1
    assert "not implemented yet" in capsys.readouterr().out
    assert main(["exercises", "list", "--dir", str(stubs)]) == 0
    out = capsys.readouterr().out
    assert "tanh_backward" in out and "not implemented" in out and "not checked" in out
    main(["exercises", "hint", "2.4", "--dir", str(stubs)])
    main(["exercises", "hint", "2.4", "--dir", str(stubs)])
    out = capsys.readouterr().out
    assert "hint 1 of" in out and "hint 2 of" in out
    assert main(["exercises", "check", "9.9", "--dir", str(stubs)]) == 1
    assert "no exercise or chapter '9.9'" in capsys.readouterr().err
    assert main(["exercises", "check", "1.3", "--dir", str(tmp_path / "nowhere")]) == 1
    assert "exercises start" in capsys.readouterr().err


def test_docs_list_every_exercise_with_its_reference():
    text = (Path(__file__).resolve().parent.parent / "docs" / "exercises.md").read_text(encoding="utf-8")
    for chapter in CHAPTERS:
        assert f"### Chapter {chapter.number}: {chapter.title}" in text
    for ex in EXERCISES.values():
        assert f"| {ex.id} | `{ex.name}` |" in text and ex.solution in text, ex.id
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "tinydiff exercises" in readme[:2000]  # on the first screen


def test_a_stub_called_from_another_chapter_is_named(tmp_path, few_examples):
    workspace.write(tmp_path)  # chapter 3 stays stubs; chapter 4's step calls its alpha_bar
    chapter4 = next(c for c in CHAPTERS if c.number == 4)
    (tmp_path / chapter4.filename).write_text(workspace.chapter_text(chapter4, {
        "4.2": "def ddpm_step(eps, xt, t, noise, betas, variance):\n    return xt * alpha_bar(betas)[t]\n"}))
    (result,) = run_workspace(tmp_path, select("4.2"))
    assert result.kind == "not implemented"
    assert "raised by alpha_bar in chapter3_forward.py" in result.message
