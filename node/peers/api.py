"""The peer API (``/peer/v1/...``), its authentication, TLS, ``GET /v1/peers`` and the
origins (``GET /v1/origins``, ``DELETE /v1/origins/{origin}``: ``crdt.log.retire``).

Peers authenticate with their device keys (``crdt.linkproof``: a device must be a
member of the cluster, ``node.peers.gossip.Gossip.admit``), with the cluster secret
(``Authorization: Bearer <secret>``) or, when the node has ``--tls-ca``, with a client
certificate signed by that CA; a device that proves its key is refused once removed,
whatever else it holds. A peer that proves no key, with the secret or a certificate,
gets 403 ``device_key_required`` once devices were added or removed here
(``node.peers.admission``). Anything else gets 401 and no data; a device that is not a
member, or was removed, gets 403 with the reason, signed; one claiming this node's own
device (which every refusal names) gets 409 ``own_device``. The client token does not
open the peer API, nor the cluster secret the client API: a leaked app token cannot join
the cluster.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import structlog
from aiohttp import web

from crdt.errors import InvalidInput, NotFound, Picklable
from crdt.log.records import Appended
from crdt.log.store import EventStore
from crdt.signing import ORIGIN_HEX_CHARS
from node.config import Config
from node.http import auth
from node.http.errors import HttpError, stopping, unauthorized
from node.http.params import flag_param, takes_params
from node.http.wire import respond
from node.peers import live
from node.peers.gossip import Gossip
from node.peers.handshake import claimed_device, refuse, refuse_keyless, refuse_self
from node.peers.link_errors import LinkClosed, LinkRefused, ProofLost, ProofMissing
from node.peers.members_fetch import MEMBERS_PATH
from node.peers.transport import DEVICE_HEADER, NODE_HEADER, PEER_PATH, accept
from sync.peer.live import OriginLive

log = structlog.get_logger(__name__)
GOSSIP = web.AppKey("gossip", Gossip)
#: Seconds a dialer refused as ``peers_full`` is asked to wait (``Retry-After``): a
#: place frees when a peer is forgotten or removed, not in a moment.
PEERS_FULL_RETRY_AFTER_S = 30


def setup(app: web.Application, config: Config, gossip: Gossip) -> None:
    """Add the peer routes and ``GET /v1/peers`` to the node's application."""
    app[GOSSIP] = gossip
    app.router.add_get(PEER_PATH, peer_socket)
    app.router.add_get(MEMBERS_PATH, members)
    app.router.add_get("/v1/peers", peers)
    app.router.add_get("/v1/origins", origins)
    app.router.add_delete("/v1/origins/{origin}", retire_origin)


def _check_peer(request: web.Request) -> None:
    """The members list is for nodes holding the cluster secret or a CA certificate
    (devices learn addresses from the membership records instead)."""
    if _shared_credential(request) is None:
        raise unauthorized("peer credentials missing or wrong")


def _shared_credential(request: web.Request) -> str | None:
    """Which shared credential the peer gave: "secret" (the cluster secret, which says
    more than a certificate: the peer may be given the secret), "certificate" (a client
    certificate of our CA), or None."""
    config: Config = request.app[GOSSIP].config
    if config.cluster_secret is not None \
            and auth.matches(auth.bearer(request), config.cluster_secret):
        return "secret"
    if config.tls_ca is not None and request.transport is not None \
            and request.transport.get_extra_info("peercert"):
        return "certificate"  # the TLS layer verified it against our CA
    return None


