// The device protocol client every browser app uses (docs/protocol.md; channels/client.py and
// channels/reconnecting.py are the same in Python).
//
//   const connection = new DeviceConnection({ token, locale: "de", onSnapshot, onEvent, onStatus, onWelcome, getToken });
//   connection.start();
//   const cart = await connection.command("cart.create", {});      // rejects with CommandError
//   await connection.subscribe("branch:1:orders");                 // users: extra channels (unsubscribe leaves one)
//   connection.close();
//
// It keeps the connection: after a close it reconnects with full-jitter exponential backoff (a random wait up to a
// ceiling of 0.5 s doubling to 15 s, or the `retry_after` the server names when longer), says hello again with every
// channel's last seq and epoch as `resume`, so it gets what it missed or a snapshot. A command keeps its id until it
// has a reply and is sent again on the next connection (the server's command log answers a repeat with the stored
// reply, so nothing happens twice). Events whose `data.version` is older than what it holds for the same order,
// payment, cart or board entry are dropped ("Versions"). 4001 asks `getToken()` for a new token; 4003 stops.

import { translator } from "./i18n.js";

export const BACKOFF_BASE_S = 0.5;
export const BACKOFF_CAP_S = 15;
// A connection that held this long was a good one: the next failure starts the backoff again from the base.
const STABLE_S = 10;
// Browsers answer the server's WebSocket pings but do not show them; an application ping finds a dead link.
const PING_EVERY_S = 15;
const PONG_WAIT_S = 10;
// Refusals that changed nothing and were not stored: sent again with the same id after a pause.
const RETRYABLE = new Set(["unavailable", "internal", "rate_limited"]);
const RETRY_PAUSE_S = 1;

// The things each list of a snapshot holds (docs/protocol.md "Snapshots").
const SNAPSHOT_ROWS = { tickets: "order", orders: "order", carts: "cart", payments: "payment" };
const BOARD_ROWS = ["preparing", "ready"];

/** A command's failure: the reply's `error` (`code` is one of docs/protocol.md "Errors", stable). */
export class CommandError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "CommandError";
    this.code = code;
    this.details = details ?? {};
  }
}

/** The wait in seconds before reconnect `attempt` (0, 1, ...): full jitter under a doubling ceiling. */
export function backoffSeconds(attempt, random = Math.random) {
  return random() * Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt);
}

/** The seconds a 1001/1013 close reason asks to wait (`...; retry_after=2.7`), or null. */
export function retryAfterSeconds(reason) {
  const match = /retry_after=(\d+(?:\.\d+)?)$/.exec(reason ?? "");
  return match ? Number(match[1]) : null;
}

function thingKey(name, data) {
  if (data === null || typeof data !== "object" || !("version" in data)) return null;
  const thing = name.split(".")[0];
  const id = thing === "board" ? data.order_id : data.id;
  return id === undefined ? null : `${thing}:${id}`;
}

