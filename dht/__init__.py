"""magnetar's BitTorrent Mainline DHT (BEP 5 and friends).

The protocol logic lives in sans-IO cores (``dht.protocol.DhtProtocol`` and the units it is
built from); ``dht.Node`` drives one over an asyncio UDP socket, and ``dht.simulation`` drives
many on a virtual clock.
"""
