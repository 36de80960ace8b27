"""Build the engine of ``hw.engine`` (``Engine(EngineConfig(...))``) for the board flow.

The host bridge needs no adapter logic: every member of the engine's signature becomes a bridge
port (``a``, ``w``: FIFOs; ``c``: a captured FIFO; ``cmd``, ``start``, ``inv``, ``seed``,
``scale_a``, ``scale_w``: registers the host sets or pulses; ``busy``, ``done``, ``amax``, ``flags``:
read back). The manifest's ``design`` entry is ``hw.engine.build.engine_manifest`` (the
configuration, the limits, the command and flags layouts by field name, the engine's ports) plus
``design: "engine"`` and ``config`` (the ``EngineConfig`` arguments), so that a host
(``hw.fpga.engine_host``) can rebuild the configuration and pack ``cmd`` by field name.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ENGINE_DEFAULTS", "engine_factory", "config_to_json", "config_from_json"]

#: Board defaults: a configuration that fits the ULX3S 85F with room to spare. Every other
#: ``EngineConfig`` field keeps the dataclass's default.
ENGINE_DEFAULTS = {"fmt_a": "e2m1g3", "fmt_w": None, "rows": 2, "cols": 2, "lanes": 1, "group_len": 9,
                   "quant_lanes": 1, "a_depth": 256, "w_depth": 256}


def config_to_json(config) -> dict:
    """Every ``EngineConfig`` field as JSON (formats by name); ``config_from_json`` inverts it."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        out[field.name] = str(value) if field.name in ("fmt_a", "fmt_w") else value
    return out


def config_from_json(d: dict):
    """The ``EngineConfig`` of a manifest's ``design.config`` (a field it lacks keeps its default;
    a field this checkout does not know is an error naming it)."""
    from ..engine import EngineConfig
    known = {f.name for f in dataclasses.fields(EngineConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"the manifest's engine configuration has fields {unknown} this checkout's "
                         f"EngineConfig does not know (known: {', '.join(sorted(known))})")
    return EngineConfig(**d)


def engine_factory(**options):
    """``(factory, description)`` of ``Engine(EngineConfig(**options))`` (``ENGINE_DEFAULTS`` fill
    what is not given or None; ``fmt_w`` None: A's format)."""
    from ..engine import Engine, EngineConfig
    from ..engine.build import engine_manifest

    known = {f.name for f in dataclasses.fields(EngineConfig)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown engine options {sorted(unknown)}; known: {', '.join(sorted(known))}")
    opts = {**ENGINE_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    fmt_a = opts.pop("fmt_a")
    fmt_w = opts.pop("fmt_w") or fmt_a
    config = EngineConfig(fmt_a, fmt_w, **opts)
    probe = Engine(config)
    probe._MustUse__silence = True   # only read for the manifest, never elaborated
    description = {"design": "engine", "component": f"{Engine.__module__}.{Engine.__qualname__}",
                   "format": str(config.fmt_a) if config.fmt_a == config.fmt_w else f"{config.fmt_a}x{config.fmt_w}",
                   "config": config_to_json(config), **engine_manifest(probe, "engine")}
    description["design"] = "engine"   # engine_manifest's "target"/"toplevel" stay as written

    def factory():
        return Engine(config)
    return factory, description
