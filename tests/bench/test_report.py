"""bench.report: README results blocks rendered from small hand-made result dicts (no benchmark is run, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report

# GRPO: TRL bf16 at 10 s/step and rltrain at 13.333 s/step for 16 samples: 1.6 vs 1.2 samples/s, ratio 0.75.
GRPO = {
    "machine": {"cpu": "x86_64", "cores": 2, "python": "3.11.7", "torch": "2.13.0+cpu"},
    "date": "2026-11-25T21:43:00+00:00",
    "steps": 3,
    "limits": {"matmul_gflops": {"fp32": 194.13, "bf16": 411.93}, "bandwidth_gbs": 31.705},
    "rows": [
        {"name": "trl_bf16", "ok": True, "peak_rss_mib": 4515.2, "median_step_s": 10.0, "samples_per_s": 1.6,
         "gen_tokens_per_s": 31.12, "acc_before": 2 / 3, "acc_after": 0.8, "floor_s": 2.5, "x_floor": 4.0},
        {"name": "trl_vllm_colocate", "ok": False, "peak_rss_mib": 3146.6,
         "error": "AttributeError: no weight_loader\nTraceback ..."},
        {"name": "rltrain_sync", "ok": True, "peak_rss_mib": 12000.0, "median_step_s": 40 / 3, "samples_per_s": 1.2,
         "gen_tokens_per_s": 24.0, "acc_before": 2 / 3, "acc_after": 25 / 30, "floor_s": 40 / 3 / 3.2, "x_floor": 3.2},
        {"name": "rltrain_sync_bf16", "ok": True, "peak_rss_mib": 11681.3, "median_step_s": 9.75, "samples_per_s": 16 / 9.75,
         "gen_tokens_per_s": 30.0, "acc_before": 2 / 3, "acc_after": 0.7, "floor_s": 2.2, "x_floor": 9.75 / 2.2},
    ],
    "headline": {"ratio": 0.75, "rltrain": "rltrain_sync", "trl": "trl_bf16", "acc_rltrain": 25 / 30, "acc_trl": 0.8,
                 "accuracy_no_worse": True},
    "runs": [
        {"name": "trl_bf16", "ok": True, "versions": {"trl": "1.16.0", "torch": "2.13.0+cpu"},
         "per_step": [{"wall_s": 12.0, "gen_s": 5.0}, {"wall_s": 10.0, "gen_s": 4.0}, {"wall_s": 11.0, "gen_s": 3.0}]},
        {"name": "rltrain_sync", "ok": True, "versions": {"ray": "2.60.0"},
         "per_step": [{"wall_s": 20.0, "phases": {"rollout_s": 3.0, "learner_update_s": 16.0, "sync_s": 0.5, "reward_s": 0.01}},
                      {"wall_s": 13.0, "phases": {"rollout_s": 2.0, "learner_update_s": 10.0, "sync_s": 0.5, "reward_s": 0.01}},
                      {"wall_s": 14.0, "phases": {"rollout_s": 1.0, "learner_update_s": 12.0, "sync_s": 0.4, "reward_s": 0.03}}]},
    ],
}
SYNC = {
    "machine": {"cpu": "x86_64", "cores": 2, "python": "3.11.7", "torch": "2.13.0+cpu"},
    "repeats": 3, "new_tokens": 8,
    "results": {"smollm2": {"parameters": 134_515_008, "bf16_bytes": 269_030_016, "clone_s": 0.1, "copy_into_s": 0.02,
                            "syncs": {"1": {"median": {"export_s": 0.4, "load_s": 0.25, "generate_s": 0.264, "total_s": 0.93}}}}},
}
SCALING = {
    "machine": {"cpu": "x86_64", "cores": 2, "python": "3.11.7", "torch": "2.13.0+cpu"},
    "steps": 2,
    "rows": [{"topology": "1 rollout + 1 learner", "prompts": 2, "group_size": 8, "response_len": None, "step_s": 11.2074,
              "rollout_s": 1.2979, "update_s": 8.977, "sync_s": 0.45446, "samples_per_s": 1.4276, "gen_tokens_per_s": 32.255,
              # an older sample: the named actor's process title beside its class name (same process: max, not sum)
              "peak_rss_mib": {"driver": 585.0, "Learner": 6111.6, "scaling-1x1-rollout-0:RolloutWorker": 284.2,
                               "RolloutWorker": 4025.7, "IDLE": 522.6, "DashboardAgent": 125.2, "RuntimeEnvAgent": 81.0}}],
    "exponents": {"group_size": {"step_s": 0.8429, "rollout_s": 0.5444, "reward_s": 0.64, "update_s": 0.9443, "sync_s": 0.0341},
                  "response_len": {"step_s": 0.4472, "rollout_s": 0.7378, "reward_s": 0.12, "update_s": 0.4054, "sync_s": -0.0115}},
}

README = """# Benchmarks

