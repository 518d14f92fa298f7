"""Whether a TLS error is the other side's alert: its TLS refused the connection and
sent why (OpenSSL names it: ``TLSV1_ALERT_UNKNOWN_CA``, ``SSLV3_ALERT_CERTIFICATE_EXPIRED``),
rather than a failure of this side's own (a certificate it did not verify, a connection
lost). Its own module, so that the peers' dials (``node.peers.dial_words``) and the
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

#: Alerts Python 3.11 has no name for (its table of OpenSSL's reasons is older than
#: OpenSSL 3), by the words OpenSSL 3 says them in: their error comes with no reason,
#: only the words, and is named here as OpenSSL names it.
_UNNAMED_BY_PYTHON = {"tlsv1 alert unknown psk identity": "TLSV1_ALERT_UNKNOWN_PSK_IDENTITY"}


def alert(error: BaseException | None) -> str | None:
    """The name of the TLS alert ``error`` is (OpenSSL's reason), or None if it is none.

    >>> refused = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    >>> refused.reason = "TLSV1_ALERT_UNKNOWN_CA"
    >>> alert(refused)
    'TLSV1_ALERT_UNKNOWN_CA'
    >>> unnamed = ssl.SSLError(1, "[SSL: TLSV1_UNRECOGNIZED_NAME] tlsv1 unrecognized name")
    >>> unnamed.reason = "TLSV1_UNRECOGNIZED_NAME"
    >>> alert(unnamed)
    'TLSV1_UNRECOGNIZED_NAME'
    >>> alert(ssl.SSLError(1, "[SSL] tlsv1 alert unknown psk identity (_ssl.c:1006)"))
    'TLSV1_ALERT_UNKNOWN_PSK_IDENTITY'
    >>> ours = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    >>> ours.reason = "WRONG_VERSION_NUMBER"
    >>> alert(ours), alert(ssl.SSLError()), alert(ConnectionResetError()), alert(None)
    (None, None, None, None)
    """
    if not isinstance(error, ssl.SSLError):
        return None
    reason = getattr(error, "reason", None)
    if reason is None:  # one Python has no name for, or one made by hand, not by OpenSSL
        return _UNNAMED_BY_PYTHON.get(openssl_words(error))
    return reason if "_ALERT_" in reason or reason in _UNMARKED else None


def openssl_words(error: ssl.SSLError) -> str:
    """What OpenSSL said of ``error`` that Python gave no reason for: its words alone,
    without Python's library tag and source line.

    >>> openssl_words(ssl.SSLError(1, "[SSL] unknown error (_ssl.c:1006)"))
    'unknown error'
    >>> openssl_words(ssl.SSLError())
    ''
    """
    said = str(error.args[1]) if len(error.args) > 1 else ""
    return re.sub(r"^\[[A-Z0-9_]+\] | \(_ssl\.c:\d+\)$", "", said)
