"""`tool_call_metrics` against hand-computed values (definitions in rltrain/tools/metrics.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rltrain.tools.metrics import tool_call_metrics


def rec(fmt: str, error: str | None = None, offered: bool = True, latency: float = 0.0) -> dict:
    return {"format": fmt, "error": error, "offered": offered, "latency_s": latency}


def test_rates_by_hand() -> None:
    a = SimpleNamespace(tool_records=[rec("tag", latency=0.2), rec("tag", "IFE", False), rec("fence", "unknown_tool", False),
                                      rec("fence", latency=0.4)])
    b = SimpleNamespace(tool_records=[rec("json", "timeout", latency=1.2), rec("tag", "not_run")])
    c = SimpleNamespace(tool_records=[])
    m = tool_call_metrics([a, b, c])
    # 6 attempts, 5 calls (one IFE), 3 trajectories.
    assert m["tools/calls_per_episode"] == pytest.approx(5 / 3) and m["tools/parse_rate"] == pytest.approx(5 / 6)
    assert m["tools/parse_rate/tag"] == pytest.approx(2 / 3) and m["tools/parse_rate/fence"] == 1.0 and m["tools/parse_rate/json"] == 1.0
    assert m["tools/ok_rate"] == pytest.approx(2 / 5) and m["tools/error_rate/unknown_tool"] == pytest.approx(1 / 5)
    assert m["tools/error_rate/timeout"] == pytest.approx(1 / 5) and m["tools/error_rate/not_run"] == pytest.approx(1 / 5)
    assert m["tools/unoffered_rate"] == pytest.approx(1 / 5) and m["tools/latency_s"] == pytest.approx(0.6)
    assert tool_call_metrics([]) == {} and tool_call_metrics([c]) == {"tools/calls_per_episode": 0.0}
