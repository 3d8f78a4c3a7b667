"""The words of the AsyncAPI document (server/api/asyncapi.py): summaries, notes and descriptions.

What the protocol says in prose rather than in schemas: what each channel and event is,
who may subscribe, what each close code asks of a client, and the connection's own
commands. Numbers come from the code (server/realtime/limits.py, settings, channels/rules.py), so
the text keeps up with them.
"""

from __future__ import annotations

from typing import Any

from channels import frames
from channels.rules import DEVICE_MAY_SUBSCRIBE, DEVICE_TOPICS, OWN_CHANNEL_ON_HELLO
from server.commands.router import CommandSpec
from server.realtime.limits import SocketLimits
from server.settings import Settings

CHANNEL_SUMMARIES = {
    "branch:menu": "The menu of branch b, with availability.",
    "branch:kitchen": "The kitchen queue of branch b: paid orders until they are handed over.",
    "branch:station": "The kitchen of one station of branch b (grill, fryer, drinks, expo): its lines of each order.",
    "branch:board": "The order board of branch b: numbers preparing and ready.",
    "branch:orders": "Every order and payment event of branch b, for staff.",
    "branch:devices": "The devices of branch b and whether they are online.",
    "device": "Everything addressed to device d: its carts, its orders and its payments.",
}

CHANNEL_NOTES = {
    "branch:kitchen": "`order.queued` brings a new ticket (the order just paid) and `order.completed` takes it "
    "away; `order.cancelled` will take back a paid order once refunds are served. Every event carries the whole order.",
    "branch:station": "The kitchen's events, each with the station's ticket: the order cut to the lines routed to the "
    "station (every line at the expo station), with `station`, its `bumped_at` and every working station's progress "
    "(`stations`). `station.bumped` and `station.recalled` tell a station's bump or its taking back; a ticket whose "
    "station has not bumped it is still to do. Only orders placed while the branch had stations are shown.",
    "branch:orders": "Every change of an order or a payment of the branch, with the whole order or payment; "
    "`payment.needs_refund` marks money taken for an order that could not take it, for staff to give back.",
    "device": "A kiosk hears every change of its carts (`cart.updated`) and of the orders it placed (`order.*`), "
    "each with the whole cart or order, and of its payments (`payment.<status>`). A terminal hears "
    "`payment.requested` when it must charge, `payment.cancel_requested` when it must stop, and every later change "
    "of its payments.",
}

EVENT_SUMMARIES = {
    "menu.item_updated": "An item of the menu changed, or the branch started offering it: the whole item.",
    "menu.item_removed": "An item left the branch's menu.",
    "stock.changed": "An item's availability or stock changed in the branch (86'd or back, reserved or given back); "
    "a combo's choices of that item follow it.",
    "order.placed": "A kiosk placed an order; it awaits payment.",
    "order.paid": "An order was paid.",
    "order.queued": "A paid order joined the kitchen queue.",
    "order.preparing": "The kitchen started an order.",
    "order.ready": "An order is ready for pick-up.",
    "order.recalled": "A ready order went back to preparing.",
    "order.completed": "An order was handed over.",
    "order.cancelled": "An order was cancelled: by its kiosk or unpaid in time; in the kitchen, a paid one taken back.",
    "order.refunded": "A paid order was refunded by an admin or the branch's manager.",
    "station.bumped": "A station marked its part of an order done (the last one the order waits for makes it ready).",
    "station.recalled": "A station took its bump of an order back: its part is to do again.",
    "board.updated": "An order's number moved between the board's columns.",
    "device.online": "A device got its first live connection.",
    "device.offline": "A device lost its last live connection.",
    "cart.updated": "A cart of the kiosk changed (also when it was ordered or expired).",
    "payment.requested": "The terminal is asked to charge a payment.",
    "payment.pending": "A payment was started; its terminal is asked to charge.",
    "payment.processing": "The terminal is charging.",
    "payment.approved": "The payment was approved; the order is paid.",
    "payment.declined": "The card was declined; the order still awaits payment.",
    "payment.failed": "The charge failed; the order still awaits payment.",
    "payment.cancelled": "The kiosk cancelled the payment.",
    "payment.expired": "No result came within PAYMENT_TIMEOUT_S.",
    "payment.needs_refund": "Money was taken for an order that could not take it: staff must give it back.",
    "payment.refunded": "The payment was given back.",
    "payment.cancel_requested": "The terminal is asked to stop a payment.",
}

CLOSE_CODES: dict[int, str] = {
    frames.GOING_AWAY: "server going away (restart, deploy): reconnect after the reason's retry_after seconds, resume",
    frames.TOO_BIG: "a frame over the size limit: fix the client",
    frames.TRY_AGAIN_LATER: "too many devices saying hello at once: reconnect after the reason's retry_after seconds",
    # Not the protocol's own: the WebSocket layer's keep-alive, and the handshake when the database is down.
    1011: "no answer to a ping in time, or the database unreachable during the handshake: reconnect with backoff",
    frames.PROTOCOL_ABUSE: "too many bad frames: fix the client",
    frames.UNAUTHORIZED: "no hello in time, a bad, expired or revoked token, or logged out: get a new token, reconnect",
    frames.FORBIDDEN: "the device, user or branch is disabled: stop",
    frames.TOO_SLOW: "the send queue overflowed: reconnect and resume",
    frames.RATE_LIMITED: "too many commands: back off, reconnect",
}

