"""Whether a TLS error is the other side's answer in TLS: an alert, its TLS refusing
the connection and sending why (OpenSSL names it: ``TLSV1_ALERT_UNKNOWN_CA``,
``SSLV3_ALERT_CERTIFICATE_EXPIRED``; or has no words for it), or TLS's own close, rather
than a failure of this side's own (a certificate it did not verify, a connection lost).
Its own module, so that the peers' dials (``node.peers.dial_words``) and the
client's TLS probe (``node.client.tls_probe``), which may not import ``node.peers``,
read it one way.
"""

from __future__ import annotations

import re
import ssl

#: The alerts OpenSSL 3 names without ``_ALERT_`` when one comes (over TLS 1.2 and 1.3
#: alike): ``unrecognized_name`` is one a server asked for a name it does not serve sends.
_UNMARKED = frozenset({"TLSV1_UNRECOGNIZED_NAME", "TLSV1_UNSUPPORTED_EXTENSION",
                       "TLSV1_CERTIFICATE_UNOBTAINABLE", "TLSV1_BAD_CERTIFICATE_HASH_VALUE",
                       "TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE"})

#: How OpenSSL names an alert that came: the TLS version that defined it, then
#: ``_ALERT_``. Matched whole, as other reasons have ``_ALERT_`` in them too: OpenSSL's
#: own ``UNKNOWN_ALERT_TYPE`` (an alert record whose level is neither warning nor fatal)
#: is a record it could not read, not an alert the other side sent.
_ALERT_NAME = re.compile(r"(SSLV3|TLSV1|TLSV13)_ALERT_\w+")

#: How OpenSSL says an alert that came (``tlsv1 alert unknown ca``), read only for the
#: alerts Python's table of OpenSSL's reasons lacks (it is older than OpenSSL 3, and has
#: every alert of SSL 3 but not all of TLS 1.0 and later: ``unknown psk identity``, ``no
#: application protocol``): their errors come with these words alone, and are named from
#: them as OpenSSL names them (``TLSV1_ALERT_UNKNOWN_PSK_IDENTITY``). OpenSSL 3.2 says
#: those of SSL 3 ``ssl/tls alert`` (``sslv3 alert`` before), still named ``SSLV3_ALERT_``.
_ALERT_WORDS = re.compile(r"^(sslv3|ssl/tls|tlsv1|tlsv13) alert (.+)$")

#: What OpenSSL says, with no reason, of an alert it has no words for: close_notify sent
#: as fatal (as an OpenSSL server whose hello callback answered it does), or a number no
#: TLS version defines.
_WORDLESS_ALERT = "unknown error"


def alert(error: BaseException | None) -> str | None:
    """The name of the TLS alert ``error`` is (OpenSSL's reason), or None if it is none.

    >>> refused = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    >>> refused.library, refused.reason = "SSL", "TLSV1_ALERT_UNKNOWN_CA"
    >>> alert(refused)
    'TLSV1_ALERT_UNKNOWN_CA'
    >>> unnamed = ssl.SSLError(1, "[SSL: TLSV1_UNRECOGNIZED_NAME] tlsv1 unrecognized name")
    >>> unnamed.library, unnamed.reason = "SSL", "TLSV1_UNRECOGNIZED_NAME"
    >>> alert(unnamed)
    'TLSV1_UNRECOGNIZED_NAME'
    >>> psk = ssl.SSLError(1, "[SSL] tlsv1 alert unknown psk identity (_ssl.c:1006)")
    >>> psk.library = "SSL"
    >>> alert(psk)
    'TLSV1_ALERT_UNKNOWN_PSK_IDENTITY'
    >>> ssl3 = ssl.SSLError(1, "[SSL] ssl/tls alert bad certificate (_ssl.c:1006)")
    >>> ssl3.library = "SSL"  # OpenSSL 3.2's words for it
    >>> alert(ssl3)
    'SSLV3_ALERT_BAD_CERTIFICATE'
    >>> ours = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    >>> ours.library, ours.reason = "SSL", "WRONG_VERSION_NUMBER"
    >>> unread = ssl.SSLError(1, "[SSL: UNKNOWN_ALERT_TYPE] unknown alert type")
    >>> unread.library, unread.reason = "SSL", "UNKNOWN_ALERT_TYPE"  # not the other's
    >>> alert(ours), alert(unread), alert(ssl.SSLError()), alert(ConnectionResetError())
    (None, None, None, None)
    >>> alert(None)
    """
    if not isinstance(error, ssl.SSLError):
        return None
    reason = getattr(error, "reason", None)
    if reason is None:  # one Python has no name for, or one made by hand, not by OpenSSL
        said = _ALERT_WORDS.match(_tls_words(error))
        return None if said is None else \
            f"{said[1].replace('ssl/tls', 'sslv3')}_alert_{said[2]}".upper().replace(" ", "_")
    return reason if _ALERT_NAME.fullmatch(reason) or reason in _UNMARKED else None


def wordless_alert(error: BaseException | None) -> bool:
    """Whether ``error`` is an alert that OpenSSL has no words for (``_WORDLESS_ALERT``).

    >>> wordless = ssl.SSLError(1, "[SSL] unknown error (_ssl.c:1006)")
    >>> wordless.library = "SSL"
    >>> wordless_alert(wordless)
    True
    >>> other = ssl.SSLError(1, "[X509] unknown error (_ssl.c:1006)")
    >>> other.library = "X509"  # not TLS's own: not of the connection
    >>> wordless_alert(other), wordless_alert(ssl.SSLError()), wordless_alert(None)
    (False, False, False)
    """
    return isinstance(error, ssl.SSLError) and getattr(error, "reason", None) is None \
        and _tls_words(error) == _WORDLESS_ALERT


def closed_in_tls(error: BaseException | None) -> bool:
    """Whether ``error`` is TLS's own close (close_notify, as a warning) of the other
    side: OpenSSL says it with ``SSLZeroReturnError``."""
    return isinstance(error, ssl.SSLZeroReturnError)


def answered_in_tls(error: BaseException | None) -> bool:
    """Whether ``error`` is the other side's answer in TLS: an alert, named or not, or
    TLS's own close. A side that speaks TLS, though it took not this connection."""
    return alert(error) is not None or wordless_alert(error) or closed_in_tls(error)


def _tls_words(error: ssl.SSLError) -> str:
    """What OpenSSL's TLS (its library ``SSL``) said of ``error`` that Python gave no
    reason for: its words alone, without Python's library tag and source line; "" if
    none, or of another library (a certificate's, a key's), which sends no alert.

    >>> said = ssl.SSLError(1, "[SSL] unknown error (_ssl.c:1006)")
    >>> said.library = "SSL"
    >>> _tls_words(said), _tls_words(ssl.SSLError())
    ('unknown error', '')
    """
    if getattr(error, "library", None) != "SSL":
        return ""
    said = str(error.args[1]) if len(error.args) > 1 else ""
    return re.sub(r"^\[[A-Z0-9_]+\] | \(_ssl\.c:\d+\)$", "", said)
