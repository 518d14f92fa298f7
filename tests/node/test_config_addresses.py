"""``serve``'s peer and advertised addresses (``--peer``, ``--advertise-url``): one no
node could dial, or holding a password, is a usage error, which never shows the
password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.main import main
from tests.support.addresses import (
    HIDDEN_PASSWORDS,
    HIDDEN_TOKENS,
    HOST_NAMES_A_LOOKUP_TAKES,
    HOST_NAMES_NO_LOOKUP_TAKES,
)


@pytest.mark.parametrize(("args", "said"), [
    (["--peer", "http://hub:7878/v1/sessions"],
     "peer URL 'http://hub:7878/v1/sessions' names an API path; give the node's own "
     "address, 'http://hub:7878'"),
    (["--peer", "https://sync.example/cs/peer/v1/ws"], "address, 'https://sync.example/cs'"),
    (["--peer", "hub:7878"], "peer URL 'hub:7878' must start with http:// or https:// "
                             "('http://hub:7878'?)"),
    (["--advertise-url", "phone:7878"], "--advertise-url 'phone:7878' must start with"),
    (["--peer", "http://a:7878,http://b:7878"], "peer URL 'http://a:7878,http://b:7878' has a "
     "port that is not between 1 and 65535: separate several peer URLs with spaces, not commas"),
    (["--advertise-url", "http://phone:7878/console/"], "--advertise-url "
     "'http://phone:7878/console/' names an API path"),
])
def test_a_peer_address_that_could_never_link_is_a_usage_error(args: list[str],
                                                                said: str) -> None:
    """Dialed, an API path is refused "Not Found" for good, in a log line a minute."""
    result = CliRunner().invoke(main, ["serve", *args, "--print-config"])
    assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("option", ["--peer", "--advertise-url"])
@pytest.mark.parametrize("url", HIDDEN_PASSWORDS)
def test_an_address_with_a_password_is_refused_without_printing_it(option: str,
                                                                   url: str) -> None:
    """It would be shown by --print-config and logged at every redial."""
    result = CliRunner().invoke(main, ["serve", option, url, "--print-config"])
    assert result.exit_code == 2 and "holds a user name or password" in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize("option", ["--peer", "--advertise-url"])
@pytest.mark.parametrize("url", [*HIDDEN_TOKENS, "http://hub:7878/?page=2",
                                 "http://hub:7878/?x=a@page", "http://hub:7878/#a@page"])
def test_an_address_with_a_query_or_fragment_is_refused_without_printing_it(
        option: str, url: str) -> None:
    """The node's paths would land in it (a dial of ``http://hub/?page=2`` is answered
    400), and it may hold a token: refused, not shown."""
    result = CliRunner().invoke(main, ["serve", option, url, "--print-config"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "has a query: the node's paths would land in it" in said \
        or "has a fragment" in said, said
    assert "hunter2" not in said and "page" not in said


@pytest.mark.parametrize("option", ["--peer", "--advertise-url"])
@pytest.mark.parametrize(("url", "said"), [
    ("http:///hub:7878", "'http:///hub:7878' names no host"),
    ("https://:7878", "'https://:7878' names no host"),
    ("http://hub:99999", "'http://hub:99999' has a port that is not between 1 and 65535"),
    ("http://hub:0", "'http://hub:0' has a port that is not between 1 and 65535"),
    ("http://hub:78x", "'http://hub:78x' has a port that is not between 1 and 65535"),
    ("http://[hub:7878", "'http://[hub:7878' is not a URL"),
    *[(url, f"{url!r} {said}") for url, said in HOST_NAMES_NO_LOOKUP_TAKES]])
def test_an_address_no_node_could_dial_is_a_usage_error(option: str, url: str,
                                                        said: str) -> None:
    """Dialed, it would fail at every retry (and be passed on to every node)."""
    result = CliRunner().invoke(main, ["serve", option, url, "--print-config"])
    assert result.exit_code == 2 and said in result.output, result.output


@pytest.mark.parametrize("option", ["--peer", "--advertise-url"])
@pytest.mark.parametrize("url", [
    "http://[::1]:7878", "http://[fe80::1%eth0]:7878", "http://[fe80::1%25eth0]:7878",
    "http://hub/", "https://sync.example/cs/", "http://hub:7878/a@b"])
def test_an_at_sign_beyond_the_host_is_no_password(option: str, url: str) -> None:
    result = CliRunner().invoke(main, ["serve", option, url, "--print-config"])
    assert result.exit_code == 0, result.output
    assert url in result.output


@pytest.mark.parametrize("option", ["--peer", "--advertise-url"])
@pytest.mark.parametrize("url", HOST_NAMES_A_LOOKUP_TAKES)
def test_an_address_whose_name_idna_2008_encodes_is_taken(option: str, url: str) -> None:
    """A right-to-left label ending in a digit: IDNA 2003 refuses it, the lookup (IDNA
    2008, as yarl encodes) takes it."""
    result = CliRunner().invoke(main, ["serve", option, url, "--print-config"])
    assert result.exit_code == 0, result.output
    assert url in json.dumps(json.loads(result.output), ensure_ascii=False)


@pytest.mark.parametrize("url", ["http:/hub:7878", "http//hub:7878", "HTTP:/hub"])
def test_an_address_with_a_mistyped_scheme_gets_no_suggestion(url: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--peer", url, "--print-config"])
    assert result.exit_code == 2 and "must start with http://" in result.output
    assert "?)" not in result.output  # not "('http://http:/hub:7878'?)"


def test_an_address_of_another_scheme_gets_no_suggestion() -> None:
    result = CliRunner().invoke(main, ["serve", "--advertise-url", "ftp://phone",
                                       "--print-config"])
    assert result.exit_code == 2 and "'ftp://phone' must start with http://" in result.output
    assert "http://ftp" not in result.output  # not "('http://ftp://phone'?)"


def test_a_reverse_proxy_prefix_is_a_peer_address() -> None:
    result = CliRunner().invoke(main, ["serve", "--peer", "https://sync.example/cs",
                                       "--print-config"])
    assert result.exit_code == 0, result.output


def test_an_address_with_an_upper_case_scheme_is_kept_in_lower_case() -> None:
    """Schemes are case-insensitive: the address is taken, and kept, shown and told to
    peers with its scheme in lower case, so that one node typed two ways is one peer."""
    result = CliRunner().invoke(main, ["serve", "--peer", "HTTP://hub:7878", "--peer",
                                       "http://hub:7878", "--advertise-url",
                                       "HTTPS://phone:7878", "--print-config"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["peers"] == ["http://hub:7878"]
    assert config["advertise_url"] == "https://phone:7878"


@pytest.mark.parametrize(("given", "came_from"), [
    ("flag", "it came from '--peer'"),
    ("env", "it came from CLAWSYNC_PEERS (the environment's --peer)"),
    ("file", "peers in {file} (the file's --peer)")])
def test_which_of_several_peer_urls_has_a_query_is_said_by_its_place_and_source(
        given: str, came_from: str, tmp_path: Path) -> None:
    """Several peers, one with a query: the address is not shown, nor its host (in
    ``http://u:1?w@h`` the host read is the user name ``u``), so the error names its
    place among them and where they came from."""
    peers = ["http://hub:7878", "http://u:1?hunter2@h", "http://other:7878"]
    file = tmp_path / "clawsync.toml"
    file.write_text(f"peers = {json.dumps(peers)}\n")
    args, env = ["serve", "--print-config"], {}
    if given == "flag":
        args += [arg for url in peers for arg in ("--peer", url)]
    elif given == "env":
        env["CLAWSYNC_PEERS"] = " ".join(peers)
    else:
        args += ["--config", str(file)]
    result = CliRunner().invoke(main, args, env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "peer URL 2 of 3 has a query: the node's paths would land in it" in said, said
    assert came_from.format(file=file) in said, said
    assert "hunter2" not in said and "'u'" not in said and " u " not in said
