"""Hypothesis strategies that several property tests share: addresses, ports, junk text, values."""

from __future__ import annotations

from hypothesis import strategies as st

ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
ports = st.integers(1, 65535)
junk = st.text(max_size=40)
values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), junk, st.lists(junk))
