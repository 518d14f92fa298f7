"""The automerge-repo protocol: one ``RepoConnection`` machine per websocket client.

    messages    join / peer / request / sync / doc-unavailable / ephemeral, and their parser
    connection  ``RepoConnection``: frames in, an ``Outcome`` out (frames, edits, notes)
    host        what the machine and its host exchange: ``Library``, ``Outcome``, close codes
    edits       a client's document changes turned into events, or put back
    config      client tokens (``Access``) and what one client may cost (``RepoLimits``)

Documents come in through the ``Library`` interface (``node.automerge.library`` has it);
the node's websocket (``node.automerge``) moves the frames.

May import: crdt, crdt.automerge, sync
"""
