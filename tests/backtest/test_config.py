"""Config reading: every bad value is refused with the dotted key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.config import Config, config_from_mapping, config_to_dict, load_config
from backtest.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[fees]\ntaker_bsp = 5\n", "fees.taker_bsp", "unknown key"),
        ("[feez]\ntaker_bps = 5\n", "feez", "unknown section"),
        ("[fees]\ntaker_bps = -1\n", "fees.taker_bps", "expected 0..1000 bps, got -1"),
        ("[fees]\ntaker_bps = \"five\"\n", "fees.taker_bps", "expected a number"),
        ("[futures]\ncontract_size = 0\n", "futures.contract_size", "expected > 0"),
        ("[scenario]\nstart = \"2024-05-01\"\nend = \"2024-01-01\"\n", "scenario.end", "not after start"),
        ("[scenario]\nstart = \"yesterday-ish\"\n", "scenario.start", "expected an ISO 8601 date"),
        ("[scenario]\nbar = \"5m\"\n", "scenario.bar", "one of '1h', '1D'"),
        ("[margin]\nmaintenance_rate = 0.1\ninitial_rate = 0.05\n", "margin.initial_rate", "maintenance_rate"),
        ("[rebalance]\nevery_bars = 0\n", "rebalance.every_bars", ">= 1"),
        ("[rebalance]\nwhole_contracts = 1\n", "rebalance.whole_contracts", "true or false"),
        ("[position]\ncoins = [\"FET\"]\nunits = [1, 2]\n", "position.units", "one value per coin"),
        ("[roll]\nhour_utc = 24\n", "roll.hour_utc", "0..23"),
        ("[[rules]]\nfraction = 1.0\n", "rules[0].family", "required"),
        ("[[rules]]\nfamily = \"notional\"\nlabel = \"\"\n", "rules[0].label", "expected a non-empty string"),
        ("[index]\nmax_weight = 1.5\n", "index.max_weight", "(0, 1]"),
        ("[funding]\ninterval_hours = 7\n", "funding.interval_hours", "one of"),
    ],
)
def test_bad_values_name_the_key_and_file(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.key == key
    assert f"'{key}'" in message and str(path) in message and fragment in message
    assert "\n" not in message


def test_not_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "this is = = not toml"))


def test_defaults_are_the_documented_ones() -> None:
    c = Config()
    assert c.fees.taker_bps == 5.0 and c.fees.maker_bps == 2.0
    assert c.funding.interval_hours == 8 and c.funding.rate_per_interval == 0.0001
    assert c.margin.maintenance_rate == 0.02 and c.margin.initial_rate == 0.05
    assert c.futures.kind == "quarterly" and c.roll.days_before_expiry == 3


def test_round_trip_through_dict_is_lossless(tmp_path: Path) -> None:
    import tomllib

    path = _write(tmp_path, '[fees]\ntaker_bps = 4\n[[rules]]\nfamily = "ewma"\nhalflife = 24\nlabel = "fast"\n')
    config = load_config(path)
    as_dict = config_to_dict(config)
    again = config_from_mapping(as_dict, base_dir=tmp_path)
    assert config_to_dict(again) == as_dict
    assert as_dict["rules"] == [{"family": "ewma", "label": "fast", "halflife": 24}]
    assert tomllib  # the reader is TOML only


@pytest.mark.parametrize("value", ["01/08/2024", "1.8.2024", "", "2024-8-1", "yesterday"])
def test_dates_are_iso_8601_only(value: object) -> None:
    from backtest.config import config_from_mapping

    with pytest.raises(ConfigError, match=r"scenario.start.*ISO 8601 date such as '2024-08-01'"):
        config_from_mapping({"scenario": {"start": value}})


def test_toml_dates_and_datetimes_are_accepted_everywhere(tmp_path) -> None:
    import pandas as pd

    from backtest.config import load_config

    path = tmp_path / "s.toml"
    path.write_text("[scenario]\nstart = 2024-08-01\nend = 2024-09-01T12:00:00Z\n"
                    "[events.mine]\ntitle = 'x'\nstart = 2024-08-02\nend = 2024-08-03T00:00:00+02:00\n")
    config = load_config(path)
    assert config.scenario.start_ts == pd.Timestamp("2024-08-01", tz="UTC")
    assert config.scenario.end_ts == pd.Timestamp("2024-09-01 12:00", tz="UTC")
    path.write_text("[scenario]\nstart = 2024-08-01T08:00:00\n")
    with pytest.raises(ConfigError, match="no time zone; write it in UTC, e.g. '2024-08-01T08:00:00Z'"):
        load_config(path)


def test_band_given_as_percent_is_refused_with_the_hint() -> None:
    from backtest.config import config_from_mapping

    with pytest.raises(ConfigError, match=r"rebalance.band.*for 10 % write 0.1"):
        config_from_mapping({"rebalance": {"mode": "band", "band": 10}})


def test_event_windows_are_checked_when_the_config_loads(tmp_path, monkeypatch) -> None:
    """A bad ``[events.<name>]`` window is a ConfigError naming the file and the key at load,
    before any data is read or any rule replayed (it used to surface at the report)."""
    import backtest.results
    from backtest.config import load_config

    path = tmp_path / "s.toml"
    path.write_text("[events.late]\nstart = 2024-05-01\nend = 2023-01-01\n")
    monkeypatch.setattr(backtest.results, "run", lambda *a, **k: pytest.fail("the run started"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "events.late.end" and info.value.source == str(path)
    with pytest.raises(ConfigError, match="events.x.colour.*unknown key"):
        config_from_mapping({"events": {"x": {"start": "2024-01-01", "end": "2024-01-02", "colour": "red"}}})
    import backtest as hb

    with pytest.raises(ConfigError, match="events.late.end"):
        hb.run(None, events={"late": {"start": "2024-05-01", "end": "2023-01-01"}})


def test_numpy_numbers_in_overrides_count_as_python_numbers() -> None:
    """``hb.run(..., rebalance={"every_bars": np.int64(72)})`` from a NumPy sweep: the values are
    taken as the Python numbers they hold, and a bad one is still refused, the message saying the
    overrides were applied to the file."""
    import numpy as np

    from backtest.api import bundled_scenario

    path = bundled_scenario("demo.toml")
    config = load_config(path, rebalance={"every_bars": np.int64(72)}, margin={"reserve_usd": np.float32(0.5)},
                         fees={"taker_bps": np.int64(5)})
    assert config.rebalance.every_bars == 72 and type(config.rebalance.every_bars) is int
    assert config.margin.reserve_usd == 0.5 and type(config.margin.reserve_usd) is float
    assert config_to_dict(config) == config_to_dict(load_config(path, rebalance={"every_bars": 72},
                                                                margin={"reserve_usd": 0.5}, fees={"taker_bps": 5}))
    with pytest.raises(ConfigError, match=r"\(with overrides of fees\): config key 'fees.taker_bps': expected a finite"):
        load_config(path, fees={"taker_bps": np.float64("nan")})
    with pytest.raises(ConfigError, match="rebalance.every_bars"):
        load_config(path, rebalance={"every_bars": np.array([1, 2])})
