"""Quantization configuration of the training framework (docs/training.md): one frozen dataclass.

A conv or linear layer has three GEMMs and six GEMM operands. Each operand has a *role*:

==========  ===================================  =========================================
role        operand                              default
==========  ===================================  =========================================
``a``       activation A in forward              --
``w``       weight W in forward                  --
``e``       error E (dL/dY) in backward-data     --
``w_bd``    weight W in backward-data            same as ``w``
``a_bw``    activation A in backward-weight      same as ``a``
``e_bw``    error E in backward-weight           same as ``e``
==========  ===================================  =========================================

A role's setting is a ``RoleConfig``: MLS format (or ``None`` = FP32, not quantized), rounding
(default ``nearest`` for A and W, ``stochastic`` for E), the conv grouping (default channel-wise,
docs/numerics.md §1), the block size used for linear layers and the number of stochastic-rounding bits.
When two operands resolve to the same setting the layer quantizes the tensor once and reuses it,
as the hardware would.

String form (``--quant``), comma-separated ``key=value`` items::

    a=e2m1g3,w=e2m1g3,e=e2m1g3          three roles
    e2m1g3                              shorthand: a, w and e all e2m1g3
    fp32                                nothing quantized
    e=e4m3g3/nearest                    format/rounding
    e.rounding=nearest, a.grouping=channel:4, a.block=16, e.sr_bits=12
    w_bd=e4m3g3, e_bw=fp32              backward operands on their own
    first=fp32|mls   last=fp32|mls      first conv / last linear layer

TOML form (``QuantConfig.from_toml``): top-level or ``[quant]`` keys ``first``/``last`` and one
table per role, e.g. ``[quant.e]`` with ``format``, ``rounding``, ``grouping``, ``block``, ``sr_bits``.

Defaults for first/last: every convolution is quantized, the first one included (docs/training.md: the
hardware runs every conv in MLS, and channel grouping copes with the raw input); the final linear
layer stays FP32 (``last=fp32``): it is <1 % of the MACs of our models, and its 10-way logits and
their errors are where low-bit formats lose the most accuracy for the least energy.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import MLSFormat
from .grouping import Grouping
from .quantize import ROUNDINGS
from .random_bits import DEFAULT_SR_BITS, MAX_SR_BITS

__all__ = ["ROLES", "PRIMARY_ROLES", "RoleConfig", "QuantConfig"]

PRIMARY_ROLES = ("a", "w", "e")
#: Secondary role -> the primary role it defaults to.
SECONDARY_ROLES = {"w_bd": "w", "a_bw": "a", "e_bw": "e"}
ROLES = PRIMARY_ROLES + tuple(SECONDARY_ROLES)
DEFAULT_LINEAR_BLOCK = 32
_FP32_NAMES = ("fp32", "none", "float32")
#: Keys of a role table in the TOML form and the TOML type each must have.
_TOML_ROLE_TYPES = {"format": str, "rounding": str, "grouping": str, "block": int, "sr_bits": int}
_TOML_TYPE_NAMES = {str: "a string", int: "an integer"}


@dataclass(frozen=True)
class RoleConfig:
    """How one GEMM operand is quantized. ``fmt=None`` means FP32 (no quantization)."""

    fmt: MLSFormat | None
    rounding: str = "nearest"
    grouping: Grouping = field(default_factory=Grouping.channel)
    block: int = DEFAULT_LINEAR_BLOCK  # linear layers: group size along each GEMM's reduction axis; 0 = whole tensor
    sr_bits: int = DEFAULT_SR_BITS

    def __post_init__(self) -> None:
        if self.fmt is not None and not isinstance(self.fmt, MLSFormat):
            object.__setattr__(self, "fmt", _parse_format(self.fmt))
        if not isinstance(self.grouping, Grouping):
            object.__setattr__(self, "grouping", Grouping.parse(self.grouping))
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        g = self.grouping
        if not (g == Grouping.per_tensor() or (g.axis == 1 and g.span_trailing and g.block is not None)):
            raise ValueError(f"conv grouping must be 'channel[:Gc]' or 'tensor', got {str(g)!r}")
        for name, value, low, high in (("block", self.block, 0, 1 << 20), ("sr_bits", self.sr_bits, 1, MAX_SR_BITS)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")

    @property
    def is_fp32(self) -> bool:
        return self.fmt is None

    def linear_grouping(self, axis: int) -> Grouping:
        """Grouping of a 2-D linear-layer operand whose GEMM reduces over ``axis``."""
        if self.block == 0 or self.grouping == Grouping.per_tensor():
            return Grouping.per_tensor()
        return Grouping.blocks(self.block, axis)

    def __str__(self) -> str:
        if self.fmt is None:
            return "fp32"
        return f"{self.fmt}/{self.rounding}"


def _parse_format(text: Any) -> MLSFormat | None:
    if isinstance(text, MLSFormat) or text is None:
        return text
    if not isinstance(text, str):
        raise TypeError(f"format must be a str such as 'e2m1g3' or 'fp32', not {text!r}")
    if text.strip().lower() in _FP32_NAMES:
        return None
    return MLSFormat.parse(text)


def _default_role(role: str, fmt: MLSFormat | None) -> RoleConfig:
    return RoleConfig(fmt, "stochastic" if role.startswith("e") else "nearest")


@dataclass(frozen=True)
class QuantConfig:
    """Per-role quantization of every conv (and non-skipped linear) layer. See the module doc."""

    a: RoleConfig
    w: RoleConfig
    e: RoleConfig
    w_bd: RoleConfig | None = None
    a_bw: RoleConfig | None = None
    e_bw: RoleConfig | None = None
    first_fp32: bool = False
    last_fp32: bool = True

    def __post_init__(self) -> None:
        for role in ROLES:
            value = getattr(self, role)
            if value is not None and not isinstance(value, RoleConfig):
                raise TypeError(f"role {role!r} must be a RoleConfig or None, not {value!r}")
        for name in ("first_fp32", "last_fp32"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, not {getattr(self, name)!r}")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def uniform(cls, fmt: MLSFormat | str | None, **overrides) -> QuantConfig:
        """Every role in one format, default roundings (nearest A/W, stochastic E)."""
        fmt = _parse_format(fmt)
        return cls(**{r: _default_role(r, fmt) for r in PRIMARY_ROLES}, **overrides)

    @classmethod
    def fp32(cls) -> QuantConfig:
        return cls.uniform(None)

    @classmethod
    def parse(cls, text: str | QuantConfig) -> QuantConfig:
        """Parse the string form (see the module doc). Errors name the offending item."""
        if isinstance(text, QuantConfig):
            return text
        if not isinstance(text, str):
            raise TypeError(f"quant config must be a str, not {text!r}")
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise ValueError("empty quant config; use e.g. 'fp32', 'e2m1g3' or 'a=e2m1g3,w=e2m1g3,e=e2m1g3'")
        settings: dict[str, dict[str, Any]] = {}
        flags: dict[str, bool] = {}
        for item in items:
            key, eq, value = (part.strip() for part in item.partition("="))
            key = key.lower()
            if not eq:
                if len(items) != 1:
                    raise ValueError(f"quant item {item!r} is not key=value")
                fmt = _parse_format(key)
                return cls.uniform(fmt)
            if key in ("first", "last"):
                flags[f"{key}_fp32"] = _parse_precision(key, value)
                continue
            role, dot, attr = key.partition(".")
            if role not in ROLES:
                raise ValueError(f"unknown quant role {role!r} in {item!r}; roles are {', '.join(ROLES)}")
            entry = settings.setdefault(role, {})
            if not dot:
                fmt_text, slash, rounding = value.partition("/")
                entry["format"] = fmt_text
                if slash:
                    entry["rounding"] = rounding
            elif attr in ("format", "rounding", "grouping"):
                entry[attr] = value
            elif attr in ("block", "sr_bits"):
                try:
                    entry[attr] = int(value)
                except ValueError:
                    raise ValueError(f"{key} must be an integer, got {value!r}") from None
            else:
                raise ValueError(f"unknown quant attribute {attr!r} in {item!r}; "
                                 "use format, rounding, grouping, block or sr_bits")
        return cls._from_settings(settings, flags)

    @classmethod
    def from_toml(cls, source: str | Path) -> QuantConfig:
        """Load from a TOML file path or TOML text (top level or a ``[quant]`` table)."""
        if isinstance(source, Path) or ("=" not in source and "[" not in source):
            try:
                text = Path(source).read_text()
            except OSError as error:
                raise ValueError(f"cannot read TOML quant config {str(source)!r}: {error.strerror}") from None
        else:
            text = source
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"invalid TOML quant config: {error}") from None
        if "quant" in data:
            data = data["quant"]
            if not isinstance(data, dict):
                raise TypeError(f"TOML key 'quant' must be a table ([quant]), got {type(data).__name__} {data!r}")
        settings, flags = {}, {}
        for key, value in data.items():
            if key in ("first", "last"):
                flags[f"{key}_fp32"] = _parse_precision(key, value)
            elif key in ROLES:
                if isinstance(value, str):
                    value = {"format": value}
                if not isinstance(value, dict):
                    raise TypeError(f"TOML quant role {key!r} must be a table or a format string, "
                                    f"got {type(value).__name__} {value!r}")
                unknown = set(value) - set(_TOML_ROLE_TYPES)
                if unknown:
                    raise ValueError(f"unknown keys {sorted(unknown)} in TOML quant role {key!r}")
                for attr, kind in _TOML_ROLE_TYPES.items():
                    if attr in value and (not isinstance(value[attr], kind) or isinstance(value[attr], bool)):
                        raise TypeError(f"TOML quant role {key!r} key {attr!r} must be {_TOML_TYPE_NAMES[kind]}, "
                                        f"got {type(value[attr]).__name__} {value[attr]!r}")
                settings[key] = dict(value)
            else:
                raise ValueError(f"unknown TOML quant key {key!r}; use first, last or a role ({', '.join(ROLES)})")
        return cls._from_settings(settings, flags)

    @classmethod
    def _from_settings(cls, settings: dict[str, dict[str, Any]], flags: dict[str, bool]) -> QuantConfig:
        missing = [r for r in PRIMARY_ROLES if "format" not in settings.get(r, {})]
        if missing:
            raise ValueError(f"quant config must give a format for roles {', '.join(missing)} "
                             "(or use a single format such as 'e2m1g3', or 'fp32')")
        roles: dict[str, RoleConfig | None] = {}
        for role in ROLES:
            entry = settings.get(role)
            if entry is None:
                roles[role] = None
                continue
            base = roles[SECONDARY_ROLES[role]] if role in SECONDARY_ROLES else None
            fmt_given = "format" in entry
            fmt = _parse_format(entry["format"]) if fmt_given else base.fmt
            start = _default_role(role, fmt) if base is None else dataclasses.replace(base, fmt=fmt)
            kwargs = {k: entry[k] for k in ("rounding", "grouping", "block", "sr_bits") if k in entry}
            if "grouping" in kwargs:
                kwargs["grouping"] = Grouping.parse(kwargs["grouping"])
            roles[role] = dataclasses.replace(start, **kwargs)
        return cls(**roles, **flags)

    # -- queries ----------------------------------------------------------------------------
    def role(self, name: str) -> RoleConfig:
        """The resolved setting of a role (secondary roles fall back to their primary)."""
        if name not in ROLES:
            raise ValueError(f"unknown role {name!r}; roles are {', '.join(ROLES)}")
        value = getattr(self, name)
        return value if value is not None else getattr(self, SECONDARY_ROLES[name])

    @property
    def is_fp32(self) -> bool:
        return all(self.role(r).is_fp32 for r in ROLES)

    def __str__(self) -> str:
        if self.is_fp32:
            return "fp32"
        parts = [f"{r}={self.role(r)}" for r in PRIMARY_ROLES]
        parts += [f"{r}={getattr(self, r)}" for r in SECONDARY_ROLES if getattr(self, r) is not None]
        parts += [f"first={'fp32' if self.first_fp32 else 'mls'}", f"last={'fp32' if self.last_fp32 else 'mls'}"]
        return ",".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description of every resolved role (for result files)."""
        out: dict[str, Any] = {"first_fp32": self.first_fp32, "last_fp32": self.last_fp32}
        for r in ROLES:
            rc = self.role(r)
            out[r] = {"format": str(rc.fmt) if rc.fmt else "fp32", "rounding": rc.rounding,
                      "grouping": str(rc.grouping), "block": rc.block, "sr_bits": rc.sr_bits}
        return out


def _parse_precision(key: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in _FP32_NAMES or text == "true":
        return True
    if text in ("mls", "quant", "false"):
        return False
    raise ValueError(f"{key} must be 'fp32' or 'mls', got {value!r}")
