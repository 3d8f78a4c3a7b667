// The kitchen display: the open tickets of its station (or of the whole kitchen) oldest first, with age timers,
// moved on by tap or by a bump bar's keys, and a beep for every new ticket. It speaks only the public protocol
// through the shared client (docs/protocol.md "Kitchen", "Kitchen stations").
//
// URL options: `?warn=5&late=10` the minutes after which a ticket's timer turns amber and red; `?lang=de|en`.

import { CommandError, DeviceConnection, showStatus } from "../shared/client.js";
import { deviceSession } from "../shared/enrol.js";
import { commandFor, actionsFor, keyAction } from "./actions.js";
import { Beeper } from "./beep.js";
import { ticketElement, updateAge } from "./render.js";
import { lang, t } from "./strings.js";
import { TicketStore, isDone } from "./tickets.js";

const params = new URLSearchParams(window.location.search);
const minutes = (name, fallback) => {
  const value = Number(params.get(name));
  return Number.isFinite(value) && value > 0 ? value : fallback;
};
const thresholds = { warnS: minutes("warn", 5) * 60, lateS: minutes("late", 10) * 60 };

const $ = (id) => document.getElementById(id);
const board = $("tickets");
const store = new TicketStore();
const beeper = new Beeper(localStorage.getItem("kitchen:muted") === "1");

const state = {
  connection: null,
  channel: null, // the kitchen channel this display shows
  station: null, // the display's own station; null for a whole-kitchen display
  stationName: null, // its name, from its channel's snapshot
  filter: localStorage.getItem("kitchen:filter") || "", // a whole-kitchen display's station filter
  selected: null, // the selected order id
  clockOffset: 0, // server clock minus this browser's, from the welcome
  shown: [], // the tickets on screen, in order
};

const now = () => Date.now() + state.clockOffset;

function kitchenChannel(welcome) {
  const { branch_id: branch, station } = welcome.principal;
  return station ? `branch:${branch}:kitchen:${station}` : `branch:${branch}:kitchen`;
}

function onWelcome(welcome) {
  const station = welcome.principal.station || null;
  if (station !== state.station) state.stationName = null;
  state.station = station;
  const channel = kitchenChannel(welcome);
  // A display moved to another station says hello again: its old tickets go until the new channel's snapshot.
  if (state.channel && channel !== state.channel) store.replace([]);
  state.channel = channel;
  const serverTime = Date.parse(welcome.server_time);
  if (serverTime) state.clockOffset = serverTime - Date.now();
  document.body.dataset.station = state.station || "";
  renderTitle();
  $("filter-box").hidden = Boolean(state.station);
  render();
}

// A station's display is titled with the station's name from its channel's snapshot; until one has come (or when
// the station has none), with its code.
function renderTitle() {
  $("title").textContent = state.station ? state.stationName || stationName(state.station) : t("title");
}

function stationName(code) {
  return code.charAt(0).toUpperCase() + code.slice(1).replaceAll("_", " ");
}

function onSnapshot(channel, data) {
  if (channel !== state.channel) return;
  if (data.station) {
    state.stationName = data.station.name;
    renderTitle();
  }
  store.replace(data.tickets);
  render();
}

function onEvent(channel, event, data) {
  if (channel !== state.channel) return;
  const change = store.apply(data, event);
  if (change === "new" && event === "order.queued") beeper.beep();
  if (change) render();
}

function renderFilter() {
  const select = $("filter");
  const codes = store.stationCodes();
  if (state.filter && !codes.includes(state.filter)) codes.push(state.filter);
  const wanted = ["", ...codes.sort()];
  const have = [...select.options].map((option) => option.value);
  if (wanted.join("|") !== have.join("|")) {
    select.replaceChildren(
      ...wanted.map((code) => new Option(code ? stationName(code) : t("allStations"), code)),
    );
  }
  select.value = state.filter;
}

function render() {
  if (!state.station) renderFilter();
  state.shown = store.visible(state.station ? null : state.filter || null);
  if (state.selected != null && !state.shown.some((ticket) => ticket.id === state.selected)) state.selected = null;
  const time = now();
  board.replaceChildren(
    ...state.shown.map((ticket, index) =>
      ticketElement(ticket, {
        position: index + 1,
        station: state.station,
        selected: ticket.id === state.selected,
        now: time,
        thresholds,
      }),
    ),
  );
  $("empty").hidden = state.shown.length > 0;
  $("count").textContent = String(state.shown.filter((ticket) => !isDone(ticket)).length);
  renderSound();
}

