"""Text environments. Each module registers one environment; import it here to make it available.

To add one: write `rltrain/envs/<name>.py` with a `TextEnv` subclass decorated by
`@ENVIRONMENTS.register("<name>")`, and add the import below.
"""

from rltrain.envs import (  # noqa: F401  (registers each environment)
    arithmetic,
    audit,  # registers the per-call ground-truth audit of the judged gyms (judged.CALL_AUDITS)
    crm,
    formats,
    function_gym,
    intention,
    mix,
    multitool,
    persuade,
    router,
    search,
    telepathy,
    travel,
    turtle,
    word_problems,
)
from rltrain.envs.base import ENVIRONMENTS, StepResult, TextEnv, make_env

__all__ = ["ENVIRONMENTS", "StepResult", "TextEnv", "make_env"]
