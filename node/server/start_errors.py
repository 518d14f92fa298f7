"""The errors of a node's start (``node.server.run.start``), in a module of their own: the
start and what it does to the data folder (``node.server.folders``) both raise them."""

from __future__ import annotations


class StartError(Exception):
    """The node could not start: its data folder is held by another process, its port is
    taken, its storage cannot be opened. The message says which, in one line."""


class FolderTaken(StartError):
    """Another process holds the data folder: what is in it is that node's."""
