"""``magnetar crawl``: a BEP 51 crawler of the Mainline DHT, with passive observation.

* ``scheduler`` — ``CrawlScheduler``, the sans-IO decisions: whom to ask, when, how fast.
* ``crawler`` — ``Crawler``, the asyncio driver over ``dht.Node`` sockets.
* ``store`` — ``CrawlStore``, the SQLite database (schema in its docstring), and ``export``.
* ``health`` — periodic summaries that say why a crawl finds little.

Heavy parts are imported by whoever needs them; importing this package is cheap.
"""
