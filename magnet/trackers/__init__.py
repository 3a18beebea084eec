"""Tracker protocols as sans-IO cores: what a URL names (``urls``), BEP 3/23 HTTP bodies
(``messages``) and BEP 15 UDP (``udp``). The asyncio drivers are in ``magnet.io``."""
