"""Free loopback port numbers for the interop tests and the benchmarks that reuse them."""

from __future__ import annotations

import socket


def free_tcp_udp_port(host: str = "127.0.0.1") -> int:
    """A port number free for both TCP and UDP (serve takes both: peers over TCP and uTP,
    and its DHT node)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise OSError("no port free for both TCP and UDP")
