"""Login limits: failures per (name, address) and per address, shared through Redis; forwarded addresses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import websockets
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from persistence.enums import DeviceKind
from persistence.tables import Session
from server.app import create_app
from server.realtime.serving import ForwardedHeaders, GracefulServer, uvicorn_config
from server.services import Services
from server.settings import Settings
from tests.conftest import REDIS_URL
from tests.live import add_device, free_port
from tests.world import PASSWORD, World

LOGIN = "/api/v1/auth/login"
DEVICE_LOGIN = "/api/v1/auth/device"
STRANGER = "203.0.113.66"
OWNER = "198.51.100.7"
TIMEOUT_S = 30


@asynccontextmanager
async def client_at(services: Services, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client whose requests come from `address`."""
    transport = httpx.ASGITransport(app=create_app(services=services), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    """POST a username and password to the login route."""
    async with asyncio.timeout(TIMEOUT_S):
        return await client.post(LOGIN, json={"username": username, "password": password}, headers=headers)


async def device_login(client: httpx.AsyncClient, device_id: int, secret: str = PASSWORD) -> httpx.Response:
    """POST a device id and secret to the device login route."""
    async with asyncio.timeout(TIMEOUT_S):
        return await client.post(DEVICE_LOGIN, json={"device_id": device_id, "secret": secret})


@pytest.fixture
def settings(backend: str) -> Settings:
    """The suite's settings with a small login limit, so that a test reaches it in a few guesses."""
    redis_url = REDIS_URL if backend == "postgresql" else None
    return Settings(_env_file=None, ENVIRONMENT="test", REDIS_URL=redis_url, LOGIN_RATE_LIMIT=3)


# --- Users -------------------------------------------------------------------


async def test_login_is_rate_limited_per_username(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Past the limit a login gets `rate_limited` with Retry-After, even with the right password."""
    limit = services.settings.LOGIN_RATE_LIMIT
    for _ in range(limit):
        assert (await login(client, "staff.b", "wrong")).status_code == 401
    blocked = await login(client, "staff.b")
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) >= 1
    # Another username from the same address is not blocked yet.
    assert (await login(client, "staff.a")).status_code == 200


async def test_login_is_rate_limited_per_address(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Spraying many usernames from one address is stopped too."""
    limit = services.settings.LOGIN_RATE_LIMIT * 5
    for i in range(limit):
        await login(client, f"user{i}", "wrong")
    assert (await login(client, "admin")).status_code == 429


async def test_a_strangers_failures_do_not_lock_the_owner_out(services: Services, world: World) -> None:
    """Wrong passwords from one address block that address for the name, not the owner elsewhere."""
    limit = services.settings.LOGIN_RATE_LIMIT
    async with client_at(services, STRANGER) as stranger, client_at(services, OWNER) as owner:
        for _ in range(limit):
            assert (await login(stranger, "staff.b", "wrong")).status_code == 401
        assert (await login(stranger, "staff.b")).status_code == 429
        assert (await login(owner, "staff.b")).status_code == 200


async def test_successful_logins_are_not_counted(services: Services, world: World) -> None:
    """Logging in often with the right password never reaches the limit, nor eats into the failures allowed."""
    limit = services.settings.LOGIN_RATE_LIMIT
    async with client_at(services, OWNER) as owner:
        for _ in range(limit + 1):
            assert (await login(owner, "staff.b")).status_code == 200
        for _ in range(limit - 1):
            assert (await login(owner, "staff.b", "wrong")).status_code == 401
        assert (await login(owner, "staff.b")).status_code == 200


async def test_concurrent_failures_cannot_overshoot_the_limit(services: Services, world: World) -> None:
    """Guesses sent all at once are counted before they are checked: only `limit` of them are tried."""
    limit = services.settings.LOGIN_RATE_LIMIT
    async with client_at(services, STRANGER) as stranger:
        answers = await asyncio.gather(*(login(stranger, "staff.b", "wrong") for _ in range(2 * limit)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [401] * limit + [429] * limit


# --- Devices -----------------------------------------------------------------


async def test_a_strangers_wrong_secrets_do_not_lock_a_device_out(services: Services, world: World) -> None:
    """Wrong secrets for a device id from one address leave the device free to log in from its own."""
    limit = services.settings.LOGIN_RATE_LIMIT
    device_id, _ = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with client_at(services, STRANGER) as stranger, client_at(services, OWNER) as device:
        for _ in range(limit):
            assert (await device_login(stranger, device_id, "wrong")).status_code == 401
        assert (await device_login(stranger, device_id)).status_code == 429
        assert (await device_login(device, device_id)).status_code == 200


async def test_successful_device_logins_are_not_counted(services: Services, world: World) -> None:
    """A device that logs in more often than the limit (restarts, reconnects) is never refused."""
    limit = services.settings.LOGIN_RATE_LIMIT
    device_id, _ = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with client_at(services, OWNER) as device:
        for _ in range(limit + 1):
            assert (await device_login(device, device_id)).status_code == 200


# --- Forwarded addresses, through a real server -----------------------------


@asynccontextmanager
async def serving(services: Services, settings: Settings) -> AsyncIterator[str]:
    """Serve the app over real sockets on loopback with `settings`; yields its base URL."""
    port = free_port()
    app = create_app(services=services)
    server = GracefulServer(uvicorn_config(app, settings, host="127.0.0.1", port=port), services)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            # uvicorn exposes only a flag for "started".
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def recorded_address(services: Services) -> str | None:
    """The client address of the newest login session."""
    async with services.db.session() as session:
        return await session.scalar(select(Session.client_address).order_by(Session.created_at.desc()).limit(1))


async def test_a_spoofed_forwarded_for_from_loopback_is_ignored_by_default(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no trusted proxy configured, X-Forwarded-For neither moves the address nor escapes its limit."""
    # uvicorn would read this variable itself; the server's own default must win.
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    per_address = services.settings.LOGIN_RATE_LIMIT * 5
    async with (
        serving(services, Settings(_env_file=None, ENVIRONMENT="test")) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        for i in range(per_address):
            spoofed = f"192.0.2.{i + 1}"
            answer = await login(http, f"nobody{i}", "wrong", **{"X-Forwarded-For": spoofed})
            assert answer.status_code == 401
        blocked = await login(http, "staff.b", **{"X-Forwarded-For": "192.0.2.200"})
        assert blocked.status_code == 429
    async with client_at(services, OWNER) as owner:
        assert (await login(owner, "staff.b")).status_code == 200


async def test_the_forwarded_address_is_recorded_only_from_a_trusted_proxy(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loopback is an untrusted peer unless FORWARDED_ALLOW_IPS names it, even when uvicorn's own variable does."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    untrusted = Settings(_env_file=None, ENVIRONMENT="test", FORWARDED_ALLOW_IPS="")
    async with serving(services, untrusted) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await login(http, "staff.b", **{"X-Forwarded-For": "192.0.2.1"})).status_code == 200
    assert await recorded_address(services) == "127.0.0.1"


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        # The rightmost address no trusted proxy wrote: what the client itself put first is ignored.
        ("127.0.0.1,10.0.0.0/8", "198.51.100.9"),
        # `*` trusts the peer, and takes the address it added (the rightmost), never the client's own claim.
        ("*", "10.1.2.3"),
    ],
)
async def test_a_trusted_proxy_gives_the_clients_address(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch, trusted: str, expected: str
) -> None:
    """Behind trusted proxies, the address recorded is the one the nearest untrusted hop connected from."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    settings = Settings(_env_file=None, ENVIRONMENT="test", FORWARDED_ALLOW_IPS=trusted)
    chain = "192.0.2.1, 198.51.100.9, 10.1.2.3"
    async with serving(services, settings) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await login(http, "staff.b", **{"X-Forwarded-For": chain})).status_code == 200
    assert await recorded_address(services) == expected


async def test_a_device_socket_works_behind_a_trusted_proxy(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forwarded-header layer keeps the socket's transport: a device says hello and is welcomed."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    settings = Settings(_env_file=None, ENVIRONMENT="test", FORWARDED_ALLOW_IPS="127.0.0.1")
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with serving(services, settings) as url:
        ws_url = url.replace("http", "ws", 1) + "/api/v1/ws"
        headers = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"}
        async with websockets.connect(ws_url, additional_headers=headers, open_timeout=TIMEOUT_S) as ws:
            async with asyncio.timeout(TIMEOUT_S):
                await ws.send(json.dumps({"type": "hello", "token": token}))
                welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome"


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app that is never called: the chain is read without one."""


@pytest.mark.parametrize(
    ("trusted", "chain", "expected"),
    [
        (["10.0.0.0/8"], "[2001:db8::1]:443, 10.0.0.2:8080", "2001:db8::1"),
        (["10.0.0.0/8"], "203.0.113.5:1234", "203.0.113.5"),
        # An IPv4 hop seen through a dual-stack socket is still the IPv4 proxy it is.
        (["10.0.0.0/8"], "1.2.3.4, ::ffff:10.0.0.2", "1.2.3.4"),
        # Every hop a trusted proxy: the request began inside, at the first hop written.
        (["10.0.0.0/8"], "10.0.0.7, 10.0.0.2", "10.0.0.7"),
        # What no proxy could have written as an address leaves the peer's own address in place.
        (["*"], "192.0.2.1, unknown", None),
        (["*"], "", None),
    ],
)
def test_the_client_is_read_from_the_chain_conservatively(trusted: list[str], chain: str, expected: str | None) -> None:
    """Ports and brackets are dropped, trusted hops skipped, and a hop that is no address is not taken."""
    forwarded = ForwardedHeaders(_no_app, trusted)
    assert forwarded.client(chain) == expected
