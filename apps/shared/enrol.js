// Enrolment and the device's credentials (docs/protocol.md "Getting a token").
//
//   const session = await deviceSession("terminal", document.querySelector("#enrol"));
//   session.token, session.deviceId, session.branchId, session.deviceKind
//   await session.getToken()          // a fresh access token (for DeviceConnection's getToken on 4001)
//   session.onToken = (token) => connection.refreshToken(token);   // called on every scheduled refresh
//
// Credentials are kept in localStorage under `kiosk-device:<app>` as {device_id, secret}. Without them, or with
// `#enrol=<token>` in the URL (the one-step links `make run` prints), the device enrols: a link's token is redeemed at
// once; otherwise the server hands out a six-digit pairing code, shown big with its countdown, and the page polls
// until someone with devices:write claims it (REST `POST /api/v1/pairing-codes/{code}/claim`, or the ops page).
// Nobody types or copies a secret.

import { translator, translatePage } from "./i18n.js";

const API = "/api/v1";
const POLL_EVERY_S = 2;
const RETRY_EVERY_S = 3;
// Refresh the access token when this share of its lifetime is left.
const REFRESH_AT = 0.2;

const t = translator({});

export const storageKey = (app) => `kiosk-device:${app}`;

/** The stored credentials of `app`, or null. */
export function storedCredentials(app) {
  try {
    const held = JSON.parse(localStorage.getItem(storageKey(app)) ?? "null");
    return held && Number.isInteger(held.device_id) && typeof held.secret === "string" ? held : null;
  } catch (error) {
    return null;
  }
}

/** Forget the credentials of `app` (the next deviceSession enrols again). */
export function forgetCredentials(app) {
  localStorage.removeItem(storageKey(app));
}

function keep(app, credentials) {
  localStorage.setItem(storageKey(app), JSON.stringify({ device_id: credentials.device_id, secret: credentials.secret }));
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** A REST call: {status, body}; network failures throw. */
async function post(path, body = {}) {
  const response = await fetch(`${API}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

function enrolLinkToken() {
  const match = /(?:^#|&)enrol=([^&]+)/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function dropEnrolLink() {
  // The token is used up: keep it out of the address bar, the history and bookmarks.
  history.replaceState(null, "", location.pathname + location.search);
}

function renderEnrol(container) {
  container.hidden = false;
  container.innerHTML = `
    <section class="enrol card" aria-live="polite">
      <h1 data-i18n="enrol.title"></h1>
      <p data-i18n="enrol.instructions"></p>
      <div class="pairing-code" data-testid="pairing-code"></div>
      <p class="enrol-countdown muted"></p>
      <p class="enrol-message"></p>
    </section>`;
  translatePage(container, t);
  return {
    code: container.querySelector(".pairing-code"),
    countdown: container.querySelector(".enrol-countdown"),
    message: container.querySelector(".enrol-message"),
  };
}

function formatRemaining(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** Redeem a one-step enrolment link's token: the credentials, or null when it is no longer valid. */
async function redeemLink(token, view) {
  view.message.textContent = t("enrol.link");
  const { status, body } = await post("/pairing-codes/redeem", { token });
  if (status === 200) return body;
  view.message.textContent = t("enrol.link_failed", { code: body?.error?.code ?? status });
  return null;
}

/** Ask for pairing codes, show them and poll until one is claimed: the credentials. */
async function pairByCode(view) {
  for (;;) {
    let issued;
    try {
      const answer = await post("/pairing-codes");
      if (answer.status !== 201) throw new Error(answer.body?.error?.message ?? `HTTP ${answer.status}`);
      issued = answer.body;
    } catch (error) {
      view.message.textContent = t("enrol.error", { message: error.message });
      await sleep(RETRY_EVERY_S);
      continue;
    }
    view.code.textContent = issued.code;
    view.message.textContent = t("enrol.waiting");
    const expiresAt = Date.parse(issued.expires_at);
    const tick = () => (view.countdown.textContent = t("enrol.expires", { time: formatRemaining(expiresAt - Date.now()) }));
    tick();
    const ticker = setInterval(tick, 1000);
    try {
      while (Date.now() < expiresAt) {
        await sleep(POLL_EVERY_S);
        let answer;
        try {
          answer = await post("/pairing-codes/poll", { poll_token: issued.poll_token });
        } catch (error) {
          continue; // offline for a moment: the code stays valid, keep polling
        }
        if (answer.status === 200) return answer.body;
        if (answer.status !== 202) break; // expired or used: ask for a new code
      }
    } finally {
      clearInterval(ticker);
    }
    view.code.textContent = "";
    view.message.textContent = t("enrol.expired");
  }
}

/** Enrol `app` in `container` (shown while enrolling): the credentials, already kept. */
async function enrol(app, container) {
  const view = renderEnrol(container);
  const linkToken = enrolLinkToken();
  let credentials = null;
  if (linkToken) {
    dropEnrolLink();
    // A link used up or expired leaves the credentials this browser already holds, if any, in place.
    credentials = (await redeemLink(linkToken, view)) ?? storedCredentials(app);
  }
  credentials = credentials ?? (await pairByCode(view));
  keep(app, credentials);
  container.hidden = true;
  container.innerHTML = "";
  return { device_id: credentials.device_id, secret: credentials.secret };
}

/** A device session for `app`: enrolled if need be, with an access token kept fresh. */
export async function deviceSession(app, container) {
  let credentials = enrolLinkToken() ? null : storedCredentials(app);
  let login;
  for (;;) {
    credentials = credentials ?? (await enrol(app, container));
    try {
      login = await post("/auth/device", credentials);
    } catch (error) {
      await sleep(RETRY_EVERY_S); // the server is unreachable: the stored credentials may still be good
      continue;
    }
    if (login.status === 200) break;
    if (login.status === 401) {
      // The device was deleted or its secret rotated elsewhere: enrol again.
      forgetCredentials(app);
      credentials = null;
      container.dataset.notice = t("enrol.rejected");
      continue;
    }
    await sleep(RETRY_EVERY_S);
  }

  const session = {
    app,
    token: login.body.access_token,
    expiresAt: login.body.expires_at,
    deviceId: login.body.device_id,
    branchId: login.body.branch_id,
    deviceKind: login.body.device_kind,
    onToken: null,
    async getToken() {
      const answer = await post("/auth/device", credentials);
      if (answer.status !== 200) throw new Error(answer.body?.error?.message ?? `HTTP ${answer.status}`);
      session.token = answer.body.access_token;
      session.expiresAt = answer.body.expires_at;
      schedule();
      return session.token;
    },
  };
  let timer = null;
  const schedule = () => {
    clearTimeout(timer);
    const left = Date.parse(session.expiresAt) - Date.now();
    // setTimeout holds at most about 24.8 days; tokens live far less.
    const wait = Math.min(Math.max(left * (1 - REFRESH_AT), 5000), 2 ** 31 - 1);
    timer = setTimeout(async () => {
      try {
        const token = await session.getToken();
        session.onToken?.(token);
      } catch (error) {
        timer = setTimeout(schedule, RETRY_EVERY_S * 1000);
      }
    }, wait);
  };
  schedule();
  return session;
}
