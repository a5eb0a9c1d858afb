"""The store of record: the only code that calls LanceDB.

One LanceDB table holds every memory of a store; :class:`MemoryTable` owns it
(writes, commit counting and compaction, versions and tags), :mod:`.meta` the
store's metadata file, :mod:`.opening` the order a store is created and checked
in, :mod:`.lock` the single-writer lock, and :mod:`.guard` the one boundary where
LanceDB and OS errors become engramdb errors.
"""