/** One device's (or user's) connection, kept open across drops, restarts and token expiry. */
export class DeviceConnection {
  constructor({ token, locale = null, onSnapshot, onEvent, onStatus, onWelcome, getToken, url } = {}) {
    this.token = token;
    this.locale = locale;
    this.onSnapshot = onSnapshot ?? (() => {});
    this.onEvent = onEvent ?? (() => {});
    this.onStatus = onStatus ?? (() => {});
    this.onWelcome = onWelcome ?? (() => {});
    this.getToken = getToken ?? null;
    this.url = url ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/ws`;
    this.status = null;
    this.welcome = null;
    this.channels = new Map(); // channel -> {seq, epoch}
    this.extraChannels = new Set(); // subscribed by the app, again after every reconnect
    this.versions = new Map(); // "order:7" -> version
    this.pending = new Map(); // command id -> {frame, resolve, reject}
    this.socket = null;
    this.attempt = 0;
    this.stopped = false;
    this.closeCode = null;
    this.closeReason = "";
    this._nextId = 1;
    this._idPrefix = Math.random().toString(36).slice(2, 10);
    this._timers = new Set();
    this._onBrowserOnline = () => this._reconnectNow();
  }

  /** Open the connection and keep it open until `close()` (or a 4003 close). */
  start() {
    this.stopped = false;
    globalThis.addEventListener?.("online", this._onBrowserOnline);
    this._connect();
  }

  /** Send a command; resolves with the reply's data, rejects with CommandError. Survives reconnects. */
  command(type, data = {}) {
    const id = `${this._idPrefix}-${this._nextId++}`;
    const frame = { type, id, data };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { frame, resolve, reject });
      if (this._ready()) this._send(frame);
    });
  }

  /** Subscribe to `channel` now and after every reconnect (resuming from its last seq and epoch). */
  async subscribe(channel) {
    this.extraChannels.add(channel);
    return this.command("subscribe", this._subscribeData(channel));
  }

  /** Leave `channel` and forget where it stood: subscribing again later starts from a snapshot. */
  async unsubscribe(channel) {
    this.extraChannels.delete(channel);
    this.channels.delete(channel);
    return this.command("unsubscribe", { channel });
  }

  /** Hand a fresh access token to the connection (`auth.refresh`) and to every later hello. */
  async refreshToken(token) {
    this.token = token;
    if (this._ready()) return this.command("auth.refresh", { token });
    return null;
  }

  /** Close for good: no reconnect; pending commands are refused with `closed`. */
  close() {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this._onBrowserOnline);
    this._clearTimers();
    this.socket?.close(1000);
    this.socket = null;
    this._failPending(new CommandError("closed", "the connection was closed"));
    this._setStatus("offline");
  }

  // Connecting

  _connect() {
    if (this.stopped) return;
    this._setStatus("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      this._scheduleReconnect("");
      return;
    }
    this.socket = socket;
    this.welcome = null;
    socket.onopen = () => {
      const hello = { type: "hello", token: this.token, resume: this._resume() };
      if (this.locale) hello.locale = this.locale;
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = (message) => this._receive(socket, message.data);
    socket.onclose = (event) => this._closed(socket, event.code, event.reason);
    // An error is always followed by a close, which does the work.
    socket.onerror = () => {};
  }

  _resume() {
    const resume = {};
    for (const [channel, { seq, epoch }] of this.channels) resume[channel] = { seq, epoch };
    return resume;
  }

  _subscribeData(channel) {
    const held = this.channels.get(channel);
    return held ? { channel, since: held.seq, epoch: held.epoch } : { channel };
  }

  _ready() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.welcome !== null;
  }

  _send(frame) {
    this.socket.send(JSON.stringify(frame));
  }

  async _closed(socket, code, reason) {
    if (socket !== this.socket) return;
    this._clearTimers();
    this.socket = null;
    this.welcome = null;
    this.closeCode = code;
    this.closeReason = reason;
    if (this.stopped) return;
    if (code === 4003) {
      // Disabled: reconnecting is refused until someone enables the device again.
      this.stopped = true;
      this._failPending(new CommandError("forbidden", reason || "disabled"));
      this._setStatus("offline", { code, reason, stopped: true });
      return;
    }
    if (this._openedAt && performance.now() - this._openedAt >= STABLE_S * 1000) this.attempt = 0;
    this._openedAt = null;
    this._setStatus("offline", { code, reason });
    if (code === 4001 && this.getToken) {
      try {
        this.token = await this.getToken();
      } catch (error) {
        // No token now (the server is unreachable, say): the backoff tries again.
      }
    }
    this._scheduleReconnect(reason);
  }

  _scheduleReconnect(reason) {
    const hint = retryAfterSeconds(reason);
    const backoff = backoffSeconds(this.attempt);
    this.attempt += 1;
    this._after(Math.max(hint ?? 0, backoff), () => this._connect());
  }

  _reconnectNow() {
    // The browser says the network is back: skip the rest of the wait.
    if (this.stopped || this.socket !== null) return;
    this._clearTimers();
    this._connect();
  }

  // Receiving

  _receive(socket, text) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      return;
    }
    this._lastFrameAt = performance.now();
    switch (frame.type) {
      case "welcome":
        return this._welcomed(frame.data);
      case "snapshot":
        return this._snapshot(frame);
      case "event":
        return this._event(frame);
      case "reply":
        return this._reply(frame);
      default:
        return undefined; // pong, or a frame type this client does not know yet
    }
  }

  _welcomed(data) {
    this.welcome = data;
    this._openedAt = performance.now();
    // The welcome's seq is where the channel will be once the missed events (or the snapshot) have come: the
    // position kept moves with those frames themselves, or a replayed event would look seen already.
    this._setStatus("online");
    this.onWelcome(data);
    // Channels the app subscribed to itself, then every command still without a reply (same ids).
    const resent = new Set(
      [...this.pending.values()].filter(({ frame }) => frame.type === "subscribe").map(({ frame }) => frame.data.channel),
    );
    for (const channel of this.extraChannels) {
      if (!(channel in (data.channels ?? {})) && !resent.has(channel)) {
        this._send({ type: "subscribe", id: `${this._idPrefix}-${this._nextId++}`, data: this._subscribeData(channel) });
      }
    }
    for (const { frame } of this.pending.values()) this._send(frame);
    this._keepAlive();
  }

  _snapshot(frame) {
    this.channels.set(frame.channel, { seq: frame.seq, epoch: frame.epoch });
    const data = frame.data ?? {};
    for (const [list, thing] of Object.entries(SNAPSHOT_ROWS)) {
      if (Array.isArray(data[list])) data[list] = data[list].map((row) => this._newest(thing, row));
    }
    for (const list of BOARD_ROWS) {
      if (Array.isArray(data[list])) for (const row of data[list]) this._take("board", row);
    }
    this.onSnapshot(frame.channel, data);
  }

  _event(frame) {
    const held = this.channels.get(frame.channel);
    if (held && held.epoch === frame.epoch && frame.seq <= held.seq) return; // seen already
    this.channels.set(frame.channel, { seq: frame.seq, epoch: frame.epoch });
    if (!this._take(frame.event, frame.data)) return; // older than what is held
    this.onEvent(frame.channel, frame.event, frame.data);
  }

  _reply(frame) {
    const entry = frame.id === null ? undefined : this.pending.get(frame.id);
    if (entry === undefined) return;
    if (frame.ok) {
      this.pending.delete(frame.id);
      const data = frame.data ?? {};
      this._take(entry.frame.type, data);
      entry.resolve(data);
      return;
    }
    const error = frame.error ?? {};
    if (RETRYABLE.has(error.code)) {
      this._after(RETRY_PAUSE_S, () => this._ready() && this.pending.has(frame.id) && this._send(entry.frame));
      return;
    }
    this.pending.delete(frame.id);
    entry.reject(new CommandError(error.code, error.message, error.details));
  }

  // Versions: keep the highest version of each thing; an older payload is stale.

  _take(name, data) {
    const key = thingKey(name, data);
    if (key === null) return true;
    const held = this.versions.get(key);
    if (held !== undefined && held.version > data.version) return false;
    this.versions.set(key, data);
    return true;
  }

  _newest(thing, row) {
    // A snapshot row older than the payload held gives way to it, so the snapshot never moves a thing back.
    return this._take(thing, row) ? row : this.versions.get(thingKey(thing, row));
  }

  // Keep-alive and timers

  _keepAlive() {
    const socket = this.socket;
    const check = () => {
      if (socket !== this.socket || !this._ready()) return;
      const sentAt = performance.now();
      socket.send('{"type":"ping"}');
      this._after(PONG_WAIT_S, () => {
        // Nothing at all came back since the ping: the link is dead though the browser has not noticed.
        if (socket !== this.socket || (this._lastFrameAt ?? 0) >= sentAt) return;
        this._closed(socket, 1006, "no pong");
        socket.close();
      });
      this._after(PING_EVERY_S, check);
    };
    this._after(PING_EVERY_S, check);
  }

  _after(seconds, callback) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      callback();
    }, seconds * 1000);
    this._timers.add(timer);
  }

  _clearTimers() {
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
  }

  _failPending(error) {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }

  _setStatus(status, detail = {}) {
    if (this.status === status && !detail.stopped) return;
    this.status = status;
    this.onStatus(status, detail);
  }
}

const statusText = translator({});

/** Render a connection status into `element` (the offline banner): its text, `data-status` and visibility. */
export function showStatus(element, status, detail = {}) {
  if (!element) return;
  const shown = detail.stopped ? "stopped" : status;
  element.dataset.status = shown;
  element.textContent = statusText(`status.${shown}`);
  element.hidden = shown === "online";
  element.setAttribute("role", "status");
}
