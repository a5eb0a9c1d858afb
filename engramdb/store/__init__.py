"""The store of record: the only code that calls LanceDB.

One LanceDB table holds every memory of a store; :class:`MemoryTable` owns it
(writes, commit counting and compaction, versions and tags), :mod:`.meta` the
store's metadata file, :mod:`.opening` the order a store is created and checked
in, :mod:`.lock` the single-writer lock of a local store and :mod:`.lease` that
of a store on object storage, :mod:`.location` where a store lives (a directory
or an ``s3://`` URI and its storage options), :mod:`.objects` the small objects
kept beside a remote table, and :mod:`.guard` the one boundary where LanceDB and
OS errors become engramdb errors. All object-storage I/O happens here.
"""