Prose before, with a stray `<!-- results` fragment and a table:

| a | b |
|---|---|
| 1 | 2 |

<!-- results:headline -->
hand-written headline, to be replaced
<!-- /results:headline -->

## GRPO

Set-up prose.

<!-- results:grpo_vs_trl -->
old table
<!-- /results:grpo_vs_trl -->

What they say: prose after.

<!-- results:limits --><!-- /results:limits -->
<!-- results:rollout --><!-- /results:rollout -->
<!-- results:sync --><!-- /results:sync -->
<!-- results:scaling --><!-- /results:scaling -->
Trailing text without a newline at the end"""


def write_results(folder: Path, **results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in results.items():
        (folder / f"{name}.json").write_text(json.dumps(data))
    return folder


def test_grpo_table_rows_and_failure() -> None:
    text = report.render_grpo_vs_trl(GRPO)
    assert text.startswith("Measured (`python -m bench.grpo_vs_trl`, 2026-11-25; 3 steps, s/step the median over steps 2-3; "
                           "matmul 194 GFLOP/s fp32, 412 bf16; read 31.7 GB/s):")
    assert "| config | s/step | samples/s | gen tok/s | peak RSS MiB | acc before | acc after | x floor |" in text
    # 40/3 s -> 13.3; 1.2 -> 1.20 (trailing zero kept); 25/30 -> 0.833
    assert "| rltrain_sync | 13.3 | 1.20 | 24.0 | 12,000 | 0.667 | 0.833 | 3.20 |" in text
    assert "| trl_bf16 | 10.0 | 1.60 | 31.1 | 4,515 | 0.667 | 0.800 | 4.00 |" in text
    assert "| trl_vllm_colocate | failed | - | - | 3,147 | - | - | - |" in text
    assert "- trl_vllm_colocate did not run: `AttributeError: no weight_loader`" in text  # first line of the error only


def test_grpo_phase_medians_skip_the_first_step() -> None:
    text = report.render_grpo_vs_trl(GRPO)
    # steps 2-3: TRL step median(10, 11) = 10.5, generate median(4, 3) = 3.5, learner median(6, 8) = 7.0
    assert "| trl_bf16 | 10.5 | 3.50 | 7.00 | - | - |" in text
    # rltrain: step 13.5, rollout 1.5, learner update 11.0, sync 0.45, reward 0.02
    assert "| rltrain_sync | 13.5 | 1.50 | 11.0 | 0.450 | 0.0200 |" in text


def test_headline_ratio_line_and_rows() -> None:
    text = report.render_headline({"grpo_vs_trl": GRPO, "sync": SYNC, "scaling": SCALING})
    assert ("| rltrain/TRL samples/s (equal steps, accuracy no worse) | **rltrain/TRL samples/s: 0.75** (rltrain_sync 1.20 vs "
            "trl_bf16 1.60 samples/s; held-out accuracy after 3 steps 0.833 vs 0.800) | `python -m bench.grpo_vs_trl` |") in text
    # 16/9.75 = 1.641 samples/s against 1.6: 1.03, but less accurate than TRL
    assert ("| rltrain_sync_bf16 / trl_bf16 samples/s | 1.03 (1.64 vs 1.60); accuracy after 0.700 vs 0.800: lower, so it "
            "does not count | same run |") in text
    assert "trl_bf16 4.0x (floor 2.5 s), rltrain_sync 3.2x (floor 4.2 s), rltrain_sync_bf16 4.4x (floor 2.2 s)" in text
    assert "rltrain_sync 12,000 MiB vs trl_bf16 4,515 MiB" in text
    # 0.93 / 0.1 = 9.3 -> 9x clone, 0.93 / 0.02 = 46.5 -> 46x copy_ (round half to even)
    assert "smollm2: 0.93 s = 9x `clone`, 46x `copy_`" in text
    assert "| scaling exponents (step seconds ~ work^b) | group size 0.84, response length 0.45 | `python -m bench.scaling` |" in text
    # Ray's own: 522.6 + 125.2 + 81.0 = 728.8; the rollout worker is the max of its two titles
    assert ("| peak memory per role, MiB (1 rollout + 1 learner) | learner 6,112, rollout worker + vLLM engine 4,026, driver 585, "
            "Ray's own processes 729 | same run |") in text
    assert "| rollout overhead (rltrain worker / raw engine, 1 = none) | not run yet: `python -m bench.rollout` |" in text
    assert "Last `rltrain bench all`: none recorded yet" in text
    assert "Machine (from the result files): x86_64, 2 cores, python 3.11.7; torch 2.13.0+cpu, ray 2.60.0, trl 1.16.0." in text


def test_headline_all_run_and_machine() -> None:
    machine = {"cpu": "x86_64", "cpu_model": "AMD EPYC", "isa": ["avx512f"], "cores": 2, "memory_gib": 23.5, "gpus": 0,
               "python": "3.11.7", "torch": "2.13.0+cpu", "versions": {"torch": "2.13.0+cpu", "vllm": None}}
    run_all = {"date": "2026-11-26T08:00:00+00:00", "total_s": 1668.0, "per_benchmark_s": {"limits": 20.4, "sync": 150.6},
               "machine": machine}
    other = {**SYNC, "machine": {**SYNC["machine"], "cores": 4}}
    text = report.render_headline({"all": run_all, "sync": other})
    assert "Last `rltrain bench all`: 2026-11-26, 27.8 minutes in total (limits 20 s, sync 151 s)." in text
    assert "Machine (from the result files): AMD EPYC (x86_64), 2 cores, avx512f, 24 GiB, no GPU, python 3.11.7; torch 2.13.0+cpu." in text
    assert "Note: `sync.json` was measured on x86_64, 4 cores, python 3.11.7." in text


def test_sync_and_scaling_tables() -> None:
    sync = report.render_sync(SYNC)
    assert "| smollm2 | 135M | 257 | 1 | 0.400 | 0.250 | 0.264 | 0.930 | 0.100 | 0.0200 | 9 | 46 |" in sync
    scaling = report.render_scaling(SCALING)
    assert "| 1 rollout + 1 learner | 2 | 8 | natural | 11.2 | 1.30 | 8.98 | 0.454 | 1.43 | 32.3 |" in scaling
    assert "| response length | 0.45 | 0.74 | 0.41 | -0.01 |" in scaling
    assert "| rollout worker + vLLM engine | 4,026 |" in scaling


def test_replace_blocks_leaves_outside_text_untouched() -> None:
    blocks = {"headline": "NEW HEADLINE", "grpo_vs_trl": "NEW GRPO"}
    new, changed, missing = report.replace_blocks(README, blocks)
    assert changed == ["headline", "grpo_vs_trl"] and missing == []
    assert new == (README.replace("\nhand-written headline, to be replaced\n", "\n\nNEW HEADLINE\n\n")
                   .replace("\nold table\n", "\n\nNEW GRPO\n\n"))
    # a block named in the README but not rendered stays as it is; a rendered block without markers is reported
    new, changed, missing = report.replace_blocks(README, {"sync": "S", "verl": "V"})
    assert changed == ["sync"] and missing == ["verl"]
    assert new == README.replace("<!-- results:sync --><!-- /results:sync -->",
                                 "<!-- results:sync -->\n\nS\n\n<!-- /results:sync -->")


@pytest.mark.parametrize("broken", [
    README + "\n<!-- results:sync -->\n",  # a second opening marker
    README.replace("<!-- /results:grpo_vs_trl -->", ""),  # no closing marker
    "<!-- /results:sync --> text <!-- results:sync -->",  # closing before opening
])
def test_malformed_markers_are_an_error(broken: str) -> None:
    with pytest.raises(report.ReadmeError):
        report.replace_blocks(broken, {"sync": "S", "grpo_vs_trl": "G"})


def test_missing_results_say_not_run_yet(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", grpo_vs_trl=GRPO)
    blocks = report.render_blocks(report.load_results(results))
    assert blocks["sync"] == "not run yet: `python -m bench.sync`"
    assert blocks["limits"] == "not run yet: `python -m bench.limits`"
    assert "**rltrain/TRL samples/s: 0.75**" in blocks["headline"]


def test_unreadable_or_foreign_results_do_not_stop_the_others(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", sync=SYNC, rollout={"machine": {}, "results": {"vllm/raw": {}}})
    (results / "scaling.json").write_text('{"rows": [')  # a run interrupted while writing
    blocks = report.render_blocks(report.load_results(results))
    assert blocks["scaling"].startswith("`bench/results/scaling.json` could not be read (")
    assert blocks["rollout"].startswith("`bench/results/rollout.json` is not in the format this report reads (KeyError")
    assert "| smollm2 | 135M |" in blocks["sync"]


def test_update_readme_is_idempotent(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results", grpo_vs_trl=GRPO, sync=SYNC, scaling=SCALING)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    changed, missing = report.update_readme(readme, results)
    assert sorted(changed) == sorted(report.BLOCKS) and missing == []
    first = readme.read_text()
    assert "rltrain/TRL samples/s: 0.75" in first and "not run yet: `python -m bench.rollout`" in first
    assert first.endswith("<!-- /results:scaling -->\nTrailing text without a newline at the end")
    assert report.update_readme(readme, results) == ([], [])
    assert readme.read_text() == first
    assert report.main(["--check", "--readme", str(readme), "--results", str(results)]) == 0
    readme.write_text(README)
    assert report.main(["--check", "--readme", str(readme), "--results", str(results)]) == 1
    assert readme.read_text() == README  # --check changes nothing


def test_benchmark_list_matches_the_cli() -> None:
    from rltrain import cli

    assert report.BENCHMARKS == cli.BENCHMARKS


def test_record_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import common

    monkeypatch.setattr(common, "machine", lambda: {"cpu": "test"})
    path = report.record_all(12.5, {"limits": 12.5}, tmp_path)
    data = json.loads(path.read_text())
    assert data["total_s"] == 12.5 and data["per_benchmark_s"] == {"limits": 12.5} and data["machine"] == {"cpu": "test"}
    assert len(data["date"]) == len("2026-11-25T21:43:00+00:00")


class FakeCall:
    """Stands in for subprocess.call in `rltrain bench`: records each command, fails the benchmarks named."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.commands: list[list[str]] = []
        self.failing = failing

    def __call__(self, cmd: list[str], cwd: object = None) -> int:
        self.commands.append(cmd)
        return 1 if cmd[2] in {f"bench.{name}" for name in self.failing} else 0


