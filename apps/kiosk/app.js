// The self-service kiosk: the customer picks a language and eat in or take away, orders from the menu (options,
// combos, a note for the kitchen), checks the cart the server priced, and pays at the paired terminal; the order
// number ends it. It speaks only the public protocol through the shared client (docs/protocol.md "Menu", "Carts",
// "Orders", "Payments", "Languages"): `branch:{b}:menu` and `device:{d}` are its channels.
//
// URL options: `?idle=90` the seconds without a touch before it starts over (a countdown shows for the last 15);
// `?done=10` the seconds the order number stays; `?lang=de|en` the first language (else the browser's).

import { CommandError, DeviceConnection, showStatus } from "../shared/client.js";
import { deviceSession } from "../shared/enrol.js";
import { currentLocale, formatMoney, translatePage } from "../shared/i18n.js";
import { renderCart } from "./cart.js";
import { ItemDialog } from "./dialog.js";
import { IdleWatch } from "./idle.js";
import { MenuStore } from "./menu.js";
import { StockNotice, showPriceChanged } from "./notices.js";
import { PayFlow } from "./pay.js";
import { languageButtons, renderCategories, renderItems, renderStart } from "./render.js";
import { wordsFor } from "./strings.js";

const params = new URLSearchParams(window.location.search);
const seconds = (name, fallback) => (Number(params.get(name)) > 0 ? Number(params.get(name)) : fallback);
const IDLE_S = seconds("idle", 90);
const DONE_S = seconds("done", 10);

const $ = (id) => document.getElementById(id);
const menu = new MenuStore();
const view = {
  menu,
  locale: currentLocale(),
  t: null,
  money: (minor) => formatMoney(minor, menu.data?.currency ?? "EUR", view.locale),
};
view.t = wordsFor(view.locale);

// The language a new customer starts in: `?lang=`, else the browser's (the branch's default when it offers neither).
let homeLocale = view.locale;
const state = { connection: null, menuChannel: null, deviceChannel: null, screen: "start", cart: null, category: null };
const command = (type, data) => state.connection.command(type, data);
const pay = new PayFlow(command, onPayChange);
const itemDialog = new ItemDialog($("item-dialog"), view, (data) => addToCart(data));
const stockNotice = new StockNotice($("stock-dialog"), view, (line) => setQty(line, 0));
const idle = new IdleWatch({ seconds: IDLE_S, onWarn: warnIdle, onExpire: () => startOver() });
let doneTimer = null;
let toastTimer = null;

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 6000);
}

function failed(error) {
  toast(view.t("error.generic", { message: error?.message ?? String(error) }));
}

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

function show(screen) {
  state.screen = screen;
  for (const name of ["start", "order", "pay", "done"]) $(name).hidden = name !== screen;
  if (screen === "order" || screen === "pay") idle.arm();
  else idle.disarm();
}

// Rendering

function renderAll() {
  translatePage(document, view.t, view.locale);
  renderStart(view, { onLanguage: setLanguage, onMode: startOrder });
  $("order-languages").replaceChildren(
    ...languageButtons(view, { prefix: "language-", extra: " small", onLanguage: setLanguage }),
  );
  renderMenu();
  renderCartBox();
  renderPay();
}

function renderMenu() {
  const categories = menu.categories();
  if (!categories.some((category) => category.id === state.category)) state.category = categories[0]?.id ?? null;
  const pick = (id) => {
    state.category = id;
    renderMenu();
  };
  renderCategories(view, state.category, pick);
  renderItems(view, state.category, (item) => itemDialog.open(item));
}

function renderCartBox() {
  const actions = { setQty, checkout, cancel: () => startOver() };
  renderCart($("cart"), state.cart, view, actions);
}

function renderPay() {
  const phase = pay.phase;
  $("pay-placing").hidden = phase !== "placing";
  $("pay-waiting").hidden = phase !== "waiting";
  $("pay-failed").hidden = phase !== "failed";
  if (pay.payment) $("pay-amount").textContent = view.t("pay.amount", { amount: view.money(pay.payment.amount) });
  if (phase === "failed") {
    const key = `pay.${pay.reason}`;
    const text = view.t(key);
    $("pay-reason").textContent = text === key ? view.t("pay.failed") : text;
    $("pay-retry").hidden = pay.reason === "needs_refund";
  }
}

// What a change of the payment's phase does besides showing it: the order number once paid, the start once the
// order is gone, and the idle watch.
function onPayChange() {
  renderPay();
  const phase = pay.phase;
  if (phase === "done" && state.screen !== "done") return finish();
  if (phase === "cancelled" && state.screen === "pay") return startOver();
  // While the terminal charges, the customer is at the terminal, not the kiosk: the payment's own timeout on the
  // server ends a charge nobody finishes. Once a payment has ended without success, the idle watch runs again.
  if (state.screen === "pay") {
    if (phase === "placing" || phase === "waiting") idle.disarm();
    else if (!idle.armed) idle.arm();
  }
  return undefined;
}

// Language and the start