function renderSound() {
  const button = $("mute");
  button.textContent = beeper.muted ? t("unmute") : t("mute");
  button.setAttribute("aria-pressed", String(beeper.muted));
  $("sound-hint").hidden = beeper.muted || beeper.ready;
}

function tick() {
  const time = now();
  for (const node of board.children) {
    const ticket = state.shown.find((shown) => String(shown.id) === node.dataset.order);
    if (ticket) updateAge(node, ticket, time, thresholds);
  }
  renderSound();
}

function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 4000);
}

// Sends an action's command for a ticket; the reply's ticket is applied at once (the events follow anyway).
async function act(action, ticket) {
  if (!ticket || !state.connection) return;
  const allowed = actionsFor(ticket, state.station);
  if (action === "primary") action = allowed[0];
  if (!action || !allowed.includes(action)) return;
  const [type, data] = commandFor(action, ticket, state.station);
  try {
    const reply = await state.connection.command(type, data);
    // A station's display shows its station's ticket: a whole order's reply only tells it the order has gone.
    if (!state.station || "station" in reply || !["paid", "preparing", "ready"].includes(reply.status)) {
      if (store.apply(reply)) render();
    }
  } catch (error) {
    if (error instanceof CommandError) toast(`#${ticket.number}: ${error.message}`);
    else toast(String(error && error.message ? error.message : error));
  }
}

function select(id) {
  state.selected = id;
  for (const node of board.children) node.classList.toggle("selected", node.dataset.order === String(id));
  const node = board.querySelector(".ticket.selected");
  if (node) node.scrollIntoView({ block: "nearest", inline: "nearest" });
}

function selectedTicket() {
  return state.shown.find((ticket) => ticket.id === state.selected) || null;
}

function toggleMute() {
  beeper.muted = !beeper.muted;
  localStorage.setItem("kitchen:muted", beeper.muted ? "1" : "0");
  renderSound();
}

board.addEventListener("click", (click) => {
  const node = click.target.closest(".ticket");
  if (!node) return;
  const ticket = state.shown.find((shown) => String(shown.id) === node.dataset.order);
  select(ticket ? ticket.id : null);
  const button = click.target.closest("button[data-action]");
  if (button && ticket) act(button.dataset.action, ticket);
});

document.addEventListener("keydown", (press) => {
  if (press.target instanceof HTMLSelectElement || press.ctrlKey || press.metaKey || press.altKey) return;
  const key = keyAction(press.key);
  if (!key) return;
  press.preventDefault();
  const index = state.shown.findIndex((ticket) => ticket.id === state.selected);
  switch (key.action) {
    case "select":
      if (state.shown[key.index]) select(state.shown[key.index].id);
      break;
    case "previous":
    case "next": {
      if (!state.shown.length) break;
      const step = key.action === "next" ? 1 : -1;
      const at = index < 0 ? 0 : (index + step + state.shown.length) % state.shown.length;
      select(state.shown[at].id);
      break;
    }
    case "mute":
      toggleMute();
      break;
    default:
      // Without a selection the bump bar works on the oldest ticket.
      act(key.action, selectedTicket() || state.shown[0]);
  }
});

$("mute").addEventListener("click", toggleMute);
$("filter").addEventListener("change", (change) => {
  state.filter = change.target.value;
  localStorage.setItem("kitchen:filter", state.filter);
  render();
});

function applyWords() {
  document.documentElement.lang = lang;
  $("title").textContent = t("title");
  $("filter-label").textContent = t("filter");
  $("empty").textContent = t("empty");
  $("sound-hint").textContent = t("soundLocked");
  $("keys").textContent = t("keys");
}

async function main() {
  applyWords();
  renderSound();
  const session = await deviceSession("kitchen", $("enrol"));
  $("enrol").hidden = true;
  $("display").hidden = false;
  state.connection = new DeviceConnection({
    token: session.token,
    getToken: () => session.getToken(),
    onWelcome,
    onSnapshot,
    onEvent,
    onStatus: (status, detail) => showStatus($("status"), status, detail),
  });
  session.onToken = (token) => state.connection.refreshToken(token);
  state.connection.start();
  setInterval(tick, 1000);
}

main();
