"""QuantConfig: string and TOML forms, defaults, role resolution, clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from model.config import ROLES, QuantConfig, RoleConfig
from model.formats import MLSFormat
from model.grouping import Grouping


def test_three_role_string_and_defaults():
    cfg = QuantConfig.parse("a=e2m1g3,w=e4m3g2,e=e5m2g3")
    assert (cfg.a.fmt, cfg.w.fmt, cfg.e.fmt) == (MLSFormat(2, 1, 3), MLSFormat(4, 3, 2), MLSFormat(5, 2, 3))
    assert (cfg.a.rounding, cfg.w.rounding, cfg.e.rounding) == ("nearest", "nearest", "stochastic")
    assert cfg.a.grouping == Grouping.channel() and cfg.a.block == 32 and cfg.e.sr_bits == 8
    assert cfg.first_fp32 is False and cfg.last_fp32 is True
    # secondary roles fall back to their primary
    assert cfg.role("w_bd") == cfg.w and cfg.role("a_bw") == cfg.a and cfg.role("e_bw") == cfg.e


def test_shorthands():
    assert QuantConfig.parse("e2m1g3") == QuantConfig.uniform("e2m1g3") == QuantConfig.parse("a=e2m1g3,w=e2m1g3,e=e2m1g3")
    fp = QuantConfig.parse("fp32")
    assert fp.is_fp32 and fp == QuantConfig.fp32() and str(fp) == "fp32"
    assert not QuantConfig.parse("e2m1g3").is_fp32
    assert QuantConfig.parse("a=fp32,w=e2m1g3,e=fp32").a.fmt is None


def test_attributes_and_secondary_roles():
    cfg = QuantConfig.parse("a=e2m1g3,w=e2m1g3,e=e3m3g3/nearest, a.grouping=channel:4, a.block=16, e.sr_bits=12,"
                            "e_bw=e4m3g3, e_bw.rounding=stochastic, w_bd.grouping=tensor, first=fp32, last=mls")
    assert cfg.e.rounding == "nearest" and cfg.e.sr_bits == 12
    assert cfg.a.grouping == Grouping.channel(4) and cfg.a.block == 16
    e_bw = cfg.role("e_bw")
    assert e_bw.fmt == MLSFormat(4, 3, 3) and e_bw.rounding == "stochastic" and e_bw.sr_bits == 12  # inherits sr_bits
    w_bd = cfg.role("w_bd")
    assert w_bd.fmt == cfg.w.fmt and w_bd.grouping == Grouping.per_tensor()
    assert cfg.first_fp32 is True and cfg.last_fp32 is False
    assert "e_bw=e4m3g3/stochastic" in str(cfg)


def test_frozen_and_hashable():
    cfg = QuantConfig.parse("e2m1g3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.a = cfg.w
    assert hash(cfg) == hash(QuantConfig.parse("e2m1g3"))


def test_toml_text_and_file(tmp_path):
    text = """