async function setLanguage(code) {
  view.locale = code;
  view.t = wordsFor(code);
  if (state.connection) state.connection.locale = code; // a reconnect's menu snapshot comes in it too
  renderAll();
  try {
    if (menu.ready && menu.data.locale !== code) menu.replace(await command("menu.get", { locale: code }));
    if (state.cart?.status === "open") {
      state.cart = await command("cart.set_locale", { cart_id: state.cart.id, locale: code });
    }
  } catch (error) {
    failed(error);
  }
  renderAll();
  itemDialog.refresh();
}

async function startOrder(mode) {
  try {
    state.cart = await command("cart.create", { service_mode: mode, locale: view.locale });
  } catch (error) {
    return failed(error);
  }
  state.category = menu.categories()[0]?.id ?? null;
  show("order");
  renderAll();
  $("categories").querySelector("button")?.focus();
}

/** Back to the start screen: what is open is cancelled (a payment, an unpaid order), the cart left to expire. */
function startOver() {
  clearInterval(doneTimer);
  closeDialogs();
  if (pay.phase === "done") pay.reset();
  else pay.abandon();
  state.cart = null;
  show("start");
  if (view.locale !== homeLocale) setLanguage(homeLocale);
  else renderAll();
}

// The cart

async function addToCart(data) {
  state.cart = await command("cart.add", { cart_id: state.cart.id, ...data });
  renderCartBox();
}

async function setQty(line, qty) {
  try {
    state.cart = await command("cart.update", { cart_id: state.cart.id, line_id: line.id, qty });
  } catch (error) {
    failed(error);
  }
  renderCartBox();
  stockNotice.render(state.cart);
}

// Checkout

async function checkout() {
  if (!state.cart || pay.phase !== "idle") return;
  closeDialogs();
  show("pay");
  try {
    await pay.place(state.cart);
  } catch (error) {
    show("order");
    if (!(error instanceof CommandError)) return failed(error);
    if (error.code === "price_changed") {
      if (error.details.cart) state.cart = error.details.cart;
      renderCartBox();
      showPriceChanged(view, error.details, checkout);
    } else if (error.code === "out_of_stock") {
      stockNotice.show(error.details.items ?? []);
      stockNotice.render(state.cart);
    } else failed(error);
  }
}

function finish() {
  show("done");
  $("order-number").textContent = String(pay.order?.number ?? "");
  let left = DONE_S;
  const tick = () => ($("done-countdown").textContent = view.t("done.back", { s: left }));
  tick();
  clearInterval(doneTimer);
  doneTimer = setInterval(() => {
    left -= 1;
    if (left <= 0) startOver();
    else tick();
  }, 1000);
}

function warnIdle(left) {
  const dialog = $("idle-dialog");
  if (left === null) {
    if (dialog.open) dialog.close();
    return;
  }
  $("idle-text").textContent = view.t("idle.text", { s: left });
  if (!dialog.open) dialog.showModal();
}

// The connection

function onSnapshot(channel, data) {
  if (channel === state.menuChannel) {
    menu.replace(data);
    if (!menu.locales.includes(homeLocale)) homeLocale = data.default_locale;
    if (!menu.locales.includes(view.locale)) return setLanguage(homeLocale);
    renderAll();
    itemDialog.refresh();
  } else if (channel === state.deviceChannel) {
    const cart = (data.carts ?? []).find((row) => row.id === state.cart?.id);
    if (cart) state.cart = cart;
    pay.onSnapshot(data);
    renderCartBox();
  }
  return undefined;
}

function onEvent(channel, event, data) {
  if (channel === state.menuChannel) {
    if (!menu.apply(event, data)) return;
    renderMenu();
    itemDialog.refresh();
  } else if (channel === state.deviceChannel) {
    if (event === "cart.updated" && data.id === state.cart?.id) {
      state.cart = data;
      if (data.status === "expired" && state.screen === "order") {
        toast(view.t("error.expired"));
        startOver();
      }
      renderCartBox();
    } else pay.onEvent(event, data);
  }
}

function wire() {
  $("pay-cancel").addEventListener("click", () => pay.cancelPayment());
  $("pay-retry").addEventListener("click", () => pay.start().catch(failed));
  $("pay-abort").addEventListener("click", () => startOver());
  $("done-new").addEventListener("click", () => startOver());
  $("price-back").addEventListener("click", () => $("price-dialog").close());
  $("idle-stay").addEventListener("click", () => idle.touch());
}

async function main() {
  wire();
  renderAll();
  const session = await deviceSession("kiosk", $("enrol"));
  show("start");
  state.connection = new DeviceConnection({
    token: session.token,
    locale: view.locale,
    getToken: () => session.getToken(),
    onWelcome: (welcome) => {
      state.menuChannel = `branch:${welcome.principal.branch_id}:menu`;
      state.deviceChannel = `device:${welcome.principal.id}`;
    },
    onSnapshot,
    onEvent,
    onStatus: (status, detail) => showStatus($("status"), status, detail),
  });
  session.onToken = (token) => state.connection.refreshToken(token).catch(() => {});
  state.connection.start();
}

main();
