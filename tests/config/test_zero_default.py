"""learner.zero_stage left unset: ZeRO-0 for one rank (issue 19 lever 4), 2 otherwise; a value the user gives is kept."""

import logging
import pickle

import pytest

from rltrain import checkpoint
from rltrain.config import ConfigError, load_config, to_dict
from rltrain.preflight import log_chosen_defaults


@pytest.mark.parametrize(("overrides", "stage"), [
    ([], 0),                                                                  # one rank, float32
    (["learner.dtype=autocast_bfloat16"], 0),                                 # fp32 weights: the same optimizer path
    (["learner.dtype=bfloat16"], 2),                                          # DeepSpeed's bf16 mode keeps ZeRO-2
    (["learner.num_learners=2", "learner.micro_batch_size=2"], 2),            # several ranks: partition
    (["learner.zero_stage=2"], 2),                                            # given: kept on one rank
    (["learner.zero_stage=3", "learner.num_learners=2", "learner.micro_batch_size=2"], 3),
])
def test_unset_zero_stage_is_chosen_from_the_ranks(overrides: list[str], stage: int) -> None:
    learner = load_config(None, overrides).learner
    assert learner.zero_stage == stage
    assert pickle.loads(pickle.dumps(learner)).zero_stage == stage  # the learner actors get the number
    assert to_dict(load_config(None, overrides))["learner"]["zero_stage"] == stage  # what a checkpoint records


def test_checks_see_the_chosen_stage() -> None:
    with pytest.raises(ConfigError, match="learner.zero_stage=4 must be 0, 1, 2 or 3"):
        load_config(None, ["learner.zero_stage=4"])
    # the LoRA check sees a given 3; an unset stage never becomes 3
    with pytest.raises(ConfigError, match="zero_stage=3 is not supported"):
        load_config(None, ["learner.lora.r=4", "learner.zero_stage=3"])
    assert load_config(None, ["learner.lora.r=4"]).learner.zero_stage == 0


def test_resuming_a_zero2_checkpoint_adopts_its_stage_unless_one_is_given() -> None:
    """A one-rank checkpoint written when the default was 2: an unset stage resumes at 2; a given other one is named."""
    saved = to_dict(load_config(None, ["learner.zero_stage=2"]))
    with pytest.raises(ConfigError, match="learner.zero_stage: checkpoint 2, now 0"):
        checkpoint.check_compatible(saved, to_dict(load_config(None)))
    unset = load_config(None)
    checkpoint._adopt_default_zero_stage(unset, saved)
    assert unset.learner.zero_stage == 2
    checkpoint.check_compatible(saved, to_dict(unset))
    given = load_config(None, ["learner.zero_stage=0"])
    checkpoint._adopt_default_zero_stage(given, saved)
    with pytest.raises(ConfigError, match="learner.zero_stage: checkpoint 2, now 0"):
        checkpoint.check_compatible(saved, to_dict(given))


def test_the_choice_is_logged_once_and_only_when_unset(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rltrain.preflight"):
        log_chosen_defaults(load_config(None))
        log_chosen_defaults(load_config(None, ["learner.zero_stage=0"]))
    lines = [r.getMessage() for r in caplog.records if "zero_stage" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("learner.zero_stage unset: ZeRO-0 (one learner rank")