@takes_params(others=True)  # a newer node may send some
async def peer_socket(request: web.Request) -> web.StreamResponse:
    """A peer's replication link (websocket)."""
    gossip: Gossip = request.app[GOSSIP]
    credential = _shared_credential(request)
    shared = credential is not None
    claimed = claimed_device(request)  # InvalidInput: 400
    if claimed is not None and claimed[0] == gossip.device.device_id:
        # Every refusal names this device, and it is a member here: a dialer claiming it
        # would pass admission, to fail its proof (a line each) only once upgraded.
        if request.headers.get(NODE_HEADER) == gossip.astore.node_id:
            return refuse_self(gossip.astore.node_id)
        raise HttpError(409, "own_device", "the device id the dialer claims is this "
                        "node's own: a node links with other devices, not with its own "
                        "(is this node's device key copied to the dialer's data folder?)",
                        field=DEVICE_HEADER)
    if claimed is None and not shared:
        raise unauthorized("peer credentials missing or wrong: prove a device key "
                           "(a node of 0.3 or later) or give the cluster secret")
    if claimed is None:
        why = gossip.admission.keyless_refusal(shared=shared, peer=request.remote)
        if why is not None:
            return refuse_keyless(why)
    else:
        # A bearer that is not our secret (``shared`` is False): a wrong one.
        refused = gossip.admit(claimed[0], shared=shared,
                               wrong_secret=bool(auth.bearer(request)), remote=request.remote)
        if refused is not None:
            code, detail, text = refused
            gossip.admission.refusing(claimed[0], code, detail, remote=request.remote)
            return refuse(gossip.device, code, detail, claimed[0], claimed[1], text)
    if gossip.stopping:  # a stopping node takes no new links: it would wait on them
        # No Retry-After: a dialer takes a wait asked for as from a peer that is up and
        # busy (``PeerBusy``), and redials a node that may not come back on its own
        # back-off instead.
        raise stopping("this node is stopping: it takes no new links", retry_after_s=None)
    if len(gossip.runners) >= gossip.config.sync.peers_max:
        raise HttpError(503, "peers_full", "this node has as many peers as it keeps ([sync] "
                        f"peers_max = {gossip.config.sync.peers_max}); try again later",
                        headers={"Retry-After": str(PEERS_FULL_RETRY_AFTER_S)})
    if request.headers.get(NODE_HEADER) == gossip.astore.node_id:
        return refuse_self(gossip.astore.node_id)
    with gossip.accepted.inbound():
        try:
            link = await accept(request, gossip.config.sync, device=gossip.device,
                                claimed=claimed, logged=gossip.learning.refusals)
        # Nothing is proven of the dialer yet (it claimed a member's device id, or gave
        # the cluster secret or a certificate): bounded lines.
        except LinkRefused as exc:  # a forged or replayed proof
            gossip.admission.proof_failed(request.remote, str(exc))
        except ProofMissing as exc:  # closed, reset or silent after our signature
            gossip.admission.proof_missing(request.remote, str(exc))
        except ProofLost as exc:  # lost before our signature went out
            gossip.admission.proof_missing(request.remote, str(exc), lost=True)
        except LinkClosed as exc:  # the peer went away mid-handshake: a network fault
            gossip.admission.unproven("peer link down", log.info, peer=request.remote,
                                      reason=str(exc))
        else:
            await gossip.accepted.serve(link, shared=shared, remote=request.remote,
                                        gave_secret=credential == "secret")
    return web.Response()  # the websocket has already answered, or nobody listens


@takes_params(others=True)
async def members(request: web.Request) -> web.StreamResponse:
    """The peers this node knows, so a new node can find the rest from one address."""
    _check_peer(request)
    return respond(request, request.app[GOSSIP].member_list())


async def peers(request: web.Request) -> web.StreamResponse:
    """This node (id, head, what it runs) and per peer link: state, last contact, events
    behind, bytes in and out, what the peer runs; a peer whose link to us ended stays,
    ``down``, until it links again. Apart from the links, the learned addresses held off
    after their failures (``held_off``, the longest held first, and ``held_off_total``),
    and how many addresses are not dialed now by why (``held_off_kinds``,
    ``node.peers.rows.HELD_OFF_KINDS``: ``failing`` is ``held_off_total``)."""
    gossip: Gossip = request.app[GOSSIP]
    held_off, held_off_total = gossip.held_off()
    return respond(request, {"node_id": gossip.astore.node_id, "head": gossip.astore.head,
                             "software": gossip.about.software, "schema": gossip.about.schema,
                             "device": gossip.device_status(), "peers": gossip.peers(),
                             "held_off": held_off, "held_off_total": held_off_total,
                             "held_off_kinds": gossip.held_off_kinds(held_off_total)})


async def origins(request: web.Request) -> web.StreamResponse:
    """Every origin this node knows: its highest seq, last activity and whether it is
    active or retired (``EventStore.origins``)."""
    astore = request.app[GOSSIP].astore
    rows, active = await astore.read(lambda store: (store.origins(), len(store.version)))
    return respond(request, {"node_id": astore.node_id, "active": active, "origins": rows})


#: An origin as nodes make them (a random node id, or one bound to a device key).
_ORIGIN_ID = re.compile(f"[0-9a-f]{{{ORIGIN_HEX_CHARS}}}")


