"""bench.limits: the step-floor arithmetic (no timing is measured or asserted here)."""

from __future__ import annotations

import pytest

from bench.limits import generation_bytes, step_floor_s


def test_step_floor_by_hand() -> None:
    # 135M params, 16 samples x 70 tokens trained, 32 decode steps over bf16 weights,
    # at 200 GFLOP/s and 20 GB/s: 6*135e6*1120/200e9 = 4.536 s, 270e6*32/20e9 = 0.432 s.
    gen = generation_bytes(param_bytes=2 * 135e6, decode_steps=32)
    assert gen == pytest.approx(8.64e9)
    assert step_floor_s(135e6, 16 * 70, gen, 200e9, 20e9) == pytest.approx(4.536 + 0.432)


def test_step_floor_terms_are_independent() -> None:
    assert step_floor_s(1e6, 1000, 0.0, 6e9, 1e9) == pytest.approx(1.0)  # compute only
    assert step_floor_s(1e6, 0, 5e9, 6e9, 1e9) == pytest.approx(5.0)  # generation only


def test_step_floor_rejects_zero_rates() -> None:
    with pytest.raises(ValueError):
        step_floor_s(1e6, 10, 1e6, 0.0, 1e9)