[quant]
first = "fp32"
last = "mls"
a = "e2m1g3"
[quant.w]
format = "e4m3g3"
grouping = "channel:2"
[quant.e]
format = "e5m2g3"
rounding = "nearest"
sr_bits = 10
[quant.e_bw]
rounding = "stochastic"
"""
    cfg = QuantConfig.from_toml(text)
    path = tmp_path / "q.toml"
    path.write_text(text)
    assert QuantConfig.from_toml(path) == cfg == QuantConfig.from_toml(str(path))
    assert cfg.a.fmt == MLSFormat(2, 1, 3) and cfg.w.grouping == Grouping.channel(2)
    assert cfg.e.rounding == "nearest" and cfg.role("e_bw").rounding == "stochastic"
    assert cfg.role("e_bw").fmt == cfg.e.fmt and cfg.role("e_bw").sr_bits == 10
    assert cfg.first_fp32 and not cfg.last_fp32


def test_to_dict_lists_every_role():
    d = QuantConfig.parse("a=e2m1g3,w=e2m1g3,e=fp32").to_dict()
    assert set(ROLES) <= set(d) and d["e"]["format"] == "fp32" and d["a"]["grouping"] == "channel"


@pytest.mark.parametrize("text,message", [
    ("", r"empty quant config"),
    ("a=e2m1g3,w=e2m1g3", r"must give a format for roles e"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3,x=e2m1g3", r"unknown quant role 'x' in 'x=e2m1g3'"),
    ("a=e2m1g3,w=e2m1g3,e=e9m1g3", r"exp_bits must be in \[0, 5\], got 9"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3/round", r"rounding must be one of \('nearest', 'stochastic'\), got 'round'"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3,a.grouping=block:4", r"conv grouping must be 'channel\[:Gc\]' or 'tensor', got 'block:4'"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3,a.block=x", r"a.block must be an integer, got 'x'"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3,e.sr_bits=30", r"sr_bits must be in \[1, 24\], got 30"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3,a.colour=red", r"unknown quant attribute 'colour'"),
    ("a=e2m1g3,w=e2m1g3,e=e2m1g3,first=maybe", r"first must be 'fp32' or 'mls', got 'maybe'"),
    ("e2m1g3,fp32", r"quant item 'e2m1g3' is not key=value"),
    ("bogus", r"format name 'bogus' does not match"),
])
def test_parse_errors_name_the_item(text, message):
    with pytest.raises(ValueError, match=message):
        QuantConfig.parse(text)


def test_toml_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown TOML quant key 'b'"):
        QuantConfig.from_toml('b = "e2m1g3"\n')
    with pytest.raises(ValueError, match=r"unknown keys \['fmt'\] in TOML quant role 'a'"):
        QuantConfig.from_toml('[a]\nfmt = "e2m1g3"\n')
    with pytest.raises(ValueError, match=r"invalid TOML quant config"):
        QuantConfig.from_toml("a = [\n")
    with pytest.raises(ValueError, match=r"cannot read TOML quant config .*missing.toml"):
        QuantConfig.from_toml(str(tmp_path / "missing.toml"))


def test_role_config_validation():
    with pytest.raises(ValueError, match=r"block must be in \[0, 1048576\], got -1"):
        RoleConfig(MLSFormat(2, 1, 3), block=-1)
    with pytest.raises(TypeError, match=r"sr_bits must be an int, not 2.5"):
        RoleConfig(MLSFormat(2, 1, 3), sr_bits=2.5)
    assert RoleConfig("e2m1g3").fmt == MLSFormat(2, 1, 3) and RoleConfig("fp32").is_fp32
    with pytest.raises(ValueError, match=r"unknown role 'z'"):
        QuantConfig.parse("e2m1g3").role("z")


@pytest.mark.parametrize("text,message", [
    ("quant = 5", "TOML key 'quant' must be a table ([quant]), got int 5"),
    ("quant = [1, 2]", "TOML key 'quant' must be a table ([quant]), got list [1, 2]"),
    ('a = 5\nw = "e2m1g3"\ne = "e2m1g3"', "TOML quant role 'a' must be a table or a format string, got int 5"),
    ('a = "e2m1g3"\nw = "e2m1g3"\n[e]\nformat = "e2m1g3"\ngrouping = 5',
     "TOML quant role 'e' key 'grouping' must be a string, got int 5"),
    ('a = "e2m1g3"\nw = "e2m1g3"\n[e]\nformat = "e2m1g3"\nsr_bits = true',
     "TOML quant role 'e' key 'sr_bits' must be an integer, got bool True"),
    ('a = "e2m1g3"\nw = "e2m1g3"\n[e]\nformat = "e2m1g3"\nrounding = 1.5',
     "TOML quant role 'e' key 'rounding' must be a string, got float 1.5"),
])
def test_toml_values_of_the_wrong_type_name_the_key_and_type(text, message):
    with pytest.raises(TypeError) as info:
        QuantConfig.from_toml(text)
    assert str(info.value) == message