def test_cli_bench_all_records_timings_then_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from rltrain import cli

    fake = FakeCall()
    monkeypatch.setattr(subprocess, "call", fake)
    assert cli.main(["bench", "all"]) == 0
    modules = [cmd[2] for cmd in fake.commands]
    assert modules == [*(f"bench.{name}" for name in cli.BENCHMARKS), "bench.report"]
    record = fake.commands[-1]
    assert record[3] == "--record-all"
    timings = json.loads(record[4])
    assert list(timings["per_benchmark_s"]) == list(cli.BENCHMARKS) and timings["total_s"] >= 0


def test_cli_failed_benchmark_still_reports_what_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from rltrain import cli

    fake = FakeCall(failing=("sync",))
    monkeypatch.setattr(subprocess, "call", fake)
    assert cli.main(["bench", "all"]) == 1
    assert [cmd[2] for cmd in fake.commands] == ["bench.limits", "bench.rollout", "bench.sync", "bench.report"]
    assert "--record-all" not in fake.commands[-1]  # all.json only times a complete run
    fake = FakeCall(failing=("limits",))
    monkeypatch.setattr(subprocess, "call", fake)
    assert cli.main(["bench", "limits"]) == 1
    assert [cmd[2] for cmd in fake.commands] == ["bench.limits"]  # nothing new to report


