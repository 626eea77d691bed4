"""rltrain.router_eval's arithmetic and `rltrain eval` on the router (issue 14 part 6; spec §4.4, §4.6). No engine:
the full evaluation with real engines is scripts/measure_router.sh, whose results are in docs/router.md."""

from __future__ import annotations

import math

import pytest

from rewards.router import RouterReward
from rltrain import cli, router_eval


def test_summarise_by_hand() -> None:
    rows = [{"score": 1.0, "usd": 0.1, "calls": 1, "direct": 0.0, "router_usd": 0.01},
            {"score": 0.0, "usd": 0.0, "calls": 0, "direct": 1.0, "router_usd": 0.03},
            {"score": 1.0, "usd": 0.0, "calls": 0, "direct": 1.0}]
    out = router_eval.summarise(rows, [1.0, 10.0], RouterReward())
    assert out["accuracy"] == pytest.approx(2 / 3) and out["usd_per_query"] == pytest.approx(0.1 / 3)
    assert out["calls_per_query"] == pytest.approx(1 / 3) and out["direct_rate"] == pytest.approx(2 / 3)
    assert out["cost_utility"] == pytest.approx((2 / 3) / (0.1 / 3))
    assert out["router_usd_per_query"] == pytest.approx(0.04 / 3)
    # R = s·(K − min(λC, c_max)): λ=3 (the config's) 1 − 0.3 = 0.7; λ=1 0.9; λ=10 caps at c_max: 1 − 0.8 = 0.2
    assert out["reward"] == pytest.approx((0.7 + 0 + 1) / 3)
    assert out["reward_lam1"] == pytest.approx((0.9 + 0 + 1) / 3) and out["reward_lam10"] == pytest.approx((0.2 + 1) / 3)
    assert math.isinf(router_eval.summarise(rows[1:], [], RouterReward())["cost_utility"])


def test_rltrain_eval_on_the_router_runs_the_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rltrain eval` dispatches a router config to the router-vs-fixed-policies evaluation, not the gym eval."""
    calls = []
    monkeypatch.setattr(router_eval, "run", lambda cfg, model, n, lams: calls.append((cfg.env.name, model, n, lams)))
    assert cli.main(["eval", "launch/configs/router.yaml", "--tasks", "3", "trainer.name=t"]) == 0
    assert calls == [("router", None, 3, [1.0, 3.0])]
