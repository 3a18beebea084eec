"""Drivers: the asyncio, socket, clock and file side of the package."""
