"""Settings of the simulated platform: size presets and difficulty knobs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import ZombieScanError
from pipeline.params import parse_utc_time
from pipeline.simulate.style import WorldStyle, draw_style


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes a simulated world. Same config and seed give the same bytes.

    Size (set by the preset; `accounts` scales the counts below it):
        accounts: Number of accounts.
        window_days: Length of the observed engagement window, ending at `end`.
        actions_per_account: Mean actions of a genuine account in the window (heavy-tailed).
        communities: Number of interest/region communities.
        farm_count: Number of like farms.
        farm_size: Mean members per farm.
        campaigns_per_farm: Mean campaigns a farm delivers in the window.

    Difficulty knobs:
        zombie_share: Share of accounts that are zombies.
        aged_zombie_share: Share of zombies with genuine-looking, old profiles.
        farm_real_share: Share of farm members that are real-looking (hijacked or paid) accounts.
        stealth_share: Share of farms that deliver slowly (days) with camouflage.
        heavy_share: Share of farms whose members each like very many pages.
        adaptive_share: Share of farms that know the published lockstep windows and spread their
            likes over weeks at the hours real users are awake (and camouflage like stealthy ones).
        camouflage_rate: Share of a stealthy farm member's likes spent on popular pages.
        homophily: Probability that a genuine action stays in the actor's community.
        reciprocity: Probability that a genuine follow is returned.
    """

    accounts: int = 20_000
    seed: int = 42
    end: datetime = datetime(2026, 6, 1, tzinfo=UTC)
    window_days: int = 60
    actions_per_account: float = 50.0
    communities: int = 20
    farm_count: int = 16
    farm_size: int = 60
    campaigns_per_farm: float = 12.0
    zombie_share: float = 0.08
    aged_zombie_share: float = 0.3
    farm_real_share: float = 0.15
    stealth_share: float = 0.4
    heavy_share: float = 0.2
    adaptive_share: float = 0.2
    camouflage_rate: float = 0.5
    homophily: float = 0.8
    reciprocity: float = 0.3
    pages_per_account: float = 0.1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ZombieScanError(f"simulate: '{f.name}' = {value!r}: expected a whole number")
            if f.type == "float" and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ZombieScanError(f"simulate: knob '{f.name}' = {value!r}: expected a number")
        if self.seed < 0:
            raise ZombieScanError(f"simulate: seed = {self.seed}: expected a whole number >= 0")
        shares = (
            "zombie_share", "aged_zombie_share", "farm_real_share", "stealth_share", "heavy_share", "adaptive_share", "homophily",
            "reciprocity",
        )  # fmt: skip
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ZombieScanError(f"simulate: knob '{name}' = {value}: expected a share between 0 and 1")
        if not 0.0 <= self.camouflage_rate < 1.0:
            raise ZombieScanError(f"simulate: knob 'camouflage_rate' = {self.camouflage_rate}: expected 0 <= rate < 1")
        if self.stealth_share + self.heavy_share + self.adaptive_share > 1.0:
            raise ZombieScanError("simulate: stealth_share + heavy_share + adaptive_share must not exceed 1")
        if self.accounts < 200:
            raise ZombieScanError(f"simulate: accounts = {self.accounts}: expected at least 200")
        for name in ("window_days", "communities", "farm_count", "farm_size"):
            if getattr(self, name) < 1:
                raise ZombieScanError(f"simulate: '{name}' = {getattr(self, name)}: expected at least 1")
        if not isinstance(self.end, datetime) or self.end.tzinfo is None:
            raise ZombieScanError("simulate: 'end' must carry a time zone (use ...Z for UTC)")


PRESETS: dict[str, SimConfig] = {
    # Tests: a few seconds, every behaviour present; 8 small farms, so group folds each hold several.
    "tiny": SimConfig(
        accounts=1_500, window_days=30, actions_per_account=30.0, communities=6, farm_count=8, farm_size=15, campaigns_per_farm=8.0
    ),
    # make repro: ~20k accounts, ~1M engagements.
    "default": SimConfig(),
    # Benchmark: 1M accounts, 20M+ engagements.
    "large": SimConfig(
        accounts=1_000_000, actions_per_account=21.0, communities=200, farm_count=400, farm_size=80, campaigns_per_farm=15.0
    ),
}

KNOBS = tuple(f.name for f in dataclasses.fields(SimConfig) if f.name not in {"accounts", "seed"})


def make_config(preset: str = "default", *, seed: int | None = None, accounts: int | None = None, **knobs: Any) -> SimConfig:
    """Build a config from a preset, an optional size override and knob overrides.

    When `accounts` differs from the preset's, the farm and community counts scale with it so
    the world keeps its shape.
    """
    if preset not in PRESETS:
        raise ZombieScanError(f"simulate: unknown preset '{preset}': expected one of {', '.join(PRESETS)}")
    base = PRESETS[preset]
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ZombieScanError(f"simulate: unknown knob(s) {', '.join(unknown)}: expected some of {', '.join(KNOBS)}")
    if isinstance(knobs.get("end"), str):
        knobs["end"] = parse_utc_time(knobs["end"], "simulate: end")
    changes: dict[str, Any] = {k: v for k, v in knobs.items() if v is not None}
    if seed is not None:
        changes["seed"] = seed
    if accounts is not None and accounts != base.accounts:
        scale = accounts / base.accounts
        changes["accounts"] = accounts
        changes.setdefault("farm_count", max(1, round(base.farm_count * scale)))
        changes.setdefault("communities", max(2, round(base.communities * scale)))
    return dataclasses.replace(base, **changes)


def from_params(values: dict[str, Any], **changes: Any) -> tuple[str, SimConfig, WorldStyle]:
    """The world a `simulate` params section describes: preset, config and style (drawn from the
    seed; `style` pins settings). `changes` override the section (e.g. seed=..., knobs=...)."""
    values = {**values, **changes}
    preset = values.get("preset") or "default"
    cfg = make_config(preset, seed=values.get("seed"), accounts=values.get("accounts"), **(values.get("knobs") or {}))
    return preset, cfg, draw_style(cfg.seed, values.get("style"))


def describe(preset: str, cfg: SimConfig, style: WorldStyle) -> dict[str, Any]:
    """What a model trained on this world records in model.json (`trained_on`)."""
    config = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dataclasses.asdict(cfg).items()}
    return {"kind": "simulated", "preset": preset, "seed": cfg.seed, "accounts": cfg.accounts, "config": config, "style": style.as_dict()}
