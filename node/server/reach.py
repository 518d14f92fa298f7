"""How another device reaches this node, said at start by a node that has no peer yet: a
new device pairs by dialing a member (``serve --peer URL``), and URL must be an address
it can reach.

What is said comes from the addresses the node's sockets are bound to, not from the
``--host`` text: a host name may resolve to loopback only (``/etc/hosts`` often maps this
machine's name to 127.0.1.1), or to several addresses, and ``0`` is 0.0.0.0. A node
bound to loopback only (the default) can be dialed from this machine only; one on
0.0.0.0 (or ``::``) at this machine's network address, which is the one to give: a bare
host name resolves on another machine only where the network's DNS knows it (mDNS
answers for ``NAME.local`` on many networks, not all), and 0.0.0.0 is no address to
dial; one on a given address at that address.

>>> pairing_hint("http", ["0.0.0.0"], 7878, None, network=lambda ipv6: "10.0.0.5")
('to pair a new device, run on it', {'command': 'clawsync serve --peer http://10.0.0.5:7878'})
>>> pairing_hint("http", ["127.0.1.1"], 7878, None, network=lambda ipv6: None)[1]["listening"]
'127.0.1.1, this machine only'
>>> pairing_hint("http", ["0.0.0.0"], 7878, "http://home.lan:7878")[1]
{'command': 'clawsync serve --peer http://home.lan:7878'}
>>> pairing_hint("http", ["::"], 8000, None, network=lambda ipv6: "fd00::5" if ipv6 else None)
('to pair a new device, run on it', {'command': 'clawsync serve --peer http://[fd00::5]:8000'})
>>> pairing_hint("http", ["127.0.0.1", "10.0.0.5", "10.0.0.6"], 7878, None)[1]
{'command': 'clawsync serve --peer http://10.0.0.5:7878', 'or_dial': 'http://10.0.0.6:7878'}
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

from crdt.addresses import listening_only
from node.checks import PAIRING_LINE

#: Where the network address is looked up: a documentation address (TEST-NET-1, RFC
#: 5737), never reached: connecting a UDP socket sends nothing, it only asks the kernel
#: which of this machine's addresses its route would leave from.
_ROUTE_PROBE = ("192.0.2.1", 9)
_ROUTE_PROBE_V6 = ("2001:db8::1", 9)
#: Said in place of the address when this machine has no route to find it by.
UNKNOWN_ADDRESS = "ADDRESS"


def network_address(ipv6: bool = False) -> str | None:
    """This machine's address on its network (the source of its default route), or None
    when it has none (no network, only loopback)."""
    family, probe = (socket.AF_INET6, _ROUTE_PROBE_V6) if ipv6 else \
        (socket.AF_INET, _ROUTE_PROBE)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(probe)
            address = str(sock.getsockname()[0])
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.split("%", 1)[0])  # a scope id (fe80::1%eth0)


def _url(scheme: str, address: str, port: int) -> str:
    shown = f"[{address}]" if ":" in address else address
    return f"{scheme}://{shown}:{port}"


def dial_urls(scheme: str, addresses: Sequence[str], port: int,
              network: Callable[[bool], str | None] = network_address) -> list[str]:
    """The URLs another device may dial, from the addresses the node is bound to: this
    machine's ``network`` address where one is the wildcard (or all are loopback: where
    it would be reached once it listens beyond), else each one not loopback."""
    wildcards = [a for a in addresses if _ip(a).is_unspecified]
    beyond = [a for a in addresses if not _ip(a).is_unspecified and not _ip(a).is_loopback]
    if wildcards or not beyond:
        # Loopback: reached once it listens on 0.0.0.0, as the hint says: IPv4.
        ipv6 = bool(wildcards) and all(":" in a for a in wildcards)
        return [_url(scheme, network(ipv6) or UNKNOWN_ADDRESS, port)]
    return [_url(scheme, address, port) for address in dict.fromkeys(beyond)]


def pairing_hint(scheme: str, addresses: Sequence[str], port: int,
                 advertise_url: str | None,
                 network: Callable[[bool], str | None] = network_address
                 ) -> tuple[str, dict[str, str]]:
    """The log line (event, fields) that tells how a new device pairs with this node,
    bound to ``addresses`` (its sockets' own, ``getsockname``) on ``port``."""
    if advertise_url and not listening_only(advertise_url):  # warned of at start
        return (PAIRING_LINE,
                {"command": f"clawsync serve --peer {advertise_url}"})
    first, *others = dial_urls(scheme, addresses, port, network)
    fields: dict[str, str] = {}
    if all(_ip(a).is_loopback for a in addresses):
        event = "other devices cannot dial this node"
        fields["listening"] = f"{', '.join(dict.fromkeys(addresses))}, this machine only"
        fields["to_pair"] = (f"serve with --host 0.0.0.0 and --token (or CLAWSYNC_TOKEN); "
                             f"a new device then runs: clawsync serve --peer {first}")
    else:
        event = PAIRING_LINE
        fields["command"] = f"clawsync serve --peer {first}"
        if others:
            fields["or_dial"] = ", ".join(others)
    if scheme == "https":
        # A dialer checks the name it dials against the certificate: an address the
        # certificate does not name is refused, however reachable.
        fields["tls"] = ("the new device checks the address it dials against --tls-cert's "
                         "names: give it one the certificate has, or set --advertise-url")
    return event, fields
