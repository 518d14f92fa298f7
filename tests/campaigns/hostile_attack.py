"""The attack of the hostile-input campaign (``tests.campaigns.hostile``): the workers
sending single cases over raw connections and websockets, the floods from other loopback
addresses, the ``/healthz`` sampler, and the tally of what the node answered. Apart from
the campaign's set-up and checks: this part only sends, reads and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.campaigns.common import CampaignNode
from tests.campaigns.hostile_cases import (
    GENERATORS,
    Case,
    HttpCase,
    Target,
    WsCase,
    bearer,
    request,
)

#: Seconds a single case may take before it counts as unanswered.
CASE_TIMEOUT_S = 15.0
#: Most answer bytes read (the rest is dropped with the connection).
ANSWER_BYTES_MAX = 64 * 1024 * 1024
#: Seconds to wait, after the last frame, for the node to close a hostile websocket.
WS_WAIT_S = 1.5
#: Seconds between /healthz samples, and how long one may take before it counts as
#: unanswered (its latency is then this timeout).
HEALTHZ_EVERY_S = 0.2
HEALTHZ_TIMEOUT_S = 5.0
#: Sizes of floods (connections or streams) and how long one is held.
FLOOD_SIZES = (200, 600, 1100)
FLOOD_HOLD_S = (3.0, 8.0)
FLOOD_PAUSE_S = (1.0, 4.0)


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    ws_closes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    accepted_events: int = 0
    #: Events that appends left unanswered (timed out, dropped) could have stored.
    unanswered_events_max: int = 0
    accepted_keys: set[str] = field(default_factory=set)
    healthz_s: list[float] = field(default_factory=list)
    healthz_unanswered: int = 0

    def unanswered(self, case: HttpCase) -> None:
        """An append left unanswered may have been stored: what it could have written."""
        if case.writes:
            self.unanswered_events_max += case.events_max()
            key = case.session_key()
            if key is not None:
                self.accepted_keys.add(key)

    def answer(self, status: int | None, category: str, what: str) -> None:
        kind = status_class(status)
        self.answers[kind] += 1
        if kind == "5xx (not 503)":
            self.failures.append(f"{category}: {what} -> {status}")


def status_class(status: int | None) -> str:
    if status is None:
        return "no answer (closed or timed out)"
    if status == 101:
        return "101 upgraded"
    if status == 503:
        return "503 refused (overload)"
    if status >= 500:
        return "5xx (not 503)"
    return f"{status // 100}xx"


# -- raw HTTP ------------------------------------------------------------------------------


async def exchange(port: int, raw: bytes, source: str = "127.0.0.1",
                   timeout_s: float = CASE_TIMEOUT_S) -> tuple[int | None, bytes]:
    """Send ``raw`` on a new connection, read the answer until the node closes it; its
    status (None: no status line) and body."""
    writer = None
    answer = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(source, 0))
            writer.write(raw)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            while len(answer) < ANSWER_BYTES_MAX:
                try:
                    chunk = await reader.read(1024 * 1024)
                except ConnectionError:
                    break
                if not chunk:
                    break
                answer += chunk
    except (TimeoutError, OSError):
        pass  # what came before the timeout or the reset is the answer
    finally:
        if writer is not None:
            writer.close()
    raw = bytes(answer)
    return parse_status(raw), raw.partition(b"\r\n\r\n")[2]


def parse_status(answer: bytes) -> int | None:
    parts = answer.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def stored_events(body: bytes) -> tuple[int, set[str]]:
    """Events and sessions in an append's answer (plain or chunked)."""
    with contextlib.suppress(ValueError):
        answer = json.loads(body)
        events = answer["events"]
        return len(events), {event["session_key"] for event in events}
    # Chunked: hex size lines between the pieces.
    pieces, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line or b"0", 16)
        if size == 0:
            break
        pieces.append(rest[:size])
        rest = rest[size + 2:]
    answer = json.loads(b"".join(pieces))
    events = answer["events"]
    return len(events), {event["session_key"] for event in events}


# -- the run -------------------------------------------------------------------------------


@dataclass
class Attack:
    node: CampaignNode
    target: Target
    stats: Stats
    deadline: float
    http: aiohttp.ClientSession


async def run_http(attack: Attack, category: str, case: HttpCase, label: str) -> None:
    status, body = await exchange(attack.node.port, case.raw)
    attack.stats.answer(status, category, case.what + label)
    if status is None:
        attack.stats.unanswered(case)
    if case.writes and status is not None and 200 <= status < 300:
        try:
            count, keys = stored_events(body)
        except (ValueError, KeyError, TypeError):
            attack.stats.failures.append(f"{category}: {case.what}{label}: 2xx answer not read")
            return
        attack.stats.accepted_events += count
        attack.stats.accepted_keys |= keys


