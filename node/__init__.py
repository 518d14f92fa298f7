"""node: the running process. It wires the protocols of ``sync`` to sockets, the disk and
the event loop. Nothing imports ``node``.

    config.py   the configuration root: every setting, its default and its trade-off
    limits.py   the limits of a node and of its clients, the tables of the --config file
    checks.py   checks of tokens, secrets and addresses, shared with the client commands
    headers.py  the names of the client API's own headers, sent by the node, read by clients
    json_numbers.py  NaN, Infinity and overflowing numbers refused by the node and its client
    empty_variables.py  variables set but empty, refused by serve and the client commands
    logs.py     logging (structlog), one setting for the node's lines and libraries'
    log_stream.py  the stream the lines go to: never raises, never blocks, counts drops
    log_hooks.py   what Python would write to stderr itself (warnings, errors), logged
    store.py    ``AsyncStore``: the log on the event loop (writer thread, group commit)
    lookups.py  host names looked up on daemon threads of their own, bounded: a name that
                hangs holds neither other work nor the process's exit (peers, client)
    whole_numbers.py  click's IntRange, its refusal of what is no number worded for people
    folder.py   the data folder's size, measured off the event loop every few seconds
    device.py   this node's device key: made on first start, refused if others may read it
    devices.py  the cluster's devices (``crdt.membership``), kept up to date as records are
                stored; not the peer address list of ``peers/``
    retention.py  forgets sessions past their ``retain_days``, checked every hour
    workers.py  worker processes that run a function under a time and a memory limit
    worker_loop.py  what such a worker process runs; imports little, as each start costs
    interrupt.py  ending the process by SIGINT after Ctrl-C, so a shell script stops too
    http/       what every HTTP endpoint shares: bodies, answers, errors, the listener, metrics
    server/     the client API, live streams, starting and stopping a node, ``clawsync serve``
    peers/      peer links: the websocket transport, gossip with every peer, the peer API
    automerge/  the ``/automerge`` websocket for automerge-repo clients
    console/    the web console's files (HTML, CSS, JavaScript), served at ``/``
    client/     talking to a node: the HTTP client, following a session's projection
    cli/        the ``clawsync`` client commands (append, events, tail, status, forget,
                device, devices, openclaw, demo)
    openclaw/   the OpenClaw bridge: its stores read, its records as events and back
    main.py     the ``clawsync`` command: the client commands and ``serve``

May import: crdt, sync
"""
