"""The pairing hint says what a new device can dial, from the addresses bound."""

from __future__ import annotations

from node.server.reach import pairing_hint


def network(ipv6: bool) -> str:
    return "fd00::5" if ipv6 else "10.0.0.5"


def test_a_name_of_several_addresses_gives_each_one_beyond_loopback() -> None:
    event, fields = pairing_hint("http", ["127.0.0.1", "192.168.1.20", "fd00::20"], 7878,
                                 None, network=network)
    assert event == "to pair a new device, run on it"
    assert fields == {"command": "clawsync serve --peer http://192.168.1.20:7878",
                      "or_dial": "http://[fd00::20]:7878"}


def test_over_tls_the_address_is_to_be_one_the_certificate_names() -> None:
    for addresses in (["0.0.0.0"], ["127.0.0.1"], ["192.168.1.20"]):
        _, fields = pairing_hint("https", addresses, 7878, None, network=network)
        assert "--tls-cert's names" in fields["tls"], addresses
        assert "https://" in fields.get("command", fields.get("to_pair", ""))
    # An advertised URL is the one the operator chose: given first and alone.
    assert pairing_hint("https", ["0.0.0.0"], 7878, "https://laptop.lan:7878",
                        network=network)[1] == {
        "command": "clawsync serve --peer https://laptop.lan:7878"}


def test_an_advertised_address_a_node_listens_on_is_not_given_to_dial() -> None:
    """``--advertise-url http://0.0.0.0:7878`` (warned of at start) names no machine: the
    hint gives the addresses this node can be dialed at, as without it."""
    assert pairing_hint("http", ["0.0.0.0"], 7878, "http://0.0.0.0:7878",
                        network=network)[1] == {
        "command": "clawsync serve --peer http://10.0.0.5:7878"}
