"""The network side: which URLs may be fetched, the guarded HTTP client, per-host limits, the
downloader and its extra download processes."""
