"""magnetar's magnet-link resolver: magnet URIs, the peer wire and metadata exchange."""
