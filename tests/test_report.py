"""`rltrain report` (rltrain/report.py): every plot holds the expected series and points, read from the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.report import build_figures, load_run, render, write_report


def _run(folder: Path, steps: int, *, reward0: float, finished: bool, cost: bool = False) -> Path:
    folder.mkdir(parents=True)
    with (folder / "metrics.jsonl").open("w") as f:
        for step in range(1, steps + 1):
            row = {"step": step, "reward/mean": reward0 + 0.1 * step, "reward/std": 0.2, "learner/kl": 0.01 * step,
                   "learner/entropy": 1.0 - 0.05 * step, "learner/clip_frac": 0.0, "rollout/response_len": 20.0 + step,
                   "time/step_s": 10.0, "time/rollout_s": 2.0, "time/reward_s": 0.1, "time/update_s": 7.0,
                   "time/sync_s": 0.5, "time/export_s": 0.3, "time/load_s": 0.2, "weights/version": float(step)}
            if cost:
                row["cost/usd"] = 0.001 * step
            f.write(json.dumps(row) + "\n")
        f.write('{"step": 99, "reward/me')  # a line cut short by a kill is skipped
    if finished:
        (folder / "summary.json").write_text(json.dumps({"steps": steps, "eval_before/mean": 0.5, "eval_after/mean": 0.75}))
    else:  # stopped early: eval before comes from its trajectories (failed episodes are not scored, never 0)
        (folder / "eval_before.jsonl").write_text(
            "\n".join(json.dumps(t) for t in ({"reward": 1.0, "failure": None}, {"reward": 0.0, "failure": None},
                                               {"reward": None, "failure": "user service down"})))
    return folder


def _lines(fig, title: str) -> dict[str, tuple[list[float], list[float]]]:
    ax = next(a for a in fig.axes if a.get_title() == title)
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_figures_hold_each_runs_series(tmp_path: Path) -> None:
    a = load_run(_run(tmp_path / "a", 3, reward0=0.0, finished=True, cost=True))
    b = load_run(_run(tmp_path / "b", 2, reward0=0.5, finished=False))
    figs = build_figures([a, b])
    assert set(figs) == {"reward", "policy", "length", "time", "cost"}

    reward = _lines(figs["reward"], "training reward (mean)")
    assert reward["a"] == ([1, 2, 3], pytest.approx([0.1, 0.2, 0.3]))
    assert reward["b"] == ([1, 2], pytest.approx([0.6, 0.7]))
    evals = _lines(figs["reward"], "held-out evaluation (greedy): before and after")
    assert evals["a"] == ([0, 3], [0.5, 0.75])
    assert evals["b"] == ([0], [0.5])  # (1 + 0) / 2 scored episodes; the failed one is left out
    assert _lines(figs["policy"], "KL to the reference")["a"] == ([1, 2, 3], pytest.approx([0.01, 0.02, 0.03]))
    assert _lines(figs["policy"], "entropy")["b"] == ([1, 2], pytest.approx([0.95, 0.9]))
    assert _lines(figs["policy"], "clip fraction")["a"][1] == [0.0, 0.0, 0.0]
    assert _lines(figs["length"], "policy tokens per trajectory (mean)")["b"] == ([1, 2], [21.0, 22.0])
    titles = [ax.get_title() for ax in figs["time"].axes]
    assert titles == ["step (s)", "rollout (s)", "reward (s)", "learner update (s)", "weight sync (s)",
                      "weight export (s)", "weight load (s)"]
    assert _lines(figs["time"], "weight sync (s)")["a"] == ([1, 2, 3], [0.5, 0.5, 0.5])
    assert _lines(figs["cost"], "cost") == {"a": ([1, 2, 3], pytest.approx([0.001, 0.002, 0.003]))}  # only run a has cost


def test_panels_without_data_are_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward/mean": 0.25}) + "\n")
    figs = build_figures([load_run(folder)])
    assert list(figs) == ["reward"]
    assert [ax.get_title() for ax in figs["reward"].axes] == ["training reward (mean)"]


def test_render_writes_page_and_pngs_into_first_run(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", 2, reward0=0.0, finished=True)
    b = _run(tmp_path / "b", 2, reward0=0.0, finished=False)
    page = render([a, b])
    assert page == a / "report.html"
    text = page.read_text()
    for name in ("reward", "policy", "length", "time"):
        assert f'src="report/{name}.png"' in text
        assert (a / "report" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "finished (2 steps)" in text and "stopped after step 2" in text
    assert not (b / "report.html").exists()


def test_write_report_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert write_report([tmp_path / "missing"]) is None
    assert "rltrain report" in caplog.text  # says how to write it later
    blocked = _run(tmp_path / "blocked", 1, reward0=0.0, finished=True)
    (blocked / "report").write_text("a file where the image folder goes")
    assert write_report([blocked]) is None


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import argparse

    from rltrain import report

    parser = argparse.ArgumentParser()
    report.add_command(parser.add_subparsers())
    run = _run(tmp_path / "a", 1, reward0=0.0, finished=True)
    args = parser.parse_args(["report", str(run)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    args = parser.parse_args(["report", str(tmp_path / "nope")])
    assert args.func(args) == 2
