"""The command line options and arguments the ``clawsync`` commands share: the node's
address (``--node``, also after a command's name), its token, a session key; and the
settings they make. No HTTP client here: the group keeps its options with this module
before it knows whether the command it runs needs one. Nor ``node.config`` (and with it
the crypto libraries) until a command's own ``--node`` or ``--token`` is read, or a
command asks for its settings: the commands' modules use this one to declare their
options, and a command's ``--help`` needs no more than that, whatever the environment
holds."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import click

from crdt.errors import InvalidInput
from crdt.keys import SESSION_KEYS_SAID, check_session_key
from node.client.errors import NODE_SHOWN_CHARS_MAX, shown_address

if TYPE_CHECKING:
    from node.config import Settings
    from node.limits import ClientLimits


def node_url(text: str) -> str:
    """Accept ``host:port`` as well as a full URL: people type the short form.

    >>> node_url("127.0.0.1:7878"), node_url("https://sync.example/clawsync/")
    ('http://127.0.0.1:7878', 'https://sync.example/clawsync')
    >>> node_url("phone.local")
    'http://phone.local:7878'
    """
    from yarl import URL

    from crdt.addresses import address_problem, unshown_refusal
    from node.checks import api_path_base, host_name_problem
    from node.config import PORT_DEFAULT

    text = text.strip().rstrip("/")
    if not text:
        raise click.BadParameter("is empty: give the node's address, host:port or a URL",
                                 param_hint="--node")
    # First: the errors below show the address, and a password must not be shown.
    unshown = unshown_refusal(text)
    if unshown is not None:  # not shown: a password, or a token in a query
        raise click.BadParameter(
            f"{unshown.why}, which errors would show; give the token with --token (or "
            "CLAWSYNC_TOKEN)" if unshown.password else
            f"{unshown.why} (the client's paths go after the address): give the node's "
            "address alone, a token with --token", param_hint="--node")
    short = "://" not in text
    mistyped = _mistyped(text) if short else None
    if mistyped is not None:
        raise click.BadParameter(f"{shown_address(text)} {mistyped}", param_hint="--node")
    text = f"http://{text}" if short else text
    try:
        url = URL(text)
    except ValueError:  # yarl's message may quote the address: it is not passed on
        # A host name yarl cannot encode (a label too long once encoded) is said as
        # ``devices add --address`` and the client say it.
        said = address_problem(text) or host_name_problem(text) or "is not a URL"
        raise click.BadParameter(f"{shown_address(text)} {said}",
                                 param_hint="--node") from None
    try:
        host = url.host
    except UnicodeError:  # an A-label that is not punycode ("xn--zz"): yarl decodes it
        raise click.BadParameter(f"{shown_address(text)} {host_name_problem(text)}",
                                 param_hint="--node") from None
    if url.scheme not in ("http", "https") or not host:
        raise click.BadParameter(f"{shown_address(text)} is not an http(s)://host:port URL",
                                 param_hint="--node")
    # "http://7878": the port typed as the host; in any script's digits (``\d``), which
    # would otherwise become an IDNA name that fails only when it is looked up.
    if re.fullmatch(r"\d+", host):
        number = _ascii_digits(host)
        raise click.BadParameter(f"{shown_address(text)} has a number as its host: "
                                 + (f"give the host before the port, such as 127.0.0.1:{number}"
                                    if url.explicit_port is None and _is_port(number)
                                    else "give a host name or an IP address"),
                                 param_hint="--node")
    label = host_name_problem(text)
    if label is not None:
        raise click.BadParameter(f"{shown_address(text)} {label}", param_hint="--node")
    # yarl takes port 0, which no connection can use: every command would fail to
    # connect, saying only that the node could not be reached.
    problem = address_problem(text)
    if problem is not None:
        raise click.BadParameter(f"{shown_address(text)} {problem}", param_hint="--node")
    if short and url.explicit_port is None:  # a bare host: the node's port, not port 80
        text = str(url.with_port(PORT_DEFAULT)).rstrip("/")
    # A path may be a reverse proxy's prefix, but one that names the API itself would be
    # doubled by the commands (".../v1/v1/sessions") and answered only "Not Found".
    base = api_path_base(text)
    if base is not None:
        own = f", {shown_address(base)}" if _shown_whole(text) else ""
        raise click.BadParameter(f"{shown_address(text)} names an API path; give the node's own "
                                 f"address{own} (the commands add the rest)",
                                 param_hint="--node")
    return text


def _mistyped(text: str) -> str | None:
    """What is wrong with ``text``, an address typed without "://", if it is a common slip
    that would otherwise be taken for a host: a port alone (``7878``, ``:7878``), or a
    misspelt scheme (``http:/h:7878``, ``http//h:7878``, which would name the host
    "http").

    >>> _mistyped("7878")
    'is a port alone: give the host too, such as 127.0.0.1:7878'
    >>> _mistyped("http//h:7878")
    'misspells http://: write it with a colon and two slashes, http://h:7878'
    >>> _mistyped("h:7878") is None
    True
    """
    # \d: digits of any script too (Arabic-Indic, fullwidth), shown in ASCII digits.
    port = re.fullmatch(r":?(\d+)", text)
    if port is not None:
        number = _ascii_digits(port[1])
        return ("is a port alone: give the host too, such as 127.0.0.1:" + number
                if _is_port(number) else
                "is a number alone: give a host name or an IP address")
    # "http/prefix" is a host named "http" with a reverse proxy's prefix, not a slip.
    scheme = re.match(r"(https?)(?::/+|//+)", text, re.IGNORECASE)
    if scheme is not None:
        written = f"{scheme[1].lower()}://"
        fixed = f", {written}{text[scheme.end():]}" if _shown_whole(text) else \
            f" ({written} and then the rest as typed)"
        return f"misspells {written}: write it with a colon and two slashes{fixed}"
    return None


def _shown_whole(text: str) -> bool:
    """Whether an error shows the address ``text`` whole (``shown_address``): only then
    does it also show the address it suggests instead, so that the error quotes at most
    ``NODE_SHOWN_CHARS_MAX`` characters of it, once (not twice: some 575 characters).

    >>> _shown_whole("http:/h:7878"), _shown_whole("http:/" + "h" * 5000)
    (True, False)
    """
    return len(text) <= NODE_SHOWN_CHARS_MAX


def _ascii_digits(number: str) -> str:
    """``number``, decimal digits of any script, in ASCII digits, as typed (leading
    zeros kept).

    >>> _ascii_digits("\u0667\u0668"), _ascii_digits("\uff10\uff17"), _ascii_digits("78")
    ('78', '07', '78')
    """
    return "".join(str(unicodedata.decimal(digit)) for digit in number)


#: The highest TCP port: a number above it is not suggested as the node's port.
PORT_MAX = 65535
#: Most digits a port is typed with (``PORT_MAX`` has 5; leading zeros make no port
#: anyone types): a longer number is none, and is not converted (``int`` refuses a
#: string of over 4,300 digits, and takes time on one just below).
PORT_DIGITS_MAX = len(str(PORT_MAX))


def _is_port(number: str) -> bool:
    """Whether a number typed where the host goes can be the node's port, and so be
    suggested as one (not 0, nor one out of range).

    >>> _is_port("7878"), _is_port("0"), _is_port("2130706433"), _is_port("7" * 5000)
    (True, False, False, False)
    """
    return len(number) <= PORT_DIGITS_MAX and 1 <= int(number) <= PORT_MAX


def token_value(_ctx: click.Context, _param: click.Parameter | None, value: str | None
                ) -> str | None:
    """The callback of a command's ``--token`` (the group's is checked by ``settings``,
    when a command runs): one with a control character could never be sent in
    a header (a line ending kept from a file, ``$(cat token.txt)`` with CRLF)."""
    if value:
        from node.checks import check_token

        try:
            check_token(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


def session_key(_ctx: click.Context, _param: click.Parameter, value: str | None
                ) -> str | None:
    """The callback of a SESSION argument: a key the node would refuse is a usage error,
    found before any request, in the node's words: an empty one (its path would name
    another route), one too long (``SESSION_KEY_BYTES_MAX``), with control characters,
    or not Unicode (an argument that is not UTF-8, which no URL could carry)."""
    if value is None:
        return None
    if value == "":
        raise click.BadParameter(f"is empty: a session key is {SESSION_KEYS_SAID}")
    try:
        return check_session_key(value)
    except InvalidInput as error:
        raise click.BadParameter(error.reason) from None


@dataclass(frozen=True)
class Typed:
    """The group's ``--node`` and ``--token`` as given, not yet checked: ``settings``
    checks them when a command first needs them (a command's ``--help``, shown after the
    group's options are read, needs neither, nor the crypto libraries that checking
    loads). A command's own ``--node`` or ``--token`` replaces one here (checked as it
    is read), so that a group value it overrides is never checked."""

    node: str
    token: str | None
    node_overridden: bool = False
    token_overridden: bool = False


def settings(ctx: click.Context) -> Settings:
    """The group's settings (defaults when a command is invoked on its own in tests);
    a ``--node`` no request could use, or a token no header could carry, is a usage
    error here, before any request."""
    from node.config import Settings

    found = ctx.find_object(Settings)
    if found is not None:
        return found
    typed = ctx.find_object(Typed)
    if typed is None:
        return Settings()
    node = typed.node if typed.node_overridden else group_node_url(ctx, typed)
    token = typed.token if typed.token_overridden else group_token(ctx, typed)
    checked = Settings(node=node, token=token)
    ctx.find_root().obj = checked  # once: every context after this finds it
    return checked


def named_node(ctx: click.Context) -> str | None:
    """The node a command printed for people to run (``node.command_lines``) names with
    ``--node``: the one this command was given, or None for the default, which such a
    command reaches without it.

    >>> named_node(click.Context(click.Command("status"))) is None
    True
    """
    from node.config import NODE_DEFAULT

    node = settings(ctx).node
    return None if node == NODE_DEFAULT else node


def client_limits(ctx: click.Context) -> ClientLimits:
    """The client's limits, without checking ``--node`` or ``--token``: for a command
    that works on a data folder (``--data-dir``) and contacts no node, which a bad
    ``CLAWSYNC_NODE`` or ``CLAWSYNC_TOKEN`` in the environment must not stop."""
    from node.config import Settings
    from node.limits import ClientLimits

    found = ctx.find_object(Settings)
    return found.limits if found is not None else ClientLimits()


def _group_hint(option: str, from_env: bool) -> str:
    """How an error names the group's ``--node`` or ``--token``: by where it came from
    (``from_env``: ``CLAWSYNC_NODE`` or ``CLAWSYNC_TOKEN``).

    >>> _group_hint("token", True)
    "CLAWSYNC_TOKEN (the environment's clawsync --token)"
    >>> _group_hint("node", False)
    "'clawsync --node' (given before the command)"
    """
    return (f"CLAWSYNC_{option.upper()} (the environment's clawsync --{option})" if from_env
            else f"'clawsync --{option}' (given before the command)")


def _from_env(ctx: click.Context, option: str) -> bool:
    """Whether the group's ``option`` came from the environment."""
    return ctx.find_root().get_parameter_source(option) is click.core.ParameterSource.ENVIRONMENT


