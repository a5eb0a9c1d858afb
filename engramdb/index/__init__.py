"""In-memory indexes over one agent's memories, derived from the store of record.

:mod:`.vector` (FAISS), :mod:`.ball` (the Poincaré ball), :mod:`.filters`
(metadata predicates), :mod:`.hierarchy` (parent links as depth) and
:mod:`.view` (an agent's records, filter columns and indexes, kept in step
with the store).
"""