# The connection's own commands: name -> (summary, description).
CONNECTION_COMMANDS: dict[str, tuple[str, str]] = {
    "subscribe": (
        "Add a channel, from where the client left it or from a snapshot",
        "With `since` and `epoch` the missed events follow the reply when the channel's history still has them; "
        "otherwise one snapshot does. Then live events. A channel the principal may not see is `forbidden`; "
        "a name that is no channel is `invalid`. Subscribing again to a channel already held syncs it again.",
    ),
    "unsubscribe": (
        "Drop a channel",
        "Nothing of the channel follows the reply. Succeeds also for a channel the connection does not hold.",
    ),
    "auth.refresh": (
        "Replace the connection's token before it expires",
        "The token must be a valid access token of the same principal; the connection then closes with 4001 "
        "when the new token expires instead. `unauthorized` (bad token, or another principal's) or `forbidden` "
        "(disabled) leave the connection and its old expiry as they were.",
    ),
}


def audience(topic: str | None) -> str:
    """Who may subscribe to a channel kind and who gets it on `hello`, in words, from channels/rules.py."""
    if topic == "station":
        return (
            "users of branch b (any role), chain-wide users (admins), and `kitchen_display` devices of branch b "
            "(subscribed on hello: the kitchen displays of that station, instead of `branch:{b}:kitchen`)."
        )
    if topic is None:
        hello = " or ".join(f"`{kind}`" for kind in sorted(OWN_CHANNEL_ON_HELLO))
        return f"device d itself (subscribed on hello when it is a {hello}) and chain-wide users (admins)."
    kinds = [kind for kind, topics in DEVICE_MAY_SUBSCRIBE.items() if topic in topics]
    on_hello = [kind for kind, topics in DEVICE_TOPICS.items() if topic in topics]
    devices = (
        f"devices of branch b of kind {' or '.join(f'`{kind}`' for kind in kinds)}"
        f" (subscribed on hello: {', '.join(f'`{kind}`' for kind in on_hello) or 'none'})"
        if kinds
        else "no device"
    )
    return f"users of branch b (any role), chain-wide users (admins), and {devices}."


def command_text(spec: CommandSpec) -> str:
    """A registered command's description: its handler's docstring, who may send it, its errors."""
    errors = ", ".join(f"`{code}`" for code in spec.errors) or "none beyond the common ones"
    parts = [
        spec.description,
        f"**Who:** {spec.who.describe()}.",
        f"**Errors:** {errors}; besides, any command may fail with `invalid` (data), `forbidden` (sender), "
        "`rate_limited`, `unavailable` or `internal`.",
        "**Idempotent:** a retry with the same `id` gets the first reply again, and nothing runs twice.",
    ]
    return "\n\n".join(part for part in parts if part)


# Texts -----------------------------------------------------------------------------------------------------------


def hello_text(prefix: str, limits: SocketLimits) -> str:
    """How to say `hello`."""
    return (
        f"The token is an access token from `POST {prefix}/auth/device` (devices) or `POST {prefix}/auth/login` "
        "(users). `resume` maps a channel to the last `seq` seen and its `epoch`; only the channels the principal is "
        "subscribed to on hello are resumed. `locale` (optional) is the customer's language: the welcome's `locale` "
        "says it when the branch offers it, else null (the branch's default); it names the menu snapshot, "
        f"`menu.get` and new carts. No hello within {limits.hello_timeout_s:g} s, a first frame that is "
        "not a hello, or a bad, expired or revoked token closes with 4001; a disabled device, user or branch with 4003."
    )


def info_text(prefix: str, limits: SocketLimits) -> str:
    """The document's introduction: the shape of the protocol and its limits."""
    return (
        f"One WebSocket per device (or staff tool) at `{prefix}/ws`: a `hello` with an access token, then commands "
        "in and events out, as JSON text frames. The full description, with examples of every frame, is "
        "docs/protocol.md; REST (login and admin) is the OpenAPI document at "
        f"`{prefix}/openapi.json`.\n\n"
        "Every command gets exactly one `reply` with the command's `id`. Every event of a channel carries `seq` "
        "(one more than the last, no gaps) and `epoch`; a client that reconnects with both gets the events it "
        "missed, or a snapshot when they are gone.\n\n"
        "**Limits:** a frame over the size limit closes with 1009; "
        f"{limits.command_rate_per_s:g} commands a second with bursts of {limits.command_burst}, then `rate_limited` "
        "replies and at last 4029; bad frames beyond the limit a minute close with 4000; a client whose "
        f"unread frames pass {limits.send_buffer_bytes // 1024} KiB waiting on the server is closed with 4008."
    )


def server_object(settings: Settings, limits: SocketLimits) -> dict[str, Any]:
    """The `ws` server: where it listens, its keep-alive and frame limits, and the close codes."""
    closes = "\n".join(f"| {code} | {meaning} |" for code, meaning in sorted(CLOSE_CODES.items()))
    return {
        "host": "{host}",
        "protocol": "ws",
        "pathname": f"{settings.API_V1_STR}/ws",
        "title": "The device WebSocket",
        "description": (
            f"`ws://` locally, `wss://` behind TLS. Say `hello` within {limits.hello_timeout_s:g} s. The server sends "
            f"WebSocket pings every {settings.WS_HEARTBEAT_S:g} s and drops a peer that does not answer one within "
            f"as long (1011). Frames over {settings.WS_MAX_MESSAGE_BYTES} bytes close the connection with 1009.\n\n"
            f"| close code | meaning |\n| --- | --- |\n{closes}"
        ),
        "variables": {"host": {"default": "127.0.0.1:8000", "description": "The server's host and port."}},
    }
