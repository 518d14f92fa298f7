"""Storage: keyed records written in transactions, behind one small interface.

    base      the interface (``Storage``, ``Transaction``) and its contract
    disk      ``DiskStorage``: diskcache configured as a durable log (the default)
    memory    ``MemoryStorage``: a dict, for tests and throwaway nodes
    backends  which backend a location names (a folder, ``memory:``), and opening it
    lock      one process per data folder (an OS lock held while it is open)

Errors of SQLite, diskcache and the file system become ``crdt.errors.StorageUnavailable``
here and nowhere else.

May import: crdt
"""
