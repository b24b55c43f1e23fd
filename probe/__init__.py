"""probe: unattended measurement of network interference (DNS, TCP, TLS, HTTP), in SQLite."""

__version__ = "0.1.0"
