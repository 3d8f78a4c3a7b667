// A member of staff's REST session (docs/protocol.md "Getting a token", `/api/v1/openapi.json`).
//
//   const session = StaffSession.restore() ?? (await StaffSession.login("anna", "secret"));
//   await session.loadMe();                         // session.me: GET /auth/me
//   await session.get("/branches");                 // rejects with ApiError {status, code, message, details}
//   await session.post("/payments/7/refund");
//   session.onToken = (token) => connection.refreshToken(token);
//
// The tokens are kept in sessionStorage (one browser tab, gone with it). The access token is renewed with the refresh
// token (`POST /auth/refresh`, which hands out a new pair) when a fifth of its lifetime is left, and once on a 401.

const API = "/api/v1";
const STORAGE_KEY = "kiosk-ops:session";
const REFRESH_AT = 0.2;

/** A REST failure: the body's `error` (`code` is one of docs/protocol.md "Errors", stable) and the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details ?? {};
  }
}

async function call(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`${API}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, "network", String(error?.message ?? error));
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (error) {
    parsed = null;
  }
  if (!response.ok) {
    const failure = parsed?.error ?? {};
    throw new ApiError(response.status, failure.code ?? `http_${response.status}`, failure.message ?? text, failure.details);
  }
  return parsed;
}

/** A logged-in member of staff: their tokens, who they are (`me`, after loadMe()), and authorised REST calls. */
export class StaffSession {
  constructor(tokens, username = "") {
    this.tokens = tokens; // {access_token, refresh_token, expires_at, refresh_expires_at}
    this.username = username;
    this.me = null; // GET /auth/me, read by loadMe(): {kind, id, branch_id, role, permissions}
    this.onToken = null;
    this.onEnded = null;
    this._refreshing = null;
    this._timer = null;
  }

  /** Log in with a username and password; rejects with ApiError (401 `unauthorized`, 429 `rate_limited`, ...). */
  static async login(username, password) {
    const tokens = await call("POST", "/auth/login", { body: { username, password } });
    const session = new StaffSession(tokens, username);
    session._keep();
    session._schedule();
    return session;
  }

  /** The session this tab kept, or null. */
  static restore() {
    try {
      const held = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
      if (!held?.tokens?.access_token || !held?.tokens?.refresh_token) return null;
      const session = new StaffSession(held.tokens, held.username ?? "");
      session._schedule();
      return session;
    } catch (error) {
      return null;
    }
  }

  /** Read who the user is and what their role grants now (a kept session's role may have changed). */
  async loadMe() {
    this.me = await this.get("/auth/me");
    return this.me;
  }

  /** True when the role grants `permission` ("*" grants everything). */
  can(permission) {
    const granted = this.me?.permissions ?? [];
    return granted.includes("*") || granted.includes(permission);
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  /** An authorised call; a 401 refreshes the tokens once and tries again. */
  async request(method, path, body) {
    try {
      return await call(method, path, { body, token: this.tokens.access_token });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
    }
    await this.refresh();
    return call(method, path, { body, token: this.tokens.access_token });
  }

  /** Exchange the refresh token for a new pair (one exchange at a time); a refused one ends the session. */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = (async () => {
        try {
          this.tokens = await call("POST", "/auth/refresh", { body: { refresh_token: this.tokens.refresh_token } });
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) this.end();
          throw error;
        }
        this._keep();
        this._schedule();
        this.onToken?.(this.tokens.access_token);
        return this.tokens.access_token;
      })().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  /** Log out (the server ends the session and closes its sockets) and forget the tokens. */
  async logout() {
    try {
      await call("POST", "/auth/logout", { token: this.tokens.access_token });
    } finally {
      this.end();
    }
  }

  /** Forget the tokens of this tab. */
  end() {
    clearTimeout(this._timer);
    sessionStorage.removeItem(STORAGE_KEY);
    this.onEnded?.();
  }

  _keep() {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ tokens: this.tokens, username: this.username }));
  }

  _lifetime() {
    const expires = Date.parse(this.tokens.expires_at);
    return Number.isFinite(expires) ? expires : null;
  }

  _schedule() {
    clearTimeout(this._timer);
    const expires = this._lifetime();
    if (expires === null) return;
    const wait = Math.max(5_000, (expires - Date.now()) * (1 - REFRESH_AT));
    // setTimeout holds at most about 24 days; a longer-lived token is looked at again then.
    this._timer = setTimeout(() => this.refresh().catch(() => {}), Math.min(wait, 2 ** 31 - 1));
  }
}
