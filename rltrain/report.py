"""`rltrain report RUN [RUN ...]`: an HTML page of PNG plots from runs' `metrics.jsonl`, several runs overlaid.

Each figure is one topic (reward and held-out evaluation; KL, entropy and clip fraction; response length; phase
times and the weight sync; cost) with one panel per metric and one line per run, so runs compare panel by panel.
A panel appears when some run logged its metric; a figure when some panel does. The page goes to the first run's
folder: `<run>/report.html`, its images to `<run>/report/`.

The driver calls `write_report` at the end of every run, failed and interrupted ones included. It never raises: a
report is a view of the run, and a broken view must not turn a finished run into a failed one.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger("rltrain.report")


@dataclass(frozen=True)
class Panel:
    key: str
    """A key of metrics.jsonl; `cost/*` stands for every key under cost/."""
    title: str


@dataclass(frozen=True)
class Topic:
    name: str
    """The PNG's file name (without .png)."""
    title: str
    panels: tuple[Panel, ...]


EVAL = "eval/mean"
"""The held-out evaluation panel: mean reward before training (step 0) and after it (last step), from summary.json
or, for a run that stopped early, from eval_before.jsonl/eval_after.jsonl."""

TOPICS = (
    Topic("reward", "Reward", (Panel("reward/mean", "training reward (mean)"), Panel("reward/std", "training reward (std)"),
                               Panel(EVAL, "held-out evaluation (greedy): before and after"))),
    Topic("policy", "KL, entropy and clip fraction", (Panel("learner/kl", "KL to the reference"),
                                                      Panel("learner/entropy", "entropy"),
                                                      Panel("learner/clip_frac", "clip fraction"))),
    Topic("length", "Response length", (Panel("rollout/response_len", "policy tokens per trajectory (mean)"),)),
    Topic("time", "Time per phase and weight sync", (
        Panel("time/step_s", "step (s)"), Panel("time/rollout_s", "rollout (s)"), Panel("time/reward_s", "reward (s)"),
        Panel("time/update_s", "learner update (s)"), Panel("time/sync_s", "weight sync (s)"),
        Panel("time/export_s", "weight export (s)"), Panel("time/load_s", "weight load (s)"))),
    Topic("cost", "Cost", (Panel("cost/*", "cost"),)),
)