def group_node_url(ctx: click.Context, typed: Typed) -> str:
    """``node_url`` of the group's ``--node``: an error names it as the group's option (or
    ``CLAWSYNC_NODE``), with the group's usage line, not as the command's own ``--node``,
    which would have been the one to fix. ``CLAWSYNC_NODE`` set empty is refused as
    ``serve`` refuses its variables set empty: click would take it for unset, and the
    command would talk to the default node."""
    from node.empty_variables import refuse_set_empty

    refuse_set_empty(ctx.find_root(), "node")
    try:
        return node_url(typed.node)
    except click.BadParameter as error:
        raise click.BadParameter(error.message, ctx=ctx.find_root(),
                                 param_hint=_group_hint("node", _from_env(ctx, "node"))) from None


def group_token(ctx: click.Context, typed: Typed) -> str | None:
    """The group's ``--token``, checked as ``token_value`` checks one; an error names it
    as ``group_node_url`` names the node (the token itself is never shown)."""
    try:
        return token_value(ctx, None, typed.token) or None
    except click.BadParameter as error:
        raise click.BadParameter(error.message, ctx=ctx.find_root(),
                                 param_hint=_group_hint("token", _from_env(ctx, "token"))
                                 ) from None


def client_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Also accept ``--node`` and ``--token`` after the command name (``clawsync events s1
    --node URL``), as people tend to type them; given there, they win over the group's,
    which are then not checked at all, and are checked as the group's are."""

    def override(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
        def store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
            if value is None:
                return
            if field == "node":
                given: dict[str, Any] = {"node": node_url(value), "node_overridden": True}
            else:  # empty: no token, as for the group's
                given = {"token": token_value(ctx, param, value) or None,
                         "token_overridden": True}
            typed = ctx.find_object(Typed)
            from node.config import Settings

            if typed is not None and ctx.find_object(Settings) is None:
                ctx.obj = replace(typed, **given)
            else:
                ctx.obj = replace(settings(ctx), **{field: given[field]})
        return store

    command = click.option("--token", metavar="TOKEN", expose_value=False,
                           callback=override("token"),
                           help="Bearer token of the node (as before the command).")(command)
    return click.option("--node", metavar="URL", expose_value=False, callback=override("node"),
                        help="The node to talk to (as before the command).")(command)
