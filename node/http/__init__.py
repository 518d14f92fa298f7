"""What every HTTP endpoint of a node shares: request bodies, answers and errors as
answers (``wire``), errors about HTTP itself (``errors``), path and query parameters
(``params``), the request line checks aiohttp's pure-Python parser leaves out
(``request_line``) and the bounds on a request's head either parser keeps
(``head_limits``), the one credential check (``auth``), the connection-capped listener
(``listener``), metrics (``metrics``).

May import: crdt, node
"""