@takes_params("force")
async def retire_origin(request: web.Request) -> web.StreamResponse:
    """Retire an origin that will never write again, at the highest seq held here: 201
    with the origin's row and the retirement event, which replicates; 200 if it is
    retired at that seq or above already; 404 for an origin this node does not hold;
    400 for this node's own, and for a name it does not hold that is not an origin id;
    409 ``origin_live`` for one that still writes (a member device's current origin, a
    linked peer's: ``node.peers.live``) unless ``force=1``."""
    gossip: Gossip = request.app[GOSSIP]
    astore = gossip.astore
    origin = request.match_info["origin"]
    force = flag_param(request, "force")
    # Members and links are read here, on the event loop where they change, so they may
    # be a moment old by the time the writer runs: harmless, as a node whose origin is
    # retired while it writes takes a new origin and loses nothing. The store is read
    # and written in one writer call, so no retirement slips in between the check and
    # the append, and only a retirement about to be appended is checked: a repeated or
    # unknown one answers 200 or 404 whoever writes.
    members = gossip.membership.members() if gossip.membership is not None else {}
    links = live.links_up(gossip.status())

    def retire(store: EventStore) -> Appended | None:
        def may_retire() -> None:
            live.check(store, origin, members, links)

        try:
            return store.retire(origin, None if force else may_retire)
        except NotFound:
            if _ORIGIN_ID.fullmatch(origin) or _knows(store, origin):
                raise  # an origin id, or one GET /v1/origins lists, not held: 404
            # Unknown here, and not the shape of an origin any node makes: mistyped,
            # most likely. (One a peer named otherwise is known by that name: a held
            # one is retired as any other; one known only from a retirement is a 404.)
            raise InvalidInput(f"{origin!r} is not an origin id ({ORIGIN_HEX_CHARS} hex "
                               "digits, as GET /v1/origins lists them), nor an origin this "
                               "node knows", field="origin") from None

    try:
        appended = await astore.write(retire)
    except OriginLive as exc:
        raise HttpError(409, "origin_live", str(exc), field="origin") from exc
    rows = await astore.read(lambda store: store.origins())
    row = next(row for row in rows if row["origin"] == origin)
    if appended is None:
        return respond(request, {"origin": row, "event": None})
    return respond(request, {"origin": row, "event": appended.stored.to_json()}, status=201)


class TlsFileError(Picklable):
    """A file of the node's TLS that cannot be used: ``option`` names it as it was given
    (``--tls-ca PATH``, ``--tls-cert PATH with --tls-key PATH``), ``reason`` says why in
    words."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"cannot use {option}: {reason}")
        self.option, self.reason = option, reason


def _knows(store: EventStore, origin: str) -> bool:
    """Whether ``origin`` is one GET /v1/origins lists: held, or known from a retirement
    only (a peer's, of an origin it held under any name)."""
    return origin in store.version or origin in store.retiring or origin in store.retired


def server_tls(config: Config) -> ssl.SSLContext | None:
    """HTTPS for the node; with a CA, client certificates are asked for (not required:
    apps connect without one and use their token). ``TlsFileError`` naming the file
    that cannot be used."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_cert_chain(context, config.tls_cert, config.tls_key)
    if config.tls_ca is not None:
        # By path, as OpenSSL reads a CA file (``cadata`` would skip a bundle's
        # ``TRUSTED CERTIFICATE`` blocks without a word).
        try:
            context.load_verify_locations(config.tls_ca)
        except (ssl.SSLError, OSError) as error:
            raise _ca_error(config, error) from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_tls(config: Config) -> ssl.SSLContext | None:
    """What this node presents and trusts when dialing peers over HTTPS: the cluster's
    CA alone, not the system's. ``TlsFileError`` naming the file that cannot be used."""
    if config.tls_ca is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.tls_ca)
    except (ssl.SSLError, OSError) as error:
        raise _ca_error(config, error) from None
    if config.tls_cert is not None and config.tls_key is not None:
        _load_cert_chain(context, config.tls_cert, config.tls_key)
    return context


def _ca_error(config: Config, error: OSError) -> TlsFileError:
    if isinstance(error, ssl.SSLError):
        reason = f"not a PEM file of CA certificates ({error.reason or error})"
    else:
        reason = error.strerror or str(error)
    return TlsFileError(f"--tls-ca {config.tls_ca}", reason)


def _load_cert_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        reason = ("not a PEM file of the right kind, or a key of another certificate "
                  f"({error.reason or error})")
    except OSError as error:
        reason = error.strerror or str(error)
    else:
        return
    raise TlsFileError(f"--tls-cert {cert} with --tls-key {key}", reason)
