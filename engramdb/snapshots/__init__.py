"""Snapshots: an agent's whole memory in one verifiable, optionally encrypted file.

:mod:`.format` lays the file out, :mod:`.manifest` describes it, :mod:`.codecs`
encode vectors, :mod:`.crypto` seals parts, :mod:`.checks` verifies a decoded
file and :mod:`.io` exports and imports through the engine's port.
"""
