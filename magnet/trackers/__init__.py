"""Tracker protocols as sans-IO cores: what a URL names (``urls``), the shared request and
answer types (``messages``), BEP 3/23/48 over HTTP (``http``) and BEP 15 over UDP (``udp``).
The asyncio drivers are in ``magnet.io``."""
