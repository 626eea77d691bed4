"""Seeded, authored task generators for the UserRL gyms (issue 17): structured ground truth the rules users read.

`python -m rltrain.envs.taskgen.telepathy` rewrites `rltrain/envs/data/telepathy.json`; `stats` prints the
unique templates and entities per gym and split.
"""
