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

__all__ = ["ENGINE_DEFAULTS", "engine_factory", "config_to_json", "config_from_json"]

#: Board defaults: a configuration that fits the ULX3S 85F with room to spare.
ENGINE_DEFAULTS = {"fmt_a": "e2m1g3", "fmt_w": None, "rows": 2, "cols": 2, "lanes": 1, "group_len": 9,
                   "quant_lanes": 1, "a_depth": 256, "w_depth": 256, "acc_bits": None, "sr_bits": 8}


def config_to_json(config) -> dict:
    """The ``EngineConfig`` arguments as JSON (``config_from_json`` inverts it)."""
    return {"fmt_a": str(config.fmt_a), "fmt_w": str(config.fmt_w), "rows": config.rows, "cols": config.cols,
            "lanes": config.lanes, "group_len": config.group_len, "quant_lanes": config.quant_lanes,
            "a_depth": config.a_depth, "w_depth": config.w_depth, "acc_bits": config.acc_bits,
            "sr_bits": config.sr_bits}


def config_from_json(d: dict):
    from ..engine import EngineConfig
    return EngineConfig(d["fmt_a"], d["fmt_w"], rows=d["rows"], cols=d["cols"], lanes=d["lanes"],
                        group_len=d["group_len"], quant_lanes=d["quant_lanes"], a_depth=d["a_depth"],
                        w_depth=d["w_depth"], acc_bits=d["acc_bits"], sr_bits=d["sr_bits"])


def engine_factory(**options):
    """``(factory, description)`` of ``Engine(EngineConfig(**options))`` (``ENGINE_DEFAULTS`` fill
    what is not given; ``fmt_w`` None: A's format)."""
    from ..engine import Engine, EngineConfig
    from ..engine.build import engine_manifest

    unknown = set(options) - set(ENGINE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown engine options {sorted(unknown)}; known: {', '.join(ENGINE_DEFAULTS)}")
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
