"""Tracker protocols as sans-IO cores: BEP 3/23 HTTP bodies (``messages``) and BEP 15 UDP
(``udp``). The asyncio drivers are in ``magnet.io``."""
