"""Addresses that hold a password a URL parser would not read as one, for the tests of
each place an address is given (``--peer``, ``--advertise-url``, ``--node``, a device's
address): each is refused without the password ("hunter2") being shown."""

#: A path to a parser ("http:///", "http:/", "http//", "http:\\"), or a scheme "user" when
#: a "://" comes later; or a password with a "/", "?" or "#" typed as it is, which ends the
#: host early (its port is then no number), or a "\\" after a password of digits, which
#: a parser keeps in the password.
HIDDEN_PASSWORDS = ["http://user:hunter2@hub:7878", "http:///user:hunter2@hub:7878",
                    "user:hunter2@hub:7878/?next=http://x", "user:hunter2@hub#http://x",
                    "http:/user:hunter2@hub", "HTTP:/user:hunter2@hub:7878",
                    "http//user:hunter2@hub", "http:\\\\user:hunter2@hub",
                    "http://user:hunter2/x@hub", "user:hunter2/x@hub:7878",
                    "http://user:hunter2?x@hub/", "http://user:hunter2#x@hub/",
                    "user:hunter2?x@hub:7878", "HTTPS://user:hunter2@hub:7878",
                    "http://user:hunter2/?x@hub", "http://user:1\\hunter2@hub:7878",
                    "user:1\\hunter2@hub:7878", "http:\\\\user:1\\hunter2@hub",
                    "http://user:1\\\\hunter2@hub/", "http://user:1\\hunter2\\x@hub",
                    "http://user:1;hunter2@hub", "http://user:1 hunter2@hub"]

#: Addresses with a credential ("hunter2") in their query or fragment, under any name
#: (every query and fragment is refused, never shown: ``crdt.addresses.query_or_fragment``).
HIDDEN_TOKENS = ["http://hub:7878/?access_token=hunter2", "http://hub:7878?token=hunter2",
                 "https://hub/?page=2&Key=hunter2", "http://hub:7878/?SECRET=hunter2#top",
                 "http://hub/?password=hunter2", "HTTP://hub:7878/?x=1;token=hunter2",
                 "http://hub/?api_key=hunter2", "http://hub/?apikey=hunter2",
                 "http://hub/?access-token=hunter2", "http://hub/?auth=hunter2",
                 "http://hub/?sig=hunter2", "https://hub/?X-Amz-Signature=hunter2",
                 "http://hub:7878/#token=hunter2", "http://hub#hunter2", "hub:7878?hunter2"]

#: Addresses whose host name no lookup takes, and what each refusal of them says
#: (``node.checks.host_name_problem``): a URL parser takes each (or fails on it), and
#: every lookup fails. Refused the same by the node, ``--peer``, ``--node``, ``Client``
#: and ``devices add --address``.
HOST_NAMES_NO_LOOKUP_TAKES = [
    ("http://" + "p" * 64 + ".example:7878",
     "has a host name label over 63 characters (64), which no name holds"),
    ("http://" + "\u00fc" * 60 + ".example:7878",
     "has a host name label over 63 characters (66 once encoded), which no name holds"),
    ("http://a..example:7878", "has an empty label in its host name (two dots in a row)"),
    ("http://.a.example:7878", "has a host name that starts with a dot"),
    ("http://a.example..:7878", "has a host name that ends in two dots"),
    ("http://xn--zz.example:7878", "has a host name that cannot be looked up")]

#: Addresses whose host name a lookup takes though Python's IDNA 2003 codec refuses it: a
#: right-to-left label ending in a digit, which IDNA 2008 (yarl's encoding, so aiohttp's
#: lookup) allows, in its Unicode form and its ASCII "xn--" form. Taken the same by the
#: node, ``--peer``, ``--advertise-url``, ``--node``, ``Client`` and a peer list.
HOST_NAMES_A_LOOKUP_TAKES = [
    "http://xn--1-ymcl5hc.example:7878", "http://\u0645\u062b\u0627\u06441.example:7878",
    "http://\u05e9\u05dc\u05d5\u05dd1.example:7878", "http://xn--1-9hcuf1d.example:7878"]
