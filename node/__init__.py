"""The running node: configuration, the aiohttp application, storage facade, CLI, metrics.

``node`` imports ``sync`` and ``crdt``; nothing imports ``node``.
"""
