"""``--node`` and ``--token`` given after a command's name win over the group's, and are
checked as the group's are; an unusable group ``--node`` or ``--token`` is named as the
group's (the option before the command, or the environment's variable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli.options import node_url
from node.client.errors import NODE_SHOWN_CHARS_MAX
from node.main import main
from tests.support.addresses import (
    HIDDEN_PASSWORDS,
    HIDDEN_TOKENS,
    HOST_NAMES_A_LOOKUP_TAKES,
    HOST_NAMES_NO_LOOKUP_TAKES,
)
from tests.support.processes import NodeProcess, free_port

#: An address no request could use: a usage error wherever it is given.
BAD_NODE = "ftp://sync.example"
#: A token as ``$(cat token.txt)`` gives it from a file with CRLF line ends.
CRLF_TOKEN = "s3cret-token-value\r"
#: Nothing listens here (a port the kernel just found free): a request would exit 1.
UNREACHED = f"http://127.0.0.1:{free_port()}"
TOKEN = "token-of-the-test-node"


def clawsync(*args: str, env: dict[str, str] | None = None) -> Result:
    # No CLAWSYNC_* from the shell running the tests: only what a test gives.
    clean = {"CLAWSYNC_NODE": None, "CLAWSYNC_TOKEN": None, **(env or {})}
    return CliRunner().invoke(main, list(args), prog_name="clawsync", env=clean)


@pytest.mark.parametrize(("group", "env"), [
    pytest.param(["--node", BAD_NODE], None, id="option"),
    pytest.param([], {"CLAWSYNC_NODE": BAD_NODE}, id="environment")])
def test_a_commands_own_node_wins_over_a_bad_group_node(
        tmp_path: Path, group: list[str], env: dict[str, str] | None) -> None:
    with NodeProcess(tmp_path, token=TOKEN) as node:
        for own in (["--node", node.url, "--token", TOKEN],
                    ["--token", TOKEN, "--node", node.url]):  # either order
            result = clawsync(*group, "sessions", *own, env=env)
            assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("group", "env"), [
    pytest.param(["--token", CRLF_TOKEN], None, id="option"),
    pytest.param([], {"CLAWSYNC_TOKEN": CRLF_TOKEN}, id="environment")])
def test_a_commands_own_token_wins_over_a_bad_group_token(
        tmp_path: Path, group: list[str], env: dict[str, str] | None) -> None:
    """As a command's own ``--node`` wins over the group's: the group's is then not
    checked (a service's CLAWSYNC_TOKEN may be another node's, or stale)."""
    with NodeProcess(tmp_path, token=TOKEN) as node:
        for own in (["--node", node.url, "--token", TOKEN],
                    ["--token", TOKEN, "--node", node.url]):  # either order
            result = clawsync(*group, "sessions", *own, env=env)
            assert result.exit_code == 0, result.output
        subcommand = clawsync(*group, "tokens", "--node", node.url, "--token", TOKEN, env=env)
        assert subcommand.exit_code == 0, subcommand.output


@pytest.mark.parametrize(("group", "env", "named"), [
    pytest.param(["--token", CRLF_TOKEN], None,
                 "'clawsync --token' (given before the command)", id="option"),
    pytest.param([], {"CLAWSYNC_TOKEN": CRLF_TOKEN},
                 "CLAWSYNC_TOKEN (the environment's clawsync --token)", id="environment"),
    pytest.param(["--token", CRLF_TOKEN], {"CLAWSYNC_TOKEN": "good-token"},
                 "'clawsync --token' (given before the command)", id="option-over-environment")])
def test_a_bad_group_token_is_named_where_it_came_from(
        group: list[str], env: dict[str, str] | None, named: str) -> None:
    """Exit 2 before any request, with the group's usage line, and the token not shown."""
    result = clawsync(*group, "events", "s1", "--node", UNREACHED, env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Usage: clawsync [OPTIONS] COMMAND [ARGS]..."
    assert lines[-1].startswith(f"Error: Invalid value for {named}: the token holds a "
                                "control character"), lines[-1]
    assert CRLF_TOKEN.strip() not in result.output


@pytest.mark.parametrize("args", [
    pytest.param(["events", "s1", "--token", CRLF_TOKEN], id="command"),
    pytest.param(["tokens", "create", "--token", CRLF_TOKEN], id="subcommand"),
    pytest.param(["--node", BAD_NODE, "events", "s1", "--node", UNREACHED,
                  "--token", CRLF_TOKEN], id="overriding-both")])
def test_a_commands_own_token_with_a_control_character_is_a_usage_error(
        args: list[str]) -> None:
    """As the group's: exit 2 before any request, and the token is not shown."""
    result = clawsync("--node", UNREACHED, *args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--token'" in result.output
    assert "control character" in result.output
    assert CRLF_TOKEN.strip() not in result.output


def test_an_empty_command_token_is_none_as_the_groups(tmp_path: Path) -> None:
    """An empty ``--token`` after the command clears the group's: the request goes out
    without one, which a node with a token refuses as needing one."""
    with NodeProcess(tmp_path, token=TOKEN) as node:
        result = clawsync("--token", TOKEN, "sessions", "--node", node.url, "--token", "")
        assert result.exit_code == 1, result.output
        assert "needs a token" in result.output
        kept = clawsync("--token", TOKEN, "sessions", "--node", node.url)
        assert kept.exit_code == 0, kept.output


@pytest.mark.parametrize(("group", "env", "named"), [
    pytest.param(["--node", BAD_NODE], None, "'clawsync --node' (given before the command)",
                 id="option"),
    pytest.param([], {"CLAWSYNC_NODE": BAD_NODE},
                 "CLAWSYNC_NODE (the environment's clawsync --node)", id="environment")])
def test_a_bad_group_node_is_named_as_the_groups(
        group: list[str], env: dict[str, str] | None, named: str) -> None:
    """Not as the command's own ``--node``, with the command's usage line: the command
    takes a ``--node`` too, which is not the one to fix."""
    result = clawsync(*group, "events", "s1", env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Usage: clawsync [OPTIONS] COMMAND [ARGS]..."
    assert lines[-1] == (f"Error: Invalid value for {named}: {BAD_NODE!r} is not an "
                         "http(s)://host:port URL")


def test_a_bad_command_node_is_named_as_the_commands() -> None:
    result = clawsync("events", "s1", "--node", BAD_NODE)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Usage: clawsync events [OPTIONS] SESSION"
    assert lines[-1] == f"Error: Invalid value for --node: {BAD_NODE!r} is not an " \
                        "http(s)://host:port URL"


@pytest.mark.parametrize("node", ["http://h:0", "h:0", "http://h:65536", "https://h:0/cs"])
def test_a_node_address_with_a_port_no_connection_could_use_is_a_usage_error(
        node: str) -> None:
    result = clawsync("events", "s1", "--node", node)
    assert result.exit_code == 2, result.output
    assert "Invalid value for --node" in result.output, result.output
    assert ("not between 1 and 65535" in result.output or "is not a URL" in result.output), \
        result.output


@pytest.mark.parametrize(("node", "said"), [
    ("http://[hub:7878", "'http://[hub:7878' is not a URL"),
    ("http://hub:78x", "'http://hub:78x' has a port that is not between 1 and 65535"),
    ("http://hub:99999", "'http://hub:99999' has a port that is not between 1 and 65535")])
def test_a_node_address_the_url_parser_refuses_is_said_in_our_words(node: str,
                                                                    said: str) -> None:
    """The parser's own message may quote the address, so it is not passed on."""
    result = clawsync("events", "s1", "--node", node)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"Error: Invalid value for --node: {said}", \
        result.output


@pytest.mark.parametrize(("node", "said"), [
    # Were "'http://7878:7878' is not a node URL", exit 1, after trying to connect.
    ("7878", "'7878' is a port alone: give the host too, such as 127.0.0.1:7878"),
    (":7878", "':7878' is a port alone: give the host too, such as 127.0.0.1:7878"),
    ("http://7878", "'http://7878' has a number as its host: give the host before the "
                    "port, such as 127.0.0.1:7878"),
    # Were "cannot reach the node at http://http:7878/h:7878": the scheme taken for a host.
    ("http:/h:7878", "'http:/h:7878' misspells http://: write it with a colon and two "
                     "slashes, http://h:7878"),
    ("https//h", "'https//h' misspells https://: write it with a colon and two slashes, "
                 "https://h"),
    # A port was typed, or the number can be no port: none is suggested in its place.
    ("http://1234:7878", "'http://1234:7878' has a number as its host: give a host name or "
                         "an IP address"),
    ("2130706433:7878", "'http://2130706433:7878' has a number as its host: give a host "
                        "name or an IP address"),
    ("0:7878", "'http://0:7878' has a number as its host: give a host name or an IP "
               "address"),
    ("http://0", "'http://0' has a number as its host: give a host name or an IP address"),
    # Digits of another script, or fullwidth, as an input method may type them: were
    # an IDNA host name that failed only on connecting, or "a number as its host".
    ("\u0667\u0668\u0667\u0668", "'\u0667\u0668\u0667\u0668' is a port alone: give the host "
                                 "too, such as 127.0.0.1:7878"),
    ("\uff17\uff18\uff17\uff18", "'\uff17\uff18\uff17\uff18' is a port alone: give the host "
                                 "too, such as 127.0.0.1:7878"),
    (":\u0667\u0668\u0667\u0668", "':\u0667\u0668\u0667\u0668' is a port alone: give the "
                                  "host too, such as 127.0.0.1:7878"),
    ("http://\u0667\u0668\u0667\u0668", "'http://\u0667\u0668\u0667\u0668' has a number as "
                                        "its host: give the host before the port, such as "
                                        "127.0.0.1:7878"),
    ("99999", "'99999' is a number alone: give a host name or an IP address"),
    ("0", "'0' is a number alone: give a host name or an IP address")])
def test_a_common_slip_in_a_node_address_is_a_usage_error_that_shows_the_fix(
        node: str, said: str) -> None:
    result = clawsync("--node", node, "sessions")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for 'clawsync --node' (given before the command): " + said), \
        result.output


@pytest.mark.parametrize(("node", "said"), [
    ("7" * 5000, "is a number alone"), ("\u0667" * 5000, "is a number alone"),
    (":" + "7" * 5000, "is a number alone"),
    ("http://" + "7" * 5000, "has a number as its host: give a host name or an IP address"),
    # No IDNA label is that long: said as every address's is (``host_name_problem``).
    ("http://" + "\u0667" * 5000, "has a host name label over 63 characters")])
def test_a_number_too_long_for_a_port_is_a_usage_error(node: str, said: str) -> None:
    """Longer than ``PORT_DIGITS_MAX``: no port, and not converted (over 4,300 digits
    ``int`` raised, a traceback)."""
    result = clawsync("--node", node, "status")
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output, result.output[-300:]
    # The address cut at NODE_SHOWN_CHARS_MAX, not echoed whole: the error stays a line.
    error = result.output.splitlines()[-1]
    assert f"… ({len(node)} characters) " in error, error[-300:]
    assert len(error) < NODE_SHOWN_CHARS_MAX + 200, error[-300:]


@pytest.mark.parametrize(("node", "said"), [
    ("http://" + "p" * 64 + ".example:7878", "has a host name label over 63 characters"),
    ("p" * 300, "has a host name label over 63 characters (300), which no name holds"),
    ("a..example:7878", "has an empty label in its host name"),
    ("xn--zz.example", "has a host name that cannot be looked up"),
    ("xn--" + "a" * 60 + ".example",
     "has a host name label over 63 characters (64), which no name holds"),
    *HOST_NAMES_NO_LOOKUP_TAKES])
def test_a_host_name_no_lookup_can_encode_is_a_usage_error(node: str, said: str) -> None:
    """A label over ``HOST_LABEL_CHARS_MAX`` characters, or an empty one: yarl takes
    the name, and the lookup's IDNA encoding failed with a traceback. An A-label
    ("xn--") that is not punycode: yarl's decoding of it failed, a traceback too."""
    result = clawsync("--node", node, "status")
    assert result.exit_code == 2, result.output[-300:]
    assert said in result.output and "Traceback" not in result.output, result.output[-300:]
    assert len(result.output.splitlines()[-1]) < NODE_SHOWN_CHARS_MAX + 200  # quoted once


@pytest.mark.parametrize("node", [
    "http://127.0.0.1:" + "9" * 5000, "http:/" + "h" * 5000, "ftp://" + "h" * 5000,
    "http://h:7878/" + "v" * 5000 + "/v1"])
def test_a_long_node_address_is_cut_in_its_error(node: str) -> None:
    """Every refusal that names the address shows at most ``NODE_SHOWN_CHARS_MAX`` of its
    characters, once, with "…" and how many it has: the fix it suggests (a misspelt
    scheme, an API path) is shown only with an address shown whole (it was quoted
    again, cut as long: some 575 characters in all)."""
    result = clawsync("--node", node, "status")
    assert result.exit_code == 2, result.output
    error = result.output.splitlines()[-1]
    assert f"{node[:NODE_SHOWN_CHARS_MAX]!r}… ({len(node)} characters) " in error, \
        error[-300:]
    assert len(error) < NODE_SHOWN_CHARS_MAX + 200, error[-300:]


@pytest.mark.parametrize(("node", "fix"), [
    ("http:/h:7878", "misspells http://: write it with a colon and two slashes, http://h:7878"),
    ("HTTPS//h:7878", "misspells https://: write it with a colon and two slashes, https://h:7878"),
    ("http:/" + "h" * 5000, "misspells http://: write it with a colon and two slashes "
     "(http:// and then the rest as typed)"),
    ("http://h:7878/v1/sessions", "names an API path; give the node's own address, "
     "'http://h:7878' (the commands add the rest)")])
def test_the_fix_an_error_suggests_is_shown_with_an_address_shown_whole(
        node: str, fix: str) -> None:
    result = clawsync("--node", node, "status")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].endswith(fix), result.output[-300:]


@pytest.mark.parametrize("node", ["ftp://me:hunter2@sync.example",
                                  "http://me:hunter2@[sync.example",
                                  # "http:/u:pw@h:7878" was "cannot reach the node at
                                  # http://http:7878/u:pw@h".
                                  "http:/me:hunter2@sync.example:7878", *HIDDEN_PASSWORDS])
def test_a_password_in_a_node_address_is_not_shown(node: str) -> None:
    """Such an address was refused for its scheme first, or as no URL, shown whole."""
    result = clawsync("events", "s1", "--node", node)
    assert result.exit_code == 2, result.output
    assert "holds a user name or password" in result.output, result.output
    assert "hunter2" not in result.output, result.output


@pytest.mark.parametrize("node", [*HIDDEN_TOKENS, "h:7878/?x=a@b", "http://h:7878/?page=2"])
def test_a_node_address_with_a_query_or_fragment_is_refused_without_showing_it(
        node: str) -> None:
    """The commands' paths would land in it (``http://h/?page=2/v1/node``), and it may
    hold a token: a usage error that does not show it."""
    result = clawsync("events", "s1", "--node", node)
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "has a query: the node's paths would land in it" in said \
        or "has a fragment" in said, said
    assert "hunter2" not in said and "page" not in said and "a@b" not in said


@pytest.mark.parametrize(("typed", "url"), [
    ("[::1]:7878", "http://[::1]:7878"), ("http://[::1]:7878", "http://[::1]:7878"),
    ("[fe80::1%eth0]:7878", "http://[fe80::1%eth0]:7878"),
    ("http://[fe80::1%25eth0]:7878", "http://[fe80::1%25eth0]:7878"),
    ("http://host/", "http://host"), ("https://sync.example/cs/", "https://sync.example/cs"),
    # An "@" in a path is no user name.
    ("http://h:7878/a@b", "http://h:7878/a@b"), ("h:7878/a@b", "http://h:7878/a@b"),
    # A host named "http" behind a prefix: no misspelt scheme.
    ("http/clawsync", "http://http:7878/clawsync"),
    ("https/cs", "http://https:7878/cs"),
    # A name of another script is a host name as any other (digits alone are a port
    # typed alone: test_a_common_slip_in_a_node_address_is_a_usage_error_that_shows_the_fix).
    ("m\u00fcnchen", "http://xn--mnchen-3ya:7878"),
    ("\u0667\u0668x", "http://xn--x-mqcd:7878")])
def test_an_address_with_an_at_sign_beyond_its_host_is_a_node_address(typed: str,
                                                                        url: str) -> None:
    assert node_url(typed) == url


@pytest.mark.parametrize("node", HOST_NAMES_A_LOOKUP_TAKES)
def test_a_node_address_whose_name_idna_2008_encodes_is_taken(node: str) -> None:
    """A right-to-left label ending in a digit: IDNA 2003 refuses it, the lookup (IDNA
    2008, as yarl encodes) takes it, so no usage error."""
    assert node_url(node) == node
