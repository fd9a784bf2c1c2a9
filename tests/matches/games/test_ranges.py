"""Config ranges: every key of every game has one, values outside are refused by name, the
operator's ranges are checked against what the games can play, and the seats' CPU limit
follows from the time controls' ranges."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from protocol.errors import ConfigError, ConfigOutOfRange
from server.config import Settings, load_settings
from server.matches.games import (
    COMMON_RANGES,
    GAMES,
    ConfigRange,
    ConfigRanges,
    ConnectX,
    RockPaperScissors,
    TicTacToe,
    resolve_config,
)
from server.matches.games.ranges import TIME_CONTROL_LIMITS
from server.sandbox import Limits
from server.sandbox.limits import seat_cpu_s


@pytest.mark.parametrize("game", list(GAMES.values()), ids=lambda g: g.name)
def test_every_numeric_key_of_every_game_has_a_range_holding_its_default(game: Any) -> None:
    ranges = game.ranges()
    for key, default in game.config_defaults().items():
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert key in ranges, key
            assert default in ranges[key], (key, default, ranges[key])


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("actTimeout", "NaN", r"config actTimeout must be a finite number in 0\.001\.\.60, got 'NaN'"),
        ("actTimeout", "inf", r"config actTimeout must be a finite number in 0\.001\.\.60, got 'inf'"),
        ("agentTimeout", "-Infinity", r"config agentTimeout must be a finite number in 0\.001\.\.60"),
        ("runTimeout", "1e400", r"config runTimeout must be a finite number in 0\.001\.\.3600, got '1e400'"),
        ("runTimeout", math.nan, r"config runTimeout must be a finite number in 0\.001\.\.3600, got nan"),
        ("runTimeout", math.inf, r"config runTimeout must be a finite number"),
        ("remainingOverageTime", 1e9, r"config remainingOverageTime must be in 0\.\.600, got 1000000000\.0"),
        ("remainingOverageTime", 10**400, r"config remainingOverageTime must be a finite number in 0\.\.600, got 1000"),
        ("episodeSteps", 2**63, r"config episodeSteps must be in 2\.\.10000, got 9223372036854775808"),
        ("episodeSteps", 1, r"config episodeSteps must be in 2\.\.10000, got 1"),
        ("episodeSteps", True, r"config episodeSteps must be an integer in 2\.\.10000, got True"),
        ("episodeSteps", 50.0, r"config episodeSteps must be an integer in 2\.\.10000, got 50\.0"),
        ("episodeSteps", "9" * 5000, r"config episodeSteps must be an integer in 2\.\.10000, got '9999"),
        ("actTimeout", False, r"config actTimeout must be a finite number in 0\.001\.\.60, got False"),
        ("actTimeout", None, r"config actTimeout must be a finite number in 0\.001\.\.60, got None"),
        ("actTimeout", [1], r"config actTimeout must be a finite number in 0\.001\.\.60, got \[1\]"),
        ("actTimeout", {"a": 1}, r"config actTimeout must be a finite number"),
        ("signs", 6, r"config signs must be in 3\.\.5, got 6"),
        ("tieRewardThreshold", -1, r"config tieRewardThreshold must be in 1\.\.1000, got -1"),
    ],
)
def test_bad_values_name_the_key_and_the_range(key: str, raw: object, message: str) -> None:
    with pytest.raises(ConfigOutOfRange, match=message) as caught:
        resolve_config(RockPaperScissors, {key: raw})
    assert caught.value.key == key
    assert [caught.value.low, caught.value.high] == RockPaperScissors.ranges()[key].to_json()


def test_a_refused_value_is_quoted_short() -> None:
    with pytest.raises(ConfigOutOfRange) as caught:
        resolve_config(ConnectX, {"rows": "x" * 1_000_000})
    assert len(str(caught.value)) < 200


def test_a_deeply_nested_value_is_refused_not_crashed() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]
    with pytest.raises(ConfigOutOfRange, match="got a list"):
        resolve_config(ConnectX, {"rows": value})


def test_values_at_the_bounds_are_accepted() -> None:
    low = {key: bounds.low for key, bounds in COMMON_RANGES.items()}
    high = {key: bounds.high for key, bounds in COMMON_RANGES.items()}
    assert resolve_config(TicTacToe, low)["episodeSteps"] == 2
    assert resolve_config(TicTacToe, high)["runTimeout"] == 3600.0
    assert resolve_config(TicTacToe, {"actTimeout": "0.5", "episodeSteps": "20"}) | {} == {
        **TicTacToe.config_defaults(), "actTimeout": 0.5, "episodeSteps": 20}


def test_operator_ranges_apply_to_every_game_or_one() -> None:
    ranges = ConfigRanges.from_table({"episodeSteps": [2, 2000], "connectx": {"rows": [4, 10]}})
    ranges.check(GAMES)
    rps = ranges.for_game(RockPaperScissors)
    assert rps["episodeSteps"] == ConfigRange(2, 2000)
    assert ranges.for_game(ConnectX)["rows"] == ConfigRange(4, 10)
    with pytest.raises(ConfigOutOfRange, match=r"config episodeSteps must be in 2\.\.2000, got 2001"):
        resolve_config(RockPaperScissors, {"episodeSteps": 2001}, rps)
    with pytest.raises(ConfigOutOfRange, match=r"config rows must be in 4\.\.10, got 11"):
        resolve_config(ConnectX, {"rows": 11}, ranges.for_game(ConnectX))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"episodeStep": [2, 10]}, "unknown key 'episodeStep' in \\[config_ranges\\]; known keys: .*episodeSteps"),
        ({"chess": {"rows": [1, 2]}}, "unknown game 'chess'"),
        ({"rps": {"rows": [1, 2]}}, "unknown key 'rows' in \\[config_ranges.rps\\]"),
        ({"signs": [3, 9]}, r"signs = \[3, 9\] for rps is wider than 3\.\.5"),
        ({"episodeSteps": [1, 100]}, r"wider than 2\.\.10000000"),
        ({"rows": [1, 2], "columns": [1, 2]}, r"connectx's defaults make no match: config inarow must be in 1\.\.2"),
        ({"episodeSteps": [2, 2000.5]}, "episodeSteps is an integer, so are its bounds"),
        ({"runTimeout": [0, 1e6]}, r"wider than 0\.\.86400"),
        ({"runTimeout": [10, 1]}, "low <= high"),
        ({"runTimeout": [0, "x"]}, "two finite numbers"),
        ({"runTimeout": 5}, r"config_ranges.runTimeout must be \[LOW, HIGH\]"),
    ],
)
def test_bad_operator_ranges_are_refused(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(config_ranges=ConfigRanges.from_table(table))


def test_a_default_outside_the_operators_range_moves_to_its_nearest_bound() -> None:
    ranges = ConfigRanges.from_table(
        {"runTimeout": [1, 300], "episodeSteps": [2000, 5000], "connectx": {"rows": [8, 9]}})
    Settings(config_ranges=ranges)
    config = resolve_config(ConnectX, None, ranges.for_game(ConnectX))
    assert config["runTimeout"] == 300.0 and type(config["runTimeout"]) is float
    assert config["episodeSteps"] == 2000 and config["rows"] == 8 and config["columns"] == 7
    assert resolve_config(RockPaperScissors, {"runTimeout": 2}, ranges.for_game(RockPaperScissors))["runTimeout"] == 2.0


class Plugin(TicTacToe):
    """A plugin game with keys it declares no range for."""

    name: ClassVar[str] = "plugin"
    default_config: ClassVar[Mapping[str, Any]] = {"size": 3, "label": "x", "fast": False}


def test_a_key_without_a_declared_range_takes_its_default_until_the_operator_opens_it() -> None:
    ranges = Plugin.ranges()
    assert ranges["size"] == ConfigRange(3, 3) and ranges["label"] == ConfigRange(0, 1000) and "fast" not in ranges
    with pytest.raises(ConfigOutOfRange, match=r"config size must be in 3\.\.3, got 4"):
        resolve_config(Plugin, {"size": 4})
    with pytest.raises(ConfigOutOfRange, match=r"config label must be text of 0\.\.1000 characters, got 'yyyy"):
        resolve_config(Plugin, {"label": "y" * 1001})
    with pytest.raises(ConfigOutOfRange, match=r"config fast must be true or false, got 1"):
        resolve_config(Plugin, {"fast": 1})
    assert resolve_config(Plugin, {"fast": "true", "label": "z"})["fast"] is True
    opened = ConfigRanges.from_table({"plugin": {"size": [1, 9]}})
    opened.check({**GAMES, "plugin": Plugin})
    assert resolve_config(Plugin, {"size": 9}, opened.for_game(Plugin))["size"] == 9


def test_time_control_limits_hold_the_default_ranges() -> None:
    for key, bounds in COMMON_RANGES.items():
        assert bounds.is_within(TIME_CONTROL_LIMITS[key])


# -- the seats' CPU limit ---------------------------------------------------------------------------


def test_the_cpu_limit_covers_every_match_the_default_ranges_allow() -> None:
    settings = Settings()
    longest_wall_s = COMMON_RANGES["agentTimeout"].high + COMMON_RANGES["runTimeout"].high
    assert settings.limits.cpu_s >= longest_wall_s + 2 * settings.limits.grace_s
    # Issue 10's bot: 0.3 s of CPU a move, well inside actTimeout 1 s, for a whole rps episode
    # (999 moves) used 300 s, and forfeited at move 343 under the old fixed 120 s.
    rps = resolve_config(RockPaperScissors, None)
    assert 0.3 * (rps["episodeSteps"] - 1) > 120
    assert settings.limits.cpu_s > 0.3 * (rps["episodeSteps"] - 1)
    # Whatever any game's defaults allow a seat to think (its moves end by runTimeout) fits.
    for game in GAMES.values():
        config = resolve_config(game, None)
        thinking_s = min(config["runTimeout"], (config["episodeSteps"] - 1) * config["actTimeout"]
                         + config["remainingOverageTime"]) + config["agentTimeout"]
        assert thinking_s < settings.limits.cpu_s, game.name


def test_the_cpu_limit_follows_the_operators_ranges() -> None:
    small = Settings(config_ranges=ConfigRanges.from_table({"runTimeout": [0.001, 600], "agentTimeout": [0.001, 10]}))
    assert small.limits.cpu_s == seat_cpu_s(10, 600, small.limits.grace_s) == 612
    large = Settings(config_ranges=ConfigRanges.from_table({"rps": {"runTimeout": [1, 7200]}}))
    assert large.limits.cpu_s == seat_cpu_s(60, 7200, large.limits.grace_s)
    # Whatever was passed in, the limit is the derived one: it cannot be set below the time controls.
    forced = Settings(limits=Limits(cpu_s=5, memory_mb=512))
    assert forced.limits.cpu_s == Settings().limits.cpu_s and forced.limits.memory_mb == 512


def test_settings_file_ranges_operators_and_no_hand_set_cpu_limit(tmp_path: Path) -> None:
    path = tmp_path / "arena.toml"
    path.write_text('operators = [1, 7]\n\n[config_ranges]\nrunTimeout = [1, 900]\n\n'
                    '[config_ranges.connectx]\nrows = [4, 12]\n', encoding="utf-8")
    settings = load_settings(path)
    assert settings.operators == (1, 7)
    assert settings.config_ranges.for_game(ConnectX)["rows"] == ConfigRange(4, 12)
    assert settings.limits.cpu_s == seat_cpu_s(60, 900, settings.limits.grace_s)
    path.write_text("[limits]\ncpu_s = 120\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="limits.cpu_s' is not set by hand: it follows from the time controls"):
        load_settings(path)
    path.write_text('operators = ["alice"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="operators' must be a list of user ids"):
        load_settings(path)
