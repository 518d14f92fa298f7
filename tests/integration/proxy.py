"""The cut-able loopback TCP proxy for partition tests; it lives in ``node.cli.linkproxy``
because ``clawsync demo`` uses it too.

    with LinkProxy(target_port=node_b.port) as link:   # node A dials link.port
        link.cut()     # open connections are reset, new ones are refused
        link.heal()    # traffic flows again
"""

from node.cli.linkproxy import CHUNK_BYTES, LOOP_TIMEOUT_S, LinkProxy

__all__ = ["CHUNK_BYTES", "LOOP_TIMEOUT_S", "LinkProxy"]
