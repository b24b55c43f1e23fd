"""Profile policy: what each profile (``default``, ``mobile``) changes in the defaults.

Contract: :data:`DAILY_CAPS` gives every profile's daily data cap (each profile has one, so data
use is bounded whatever the target list), and :data:`PROFILE_DEFAULTS` the other defaults a
profile replaces, by option name (:data:`probe.config.options.OPTIONS`). Both apply only to
settings left at their default: a value given by a flag, a variable or the file wins. Data only.
"""

from __future__ import annotations

from typing import Any

MOBILE_DAILY_CAP = 25 * 1000 * 1000
# Every profile has a daily cap, so data use is bounded whatever the target list: a longer list
# rotates its throughput tests over the days (least recently tested first) instead of using
# more. The default's leaves the default targets' pages (54 MB a day) and about 57 throughput
# tests a day, the mobile one's 13 MB and about 7 (README, "Data budget").
DAILY_CAPS: dict[str, int] = {"default": 500 * 1000 * 1000, "mobile": MOBILE_DAILY_CAP}

# What the mobile profile changes beyond the daily cap: fewer, smaller rounds, so that the
# default targets stay under MOBILE_DAILY_CAP a day (measured by bench/budget.py; README,
# "Data budget").
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "mobile": {
        "interval": 3 * 3600.0,
        "throughput_interval": 24 * 3600.0,
        "max_body": 96 * 1024,
    },
}


def apply_profile(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Give the settings still at their default (``sources[name] == "default"``) the profile's
    value, in place, each with the profile named as its source. A daily cap given as "none"
    is not a default: it lifts the cap."""
    profile = values["profile"]
    why = f"default ({profile} profile)"
    if sources["max_bytes_per_day"] == "default":
        values["max_bytes_per_day"], sources["max_bytes_per_day"] = DAILY_CAPS[profile], why
    for name, value in PROFILE_DEFAULTS.get(profile, {}).items():
        if sources.get(name) == "default":
            values[name], sources[name] = value, why
