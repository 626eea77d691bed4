"""The `crm` environment: a seeded SQLite CRM, its written policy, tools, tasks and simulated customer.

Modules: `db` (schema, generator, snapshots, diffs), `policy` (text and checks), `actions` (guarded query and
state-changing actions), `tools` (the agent's tools), `tasks` (task types and split), `customer` (the simulated
customer), `scoring` (state / answer / refusal scoring), `solver` (a scripted agent), `env` (`CRMEnv`).
"""

from rltrain.envs.crm import customer  # noqa: F401  (registers the crm.customer rules responder)
from rltrain.envs.crm.env import CRMEnv

__all__ = ["CRMEnv"]
