// The virtual payment terminal (docs/protocol.md "Payments"): it shows the charge its paired kiosk asks for
// (`payment.requested` on device:{t}, or a pending payment in its snapshot after a reconnect), and the person at the
// till approves or declines it: `payment.progress` (processing) while the "card" is read, then `payment.result`.
// A cancel from the kiosk, or the payment expiring, takes the charge off the screen.

import { DeviceConnection, showStatus } from "../shared/client.js";
import { deviceSession } from "../shared/enrol.js";
import { currentLocale, formatMoney, translatePage, translator } from "../shared/i18n.js";

const STRINGS = {
  de: {
    title: "Zahlungsterminal",
    idle: "Bereit",
    "idle.hint": "Wartet auf eine Zahlung vom Kiosk.",
    approve: "Genehmigen",
    decline: "Ablehnen",
    order: "Bestellung {id}",
    "state.pending": "Karte bitte vorhalten",
    "state.processing": "Zahlung läuft …",
    "state.approved": "Zahlung genehmigt",
    "state.declined": "Zahlung abgelehnt",
    "state.failed": "Zahlung fehlgeschlagen",
    "state.cancelled": "Vom Kiosk abgebrochen",
    "state.expired": "Zeit abgelaufen",
    "state.needs_refund": "Genehmigt – wird erstattet",
    "error": "Fehler: {message}",
  },
  en: {
    title: "Payment terminal",
    idle: "Ready",
    "idle.hint": "Waiting for a payment from the kiosk.",
    approve: "Approve",
    decline: "Decline",
    order: "Order {id}",
    "state.pending": "Present card",
    "state.processing": "Processing …",
    "state.approved": "Payment approved",
    "state.declined": "Payment declined",
    "state.failed": "Payment failed",
    "state.cancelled": "Cancelled at the kiosk",
    "state.expired": "Timed out",
    "state.needs_refund": "Approved – will be refunded",
    "error": "Error: {message}",
  },
};
const OPEN = new Set(["pending", "processing"]);
// How long the "card" takes to read, and how long a result stays on screen.
const PROCESSING_MS = 800;
const RESULT_MS = 4000;

const locale = currentLocale();
const t = translator(STRINGS, locale);
const $ = (id) => document.getElementById(id);

let current = null; // the payment on screen
let busy = false; // a command of ours is under way
let clearTimer = null;

function render() {
  $("idle").hidden = current !== null;
  $("charge").hidden = current === null;
  if (current === null) return;
  $("charge-order").textContent = t("order", { id: current.order_id });
  $("charge-amount").textContent = formatMoney(current.amount, current.currency, locale);
  const state = $("charge-state");
  state.dataset.state = current.status;
  state.textContent = t(`state.${current.status}`);
  const open = OPEN.has(current.status);
  $("progress").hidden = current.status !== "processing";
  $("charge-buttons").hidden = !open;
  $("approve").disabled = busy || !open;
  $("decline").disabled = busy || !open;
}

function show(payment) {
  clearTimeout(clearTimer);
  current = payment;
  if (!OPEN.has(payment.status)) {
    // A final state stays a moment, then the terminal is ready again.
    clearTimer = setTimeout(() => {
      if (current?.id === payment.id && !OPEN.has(current.status)) {
        current = null;
        render();
      }
    }, RESULT_MS);
  }
  render();
}

function onPayment(payment, myId) {
  if (payment.terminal_id !== undefined && payment.terminal_id !== myId) return;
  // A newer charge replaces the one on screen; news of another, older payment is not shown.
  if (current === null || payment.id === current.id || OPEN.has(payment.status)) show(payment);
}

async function run() {
  translatePage(document, t, locale);
  const session = await deviceSession("terminal", $("enrol"));
  $("terminal").hidden = false;
  const myId = session.deviceId;
  const status = $("status");
  const connection = new DeviceConnection({
    token: session.token,
    locale,
    getToken: () => session.getToken(),
    onStatus: (state, detail) => showStatus(status, state, detail),
    onWelcome: () => {
      $("device-name").textContent = `#${myId}`;
    },
    onSnapshot: (channel, data) => {
      if (channel !== `device:${myId}`) return;
      const open = (data.payments ?? []).filter((p) => p.terminal_id === myId && OPEN.has(p.status));
      if (open.length > 0) show(open[open.length - 1]);
      else if (current !== null && OPEN.has(current.status)) {
        current = null; // what was on screen ended while this terminal was away
        render();
      }
    },
    onEvent: (channel, event, data) => {
      if (event.startsWith("payment.")) onPayment(data, myId);
    },
  });
  session.onToken = (token) => connection.refreshToken(token).catch(() => {});
  connection.start();

  async function finish(result) {
    if (current === null || busy) return;
    const payment = current;
    busy = true;
    render();
    try {
      if (result === "approved") {
        show(await connection.command("payment.progress", { payment_id: payment.id, status: "processing" }));
        await new Promise((resolve) => setTimeout(resolve, PROCESSING_MS));
      }
      const data = { payment_id: payment.id, status: result };
      if (result === "approved") data.provider_ref = `VT-${myId}-${payment.id}`;
      show(await connection.command("payment.result", data));
    } catch (error) {
      $("charge-state").textContent = t("error", { message: error.message });
    } finally {
      busy = false;
      render();
    }
  }
  $("approve").addEventListener("click", () => finish("approved"));
  $("decline").addEventListener("click", () => finish("declined"));
}

run();
