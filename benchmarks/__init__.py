"""Side-by-side benchmarks of mediastore against the commands a user would run instead.

Run from the repository root::

    python -m benchmarks [--quick] [--only CASE] [--runs N] [--workdir DIR] [--keep]

Every case times a mediastore call and its reference (``md5sum``, ``curl``, raw ``sqlite3``,
the old script's ``requests`` loop...) in the same run, on data made in a fresh directory, and
reports the median throughput of each side, their ratio and the target ratio. A full run
writes ``benchmarks/RESULTS.md``; ``--quick`` and ``--only`` runs write ``RESULTS-quick.md``
or ``RESULTS-partial.md`` under ``<temp dir>/mediastore-benchmarks/``.

Modules:
    config   sizes of the full and quick runs, paths of the work directory
    data     the data sets (1 GiB video, JPEGs, 1M-row catalog, legacy cache, a store to verify)
    servers  nginx (or a threaded Python ``sendfile`` server) on loopback
    fileserver  the Python fallback server itself (run as its own process)
    measure  timing, page-cache warming, worker processes, medians
    worker   the timed calls, run in a fresh interpreter (peak RSS per call)
    cases    the cases, their references and targets
    report   machine facts, the console table and the Markdown results
"""

__all__: list[str] = []
