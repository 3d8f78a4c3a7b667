"""Random frames against a live server: after a kiosk's hello, and as the hello itself (docs/protocol.md).

Each frame after hello gets exactly one reply (or a pong, for a ping) with a stable error
code, never `internal`, and the socket stays open; or the connection is closed with a
code of the "Close codes" table for the cause (a frame over the size limit, too many
bad frames or refused commands, text that is not UTF-8). Each frame as the hello gets
the 4001 close (a welcome only for a hello with a valid token). Meanwhile a kitchen
display connected throughout keeps getting its replies, and the server logs no warning.

The runs are seeded (`derandomize`) and small; hypothesis runs in a worker thread and
hands each example to the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from hypothesis import strategies as st

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server
from tests.realtime.fuzz_frames import (
    CHANNELS,
    FRAMES,
    JSON,
    NOT_UTF8_CLOSE,
    NUMBERS,
    Fuzzed,
    documented_closes,
    expected_closes,
)
from tests.realtime.fuzz_runs import TIMEOUT_S, Kiosk, Logged, answers, check_answers, check_hello, fuzz
from tests.world import World

RUN_LIMIT_S = 120.0
AFTER_HELLO_EXAMPLES = 100
AS_HELLO_EXAMPLES = 40
# The second device asks for the menu every this many examples (and once at the end).
BYSTANDER_EVERY = 10


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The runtime's settings with room for many bad frames: the fuzzer means to reach the replies."""
    return settings.model_copy(update={"WS_MAX_BAD_FRAMES": 1000})


# The socket layer is the same on both runtimes: the fuzzer runs on the production one (PostgreSQL and Redis).
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def logged() -> Any:
    """The server's warnings and errors, captured."""
    handler = Logged()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


async def test_random_frames_after_hello_get_one_stable_reply(services: Services, world: World, logged: Logged) -> None:
    """Random frames after a kiosk's hello get one reply each, never `internal`, or a documented close."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, kitchen_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    examples = 0
    async with live_server(services) as live, DeviceClient(live.ws, kitchen_token) as bystander:
        kiosk = Kiosk(live.ws, kiosk_token)

        async def check(frame: Fuzzed) -> None:
            nonlocal examples
            ws = await kiosk.open()
            answered, code = await answers(ws, frame)
            if code is not None:
                kiosk.ws = None
            check_answers(frame, answered, code, logged.take())
            examples += 1
            if examples % BYSTANDER_EVERY == 0:
                await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)

        loop = asyncio.get_running_loop()
        await asyncio.wait_for(asyncio.to_thread(fuzz, loop, FRAMES, AFTER_HELLO_EXAMPLES, check), RUN_LIMIT_S)
        await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)
        await kiosk.close()
    assert examples == AFTER_HELLO_EXAMPLES
    assert not logged.take(), "the server logged warnings or errors"


HELLO_FRAMES = st.one_of(
    FRAMES,
    st.builds(
        lambda token, resume: Fuzzed(json.dumps({"type": "hello", "token": token, "resume": resume})),
        st.one_of(st.text(max_size=30), st.sampled_from(["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "Bearer x"])),
        JSON,
    ),
    st.builds(lambda extra: Fuzzed(json.dumps({"type": "hello", **extra})), st.dictionaries(st.text(max_size=6), JSON)),
)


async def test_random_first_frames_are_refused_with_4001(services: Services, world: World, logged: Logged) -> None:
    """A random first frame closes the socket with 4001 (or a documented WebSocket-layer close), nothing else."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, kitchen_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    # Half of the hellos carry the kiosk's valid token, with random resume positions.
    with_token = st.builds(
        lambda resume: Fuzzed(
            json.dumps({"type": "hello", "token": kiosk_token, "resume": resume}), notes={"valid": True}
        ),
        st.one_of(JSON, st.dictionaries(CHANNELS, st.fixed_dictionaries({"seq": NUMBERS, "epoch": JSON}))),
    )
    examples = 0
    async with live_server(services) as live, DeviceClient(live.ws, kitchen_token) as bystander:

        async def check(frame: Fuzzed) -> None:
            nonlocal examples
            outcome, code = await check_hello(live.ws, frame, bool(frame.notes.get("valid")))
            context = f"\n{frame.shown()}\nclose: {code}\nserver log: {logged.take() or '(nothing)'}"
            if outcome == "closed":
                allowed = {4001} | (expected_closes(frame) & {NOT_UTF8_CLOSE, 1009})
                assert code in allowed and code in documented_closes(), "a bad hello's close" + context
            examples += 1
            if examples % BYSTANDER_EVERY == 0:
                await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)

        loop = asyncio.get_running_loop()
        strategy = st.one_of(HELLO_FRAMES, with_token)
        await asyncio.wait_for(asyncio.to_thread(fuzz, loop, strategy, AS_HELLO_EXAMPLES, check), RUN_LIMIT_S)
        await asyncio.wait_for(bystander.command("menu.get", {}), TIMEOUT_S)
    assert examples == AS_HELLO_EXAMPLES
    assert not logged.take(), "the server logged warnings or errors"