@dataclass
class Run:
    """What a run folder holds for the report."""

    path: Path
    steps: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    """metric -> (steps, values)."""
    summary: dict = field(default_factory=dict)
    eval: dict[int, float] = field(default_factory=dict)
    """step -> held-out mean reward (0: before training)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def last_step(self) -> int:
        return max((s[-1] for s, _ in self.steps.values() if s), default=0)


def load_run(path: Path) -> Run:
    """Read `metrics.jsonl`, `summary.json` and the eval files; a line a killed run cut short is skipped."""
    run = Run(Path(path))
    rows: dict[int, dict] = {}
    metrics = run.path / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows[row["step"]] = row  # a resumed run logs a step again: the last one counts
    for step in sorted(rows):
        for key, value in rows[step].items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                xs, ys = run.steps.setdefault(key, ([], []))
                xs.append(step)
                ys.append(float(value))
    summary = run.path / "summary.json"
    if summary.exists():
        try:
            run.summary = json.loads(summary.read_text())
        except ValueError:
            pass
    last = int(run.summary.get("steps", run.last_step))
    for tag, step in (("before", 0), ("after", last)):
        value = run.summary.get(f"eval_{tag}/mean")
        if value is None:
            value = _eval_mean(run.path / f"eval_{tag}.jsonl")
        if value is not None:
            run.eval[step] = float(value)
    return run


def _eval_mean(path: Path) -> float | None:
    """Mean reward of the scored (not failed) episodes of an eval file, as the driver computes eval_<tag>/mean."""
    if not path.exists():
        return None
    rewards = []
    for line in path.read_text().splitlines():
        try:
            t = json.loads(line)
        except ValueError:
            continue
        if t.get("failure") is None and t.get("reward") is not None:
            rewards.append(float(t["reward"]))
    return sum(rewards) / len(rewards) if rewards else None


def _series(run: Run, key: str) -> dict[str, tuple[list[int], list[float]]]:
    """label -> (steps, values) of one panel for one run."""
    if key == EVAL:
        points = sorted(run.eval.items())
        return {"eval": ([s for s, _ in points], [v for _, v in points])} if points else {}
    if key.endswith("/*"):
        prefix = key[:-1]
        return {k.removeprefix(prefix): v for k, v in sorted(run.steps.items()) if k.startswith(prefix)}
    return {key: run.steps[key]} if key in run.steps else {}


def build_figures(runs: Sequence[Run]) -> dict[str, Figure]:
    """topic name -> its figure; one axes per panel that some run has, one line per run (and series)."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, no display needed

    figures: dict[str, Figure] = {}
    for topic in TOPICS:
        panels = [(p, [(run, _series(run, p.key)) for run in runs]) for p in topic.panels]
        panels = [(p, data) for p, data in panels if any(series for _, series in data)]
        if not panels:
            continue
        cols = min(3, len(panels))
        rows = math.ceil(len(panels) / cols)
        fig = Figure(figsize=(4.6 * cols, 3.2 * rows), layout="constrained")
        fig.suptitle(topic.title)
        for i, (panel, data) in enumerate(panels):
            ax = fig.add_subplot(rows, cols, i + 1)
            ax.set_title(panel.title, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            for j, (run, series) in enumerate(data):
                for label, (xs, ys) in series.items():
                    name = run.name if len(series) == 1 else f"{run.name} {label}"
                    marker = "o" if panel.key == EVAL or len(xs) == 1 else None
                    ax.plot(xs, ys, label=name, color=f"C{j}", marker=marker)
            if len(runs) > 1 or any(len(series) > 1 for _, series in data):
                ax.legend(fontsize=8)
        figures[topic.name] = fig
    return figures


def _status(run: Run) -> str:
    if run.summary:
        return f"finished ({run.summary.get('steps', run.last_step)} steps)"
    return f"stopped after step {run.last_step}" if run.last_step else "stopped before the first step"


def _html(runs: Sequence[Run], images: Sequence[tuple[str, str]]) -> str:
    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    rows = "".join(
        f"<tr><td>{html.escape(str(r.path))}</td><td>{html.escape(_status(r))}</td>"
        f"<td>{cell(r.steps['reward/mean'][1][-1] if 'reward/mean' in r.steps else None)}</td>"
        f"<td>{cell(r.eval.get(0))}</td><td>{cell(r.eval.get(r.last_step) if r.last_step else None)}</td></tr>"
        for r in runs)
    figs = "".join(f'<h2>{html.escape(title)}</h2><img src="{html.escape(src)}" alt="{html.escape(title)}">'
                   for title, src in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rltrain report: "
            f"{html.escape(', '.join(r.name for r in runs))}</title><style>body{{font-family:sans-serif;margin:2em}}"
            f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}img{{max-width:100%}}"
            f"</style></head><body><h1>rltrain report</h1><table><tr><th>run</th><th>status</th>"
            f"<th>last training reward</th><th>held-out before</th><th>held-out after</th></tr>{rows}</table>"
            f"{figs or '<p>No metrics yet: metrics.jsonl has no step.</p>'}</body></html>")


def render(run_dirs: Sequence[Path | str]) -> Path:
    """Write the report of these runs into the first one's folder; returns the HTML's path. Raises on errors."""
    if not run_dirs:
        raise ValueError("give at least one run folder, e.g. runs/quickstart")
    runs = [load_run(Path(p)) for p in run_dirs]
    for run in runs:
        if not run.path.is_dir():
            raise FileNotFoundError(f"{run.path} is not a run folder; give runs/<trainer.name> of a `rltrain train` run")
    out = runs[0].path
    images_dir = out / "report"
    images_dir.mkdir(exist_ok=True)
    images = []
    topics = {t.name: t.title for t in TOPICS}
    for name, fig in build_figures(runs).items():
        fig.savefig(images_dir / f"{name}.png", dpi=90)
        images.append((topics[name], f"report/{name}.png"))
    page = out / "report.html"
    page.write_text(_html(runs, images))
    return page


def write_report(run_dirs: Sequence[Path | str]) -> Path | None:
    """`render`, for the driver's end of run: logs instead of raising; returns the page or None."""
    try:
        page = render(run_dirs)
    except Exception as err:  # noqa: BLE001 - a report failure never fails the run
        logger.warning("run report not written (%s: %s); write it later with: rltrain report %s", type(err).__name__,
                       err, " ".join(map(str, run_dirs)))
        return None
    logger.info("Report: %s", page)
    return page


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `report` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("report", help="plots of one or more runs, overlaid, as runs/<name>/report.html",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="examples:\n  rltrain report runs/quickstart\n"
                                     "  rltrain report runs/quickstart runs/quickstart_lr1e-5   (written into runs/quickstart)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (<trainer.output_dir>/<trainer.name>)")
    p.set_defaults(func=_report_cmd)


def _report_cmd(args: argparse.Namespace) -> int:
    try:
        page = render(args.runs)
    except (FileNotFoundError, ValueError) as err:
        print(f"rltrain report: {err}", file=sys.stderr)
        return 2
    print(page)
    return 0