async def run_ws(attack: Attack, category: str, case: WsCase, label: str) -> None:
    url = attack.node.url + case.path
    try:
        ws = await attack.http.ws_connect(url, headers=case.headers, max_msg_size=0,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
    except aiohttp.WSServerHandshakeError as error:
        attack.stats.answer(error.status, category, case.what + label)
        return
    except (aiohttp.ClientError, OSError, TimeoutError):
        attack.stats.answer(None, category, case.what + label)
        return
    attack.stats.answer(101, category, case.what + label)
    async with ws:
        for frame in case.frames:
            if ws.closed:
                break
            with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_bytes(frame)
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
            async with asyncio.timeout(WS_WAIT_S):
                async for _ in ws:
                    pass  # the node's answers; what counts is how it closes
        code = ws.close_code
    closed = "left open" if code is None else str(code)
    attack.stats.ws_closes[closed] += 1
    if code == 1011:
        attack.stats.failures.append(f"{category}: {case.what}{label} -> websocket closed 1011")


async def worker(attack: Attack, seed: int, number: int, only: str | None) -> None:
    rng = random.Random(f"{seed}.w{number}")
    names = [name for name in GENERATORS if only in (None, name)]
    weights = [GENERATORS[name][1] for name in names]
    case_number = 0
    while time.monotonic() < attack.deadline:
        category = rng.choices(names, weights)[0]
        case: Case = GENERATORS[category][0](rng, attack.target)
        case_number += 1
        attack.stats.requests[category] += 1
        label = f" (worker {number}, case {case_number})"
        try:
            async with asyncio.timeout(CASE_TIMEOUT_S):  # a websocket the node stopped reading
                if isinstance(case, HttpCase):
                    await run_http(attack, category, case, label)
                else:
                    await run_ws(attack, category, case, label)
        except TimeoutError:
            attack.stats.answer(None, category, case.what + label)
            if isinstance(case, HttpCase):
                attack.stats.unanswered(case)


# -- floods --------------------------------------------------------------------------------


async def open_many(port: int, source: str, count: int,
                    first_bytes: bytes = b"") -> list[asyncio.StreamWriter]:
    """``count`` connections from ``source``, each sent ``first_bytes``; those that open."""
    async def one() -> asyncio.StreamWriter | None:
        try:
            async with asyncio.timeout(CASE_TIMEOUT_S):
                _, writer = await asyncio.open_connection("127.0.0.1", port,
                                                          local_addr=(source, 0))
                if first_bytes:
                    writer.write(first_bytes)
                    await writer.drain()
                return writer
        except (OSError, TimeoutError):
            return None
    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [writer for writer in opened if writer is not None]


async def idle_flood(attack: Attack, rng: random.Random) -> None:
    count = rng.choice(FLOOD_SIZES)
    source = f"127.0.0.{rng.randint(2, 250)}"
    partial = rng.choice([b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
    name = "flood: idle connections" if not partial else "flood: unfinished headers"
    attack.stats.requests[name] += count
    writers = await open_many(attack.node.port, source, count, partial)
    await asyncio.sleep(rng.uniform(*FLOOD_HOLD_S))
    for writer in writers:
        writer.close()


async def stream_flood(attack: Attack, rng: random.Random) -> None:
    """SSE streams that are opened, answered, and then never read."""
    count = rng.choice(FLOOD_SIZES)
    source = f"127.0.0.{rng.randint(2, 250)}"
    raw = request("GET", "/v1/events?after=0", [bearer(attack.target.token),
                                                  (b"Accept", b"text/event-stream")],
                  host=attack.target.host).replace(b"Connection: close\r\n", b"")
    attack.stats.requests["flood: SSE streams"] += count
    writers = await open_many(attack.node.port, source, count, raw)
    await asyncio.sleep(rng.uniform(*FLOOD_HOLD_S))
    for writer in writers:
        writer.close()


async def read_flood(attack: Attack, rng: random.Random) -> None:
    """Pages of large events: some read whole, some requested and never read."""
    raw = request("GET", "/v1/events?after=0&limit=1000", [bearer(attack.target.token)],
                  host=attack.target.host)
    stalled = rng.randint(1, 3)
    attack.stats.requests["flood: large reads"] += stalled + 1
    writers = await open_many(attack.node.port, f"127.0.0.{rng.randint(2, 250)}", stalled, raw)
    status, _ = await exchange(attack.node.port, raw, timeout_s=CASE_TIMEOUT_S * 2)
    attack.stats.answer(status, "flood: large reads", "page of large events")
    await asyncio.sleep(rng.uniform(*FLOOD_HOLD_S))
    for writer in writers:
        writer.close()


async def floods(attack: Attack, seed: int) -> None:
    rng = random.Random(f"{seed}.floods")
    kinds = [idle_flood, stream_flood, read_flood]
    while time.monotonic() < attack.deadline:
        await asyncio.sleep(rng.uniform(*FLOOD_PAUSE_S))
        if time.monotonic() < attack.deadline:
            await rng.choice(kinds)(attack, rng)


async def sample_healthz(attack: Attack) -> None:
    raw = request("GET", "/healthz", host=attack.target.host)
    while time.monotonic() < attack.deadline:
        started = time.monotonic()
        status, _ = await exchange(attack.node.port, raw, timeout_s=HEALTHZ_TIMEOUT_S)
        attack.stats.healthz_s.append(time.monotonic() - started)
        if status != 200:
            attack.stats.healthz_unanswered += 1
        await asyncio.sleep(HEALTHZ_EVERY_S)
