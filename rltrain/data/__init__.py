"""Trajectory data: formats and converters (`formats`), the versioned trajectory row (`schema`), SFT samples (`sft`),
filters (`filter`), verl RL rows (`verl`), file I/O (`io`) and the `rltrain data` command (`cli`). docs/data.md."""
