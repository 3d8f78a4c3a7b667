// The ops page for staff: a member of staff logs in over REST, and for one branch at a time sees its devices online
// and offline, its live orders by state, payments to refund, the 86 switch of its items, and claims pairing codes.
// It is no device: it opens the protocol's socket with the user's token (apps/shared/client.js) and subscribes to
// the branch's `devices`, `orders` and `menu` channels (docs/protocol.md "Channels"). What the role lacks is shown
// disabled or not at all, with the permission it needs; every failure shows its stable code and message.
//
// URL options: `?lang=de|en`.

import { DeviceConnection, showStatus } from "../shared/client.js";
import { translatePage } from "../shared/i18n.js";
import { StaffSession } from "./api.js";
import { ClaimForm } from "./claim.js";
import { DevicesPanel } from "./devices.js";
import { ItemsPanel } from "./items.js";
import { OrdersPanel } from "./orders.js";
import { RefundsPanel } from "./refunds.js";
import { errorText, lang, t } from "./strings.js";

const BRANCH_KEY = "kiosk-ops:branch";
const $ = (id) => document.getElementById(id);

const state = { session: null, connection: null, branch: null, branches: [], panels: null, claim: null };

function showError(error) {
  $("error-text").textContent = errorText(error);
  $("error").dataset.code = error?.code ?? "";
  $("error").dataset.kind = "error";
  $("error").hidden = false;
}

function showNotice(text) {
  $("error-text").textContent = text;
  $("error").dataset.code = "";
  $("error").dataset.kind = "notice";
  $("error").hidden = false;
}

// Login

function showLogin() {
  $("ops").hidden = true;
  $("login").hidden = false;
  $("username").focus();
}

$("login-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const button = $("login-form").querySelector("button[type=submit]");
  button.disabled = true;
  $("login-error").hidden = true;
  try {
    const session = await StaffSession.login($("username").value.trim(), $("password").value);
    $("password").value = "";
    await start(session);
  } catch (error) {
    $("login-error").textContent = errorText(error);
    $("login-error").dataset.code = error?.code ?? "";
    $("login-error").hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  state.connection?.close();
  try {
    await state.session.logout();
  } catch (error) {
    // The tokens are forgotten all the same.
  }
});

$("error-close").addEventListener("click", () => ($("error").hidden = true));

// Branches and channels

function channelsOf(branch) {
  return { devices: `branch:${branch}:devices`, orders: `branch:${branch}:orders`, menu: `branch:${branch}:menu` };
}

async function loadBranches(session) {
  const me = session.me;
  if (session.can("branches:read")) {
    try {
      // The server lists a branch's staff their own branch only.
      return (await session.get("/branches?limit=500")).items;
    } catch (error) {
      showError(error);
    }
  }
  return me.branch_id === null ? [] : [{ id: me.branch_id, name: `#${me.branch_id}` }];
}

function leave(branch) {
  for (const channel of Object.values(channelsOf(branch))) {
    // Coming back to the branch starts from a snapshot.
    state.connection.unsubscribe(channel).catch(() => {});
  }
}

async function selectBranch(branch) {
  if (state.branch !== null && state.branch !== branch) leave(state.branch);
  state.branch = branch;
  sessionStorage.setItem(BRANCH_KEY, String(branch));
  $("branch").value = String(branch);
  const named = state.branches.find((candidate) => candidate.id === branch);
  $("branch-name").textContent = state.branches.length > 1 ? "" : (named?.name ?? `#${branch}`);
  const { devices, orders, refunds, items } = state.panels;
  orders.clear();
  items.setBranch(branch);
  state.claim.selectBranch(branch);
  devices.setBranch(branch);
  // The refunds are read on the orders snapshot that follows (a channel left starts from a snapshot again).
  refunds.setBranch(branch);
  for (const [name, channel] of Object.entries(channelsOf(branch))) {
    state.connection.subscribe(channel).catch((error) => {
      showError(error);
      if (name === "orders") refunds.load(); // no snapshot will come
    });
  }
}

function onSnapshot(channel, data) {
  if (state.branch === null) return;
  const names = channelsOf(state.branch);
  if (channel === names.devices) state.panels.devices.snapshot(data);
  else if (channel === names.orders) {
    state.panels.orders.snapshot(data);
    // Back after a gap: payments that turned needs_refund meanwhile are read again.
    state.panels.refunds.load();
  } else if (channel === names.menu) state.panels.items.snapshot(data);
}

function onEvent(channel, event, data) {
  if (state.branch === null) return;
  const names = channelsOf(state.branch);
  if (channel === names.devices) state.panels.devices.event(event, data);
  else if (channel === names.orders) {
    state.panels.orders.event(event, data);
    state.panels.refunds.event(event, data);
  } else if (channel === names.menu) state.panels.items.event(event, data);
}

// The page

async function start(session) {
  state.session = session;
  session.onEnded = () => {
    state.connection?.close();
    location.reload();
  };
  await session.loadMe();
  $("login").hidden = true;
  $("ops").hidden = false;
  const { me } = session;
  $("who").textContent = t("role", { user: session.username || `#${me.id}`, role: me.role ?? "–" });

  const panels = {
    devices: new DevicesPanel($("devices"), $("devices-note"), { session, onError: showError }),
    orders: new OrdersPanel($("orders")),
    refunds: new RefundsPanel($("refunds"), $("refunds-empty"), $("refunds-note"), {
      session,
      onError: showError,
      onDone: showNotice,
    }),
    items: new ItemsPanel($("items"), $("items-note"), { session, onError: showError }),
  };
  state.panels = panels;
  state.claim = new ClaimForm(document, {
    session,
    devices: panels.devices,
    onClaimed: () => panels.devices.load(),
    onError: showError,
  });

  state.connection = new DeviceConnection({
    token: session.tokens.access_token,
    locale: lang,
    getToken: () => session.refresh(),
    onSnapshot,
    onEvent,
    onStatus: (status, detail) => showStatus($("status"), status, detail),
  });
  panels.items.connection = state.connection;
  session.onToken = (token) => state.connection.refreshToken(token).catch(() => {});
  state.connection.start();

  state.branches = await loadBranches(session);
  const select = $("branch");
  select.replaceChildren(...state.branches.map((branch) => new Option(branch.name, String(branch.id))));
  $("branch-box").hidden = state.branches.length < 2;
  select.addEventListener("change", () => selectBranch(Number(select.value)));
  const kept = Number(sessionStorage.getItem(BRANCH_KEY));
  const first = state.branches.find((branch) => branch.id === kept) ?? state.branches[0];
  state.claim.setBranches(state.branches, first?.id ?? "");
  if (first) await selectBranch(first.id);
}

async function main() {
  translatePage(document, t, lang);
  document.title = t("title");
  const session = StaffSession.restore();
  if (!session) {
    showLogin();
    return;
  }
  try {
    await start(session);
  } catch (error) {
    showError(error);
  }
}

main();