def test_cli_bench_report_passes_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from rltrain import cli

    fake = FakeCall()
    monkeypatch.setattr(subprocess, "call", fake)
    assert cli.main(["bench", "report", "--check"]) == 0
    assert [cmd[2:] for cmd in fake.commands] == [["bench.report", "--check"]]


def test_doctests() -> None:
    import doctest

    # pytest's --doctest-modules skips bench/ (addopts --ignore=bench), so the formatting examples run here
    assert doctest.testmod(report).failed == 0


def test_tables_without_a_result_file_are_kept_and_flagged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 13 part 7: a table whose JSON was never committed is not passed off as re-derivable, nor thrown away."""
    old_table = "Measured earlier:\n\n| measure | rate |\n|---|---|\n| copy_ | 47.4 |"
    readme = tmp_path / "README.md"
    readme.write_text(README.replace("<!-- results:limits --><!-- /results:limits -->",
                                     f"<!-- results:limits -->\n\n{old_table}\n\n<!-- /results:limits -->"))
    results = write_results(tmp_path / "results", sync=SYNC)
    report.update_readme(readme, results)
    first = readme.read_text()
    block = first.split("<!-- results:limits -->")[1].split("<!-- /results:limits -->")[0].strip()
    assert block.startswith(f"{report.UNBACKED} for `bench/results/limits.json`")
    assert "`rltrain bench limits`" in block and block.endswith(old_table)
    assert "not run yet: `python -m bench.rollout`" in first  # an empty block has nothing to keep
    assert report.update_readme(readme, results) == ([], [])  # idempotent: the flag is not added twice
    assert report.unbacked_blocks(readme) == ["limits"]
    assert report.main(["--check", "--readme", str(readme), "--results", str(results)]) == 0
    assert "no committed result file behind limits" in capsys.readouterr().out
    limits = {"matmul": {"float32": {"dtype": "float32", "n": 2048, "calls": 16, "flops_per_s": 1.5e11}},
              "bandwidth": {"size_mib": 512, "copy_bytes_per_s": 2.2e10, "read_bytes_per_s": 3.0e10},
              "torch_threads": 2, "repeats": 3, "target_s": 1.5}
    write_results(results, limits=limits)  # once the file exists, the block is generated from it
    report.update_readme(readme, results)
    assert report.unbacked_blocks(readme) == []
    block = readme.read_text().split("<!-- results:limits -->")[1].split("<!-- /results:limits -->")[0]
    assert "47.4" not in block and "| copy_ | 512 MiB, read+write | 22.0 | GB/s |" in block
