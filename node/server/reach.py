"""How another device reaches this node, said at start by a node that has no peer yet: a
new device pairs by dialing a member (``serve --peer URL``), and URL must be an address
it can reach.

A node on a loopback address (the default) can be dialed from this machine only; one on
0.0.0.0 at this machine's network address, which is the one to give: a bare host name
resolves on another machine only where the network's DNS knows it (mDNS answers for
``NAME.local`` on many networks, not all), and 0.0.0.0 is no address to dial.

>>> dial_url("http", "10.0.0.5", 7878, None)
'http://10.0.0.5:7878'
>>> dial_url("http", "0.0.0.0", 7878, "http://home.lan:7878")
'http://home.lan:7878'
>>> dial_url("https", "::", 8000, None, network=lambda ipv6: "fd00::5")
'https://[fd00::5]:8000'
>>> dial_url("http", "0.0.0.0", 7878, None, network=lambda ipv6: None)
'http://ADDRESS:7878'
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from node.config import is_loopback

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


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


def dial_url(scheme: str, host: str, port: int, advertise_url: str | None,
             network: Callable[[bool], str | None] = network_address) -> str:
    """The URL another device gives as ``--peer`` to reach this node: its advertised
    one, else its address; this machine's ``network`` address where it listens on every
    one (or on loopback: where it would be reached once it listens beyond)."""
    if advertise_url:
        return advertise_url
    if _wildcard(host) or is_loopback(host):
        # Loopback: reached once it listens on 0.0.0.0, as the hint says: IPv4.
        host = network(_wildcard(host) and ":" in host) or UNKNOWN_ADDRESS
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def pairing_hint(scheme: str, host: str, port: int,
                 advertise_url: str | None) -> tuple[str, dict[str, str]]:
    """The log line (event, fields) that tells how a new device pairs with this node."""
    url = dial_url(scheme, host, port, advertise_url)
    if is_loopback(host) and not advertise_url:
        return ("other devices cannot dial this node", {
            "listening": f"{host}, this machine only",
            "to_pair": f"serve with --host 0.0.0.0 and --token (or CLAWSYNC_TOKEN); a new "
                       f"device then runs: clawsync serve --peer {url}"})
    return ("to pair a new device, run on it", {"command": f"clawsync serve --peer {url}"})
