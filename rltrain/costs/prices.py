"""Versioned price tables: USD per 1M input and output tokens per model, shipped as data (`data/*.json`).

`load_price_table("xrouter-2025")` is the spec §4.2 table; `load_price_table("synthetic-cpu")` the scaled preset
that gives cost a signal on CPU (docs/costs.md); any other value is the path of a user's own JSON table of the
same shape. Every table has a `name` and a `version`, and every priced record names both, so a run priced
under an older version stays explainable after the table changes.

Cost of one call (spec §4.3): input_tokens/1e6 · price_in + output_tokens/1e6 · price_out; a failed call costs 0.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rltrain.costs.records import CallRecord

PRESETS: tuple[str, ...] = ("xrouter-2025", "synthetic-cpu")


class PriceTableError(ValueError):
    """A price table cannot be loaded or does not price a model."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens, read and written."""

    input: float
    output: float
    provider: str = ""
    tier: str = ""


@dataclass(frozen=True)
class PriceTable:
    """A named, versioned price table.

    Attributes:
        name, version: identity; records carry `<name>@<version>`.
        models: model id -> price.
        default: the price of a model the table does not list, or None (then pricing it is an error).
        scale: how far the prices are scaled from list prices (1 for real tables; printed in every report).
        source: where the numbers come from.
    """

    name: str
    version: str
    models: dict[str, ModelPrice]
    default: ModelPrice | None = None
    scale: float = 1.0
    source: str = ""

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def price_of(self, model: str) -> ModelPrice:
        found = self.models.get(model) or self.models.get(normalise_model_id(model))
        if found is not None:
            return found
        if self.default is not None:
            return self.default
        raise PriceTableError(
            f"price table {self.tag} has no price for model {model!r} (it lists {sorted(self.models)}). Add the model "
            f"to your table (costs.price_table=<path to JSON>), or give the table a \"default\" entry")

    def usd(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """Spec §4.3: in/1e6 · price_in + out/1e6 · price_out."""
        price = self.price_of(model)
        return input_tokens / 1e6 * price.input + output_tokens / 1e6 * price.output

    def price(self, record: CallRecord, charge_cached: bool = False) -> CallRecord:
        """`record` with `usd`, `price_table` and (if empty) `provider` filled; failed (and cached) calls cost 0."""
        free = not record.success or (record.cached and not charge_cached)
        usd = 0.0 if free else self.usd(record.model, record.input_tokens, record.output_tokens)
        provider = record.provider
        if not provider and (record.model in self.models or self.default is not None):
            provider = self.price_of(record.model).provider
        return dataclasses.replace(record, usd=usd, price_table=self.tag, provider=provider)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "price table") -> PriceTable:
        try:
            models = {str(k): _price(v) for k, v in data["models"].items()}
            default = _price(data["default"]) if data.get("default") is not None else None
            table = cls(str(data["name"]), str(data["version"]), models, default, float(data.get("scale", 1.0)),
                        str(data.get("source", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise PriceTableError(
                f"{where} is not a valid price table ({type(err).__name__}: {err}); it needs \"name\", \"version\" and "
                f"\"models\": {{model: {{\"input\": USD per 1M, \"output\": USD per 1M}}}} (see docs/costs.md)") from None
        bad = [m for m, p in models.items() if p.input < 0 or p.output < 0]
        if bad:
            raise PriceTableError(f"{where}: negative prices for {bad}")
        return table


def _price(value: dict[str, Any]) -> ModelPrice:
    return ModelPrice(float(value["input"]), float(value["output"]), str(value.get("provider", "")),
                      str(value.get("tier", "")))


def normalise_model_id(model: str) -> str:
    """The table key of a model given as a path or a tool name: last path part, lower case.

    >>> normalise_model_id("/root/.cache/rltrain/qwen2.5-coder-0.5b-instruct")
    'qwen2.5-coder-0.5b-instruct'
    """
    return Path(model.rstrip("/")).name.lower()


def load_price_table(name_or_path: str) -> PriceTable:
    """A shipped preset by name (`PRESETS`) or a user's JSON table by path."""
    if name_or_path in PRESETS:
        text = resources.files("rltrain.costs").joinpath("data", f"{name_or_path}.json").read_text()
        where = f"preset {name_or_path}"
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise PriceTableError(f"costs.price_table={name_or_path!r} is neither a preset {PRESETS} nor an existing JSON "
                                  f"file; name a preset or the path of your own table (docs/costs.md)")
        text, where = path.read_text(), f"costs.price_table={name_or_path!r}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PriceTableError(f"{where} is not valid JSON ({err})") from None
    return PriceTable.from_dict(data, where)
