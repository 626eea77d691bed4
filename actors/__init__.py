"""Ray actor classes, one module per role. Each class is plain Python; `ray.remote` wraps it where it is placed
(`rltrain.placement`), so the logic is testable without a cluster."""
