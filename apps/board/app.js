// The order board: the numbers being prepared and the numbers ready to collect, large; a number that turns ready
// is highlighted for a few seconds. It speaks only the public protocol through the shared client (the
// `branch:{b}:board` channel: its snapshot and `board.updated`).
//
// URL options: `?highlight=8` the seconds a number that turns ready stays highlighted; `?lang=de|en`.

import { DeviceConnection, showStatus } from "../shared/client.js";
import { deviceSession } from "../shared/enrol.js";
import { BoardEntries } from "./entries.js";
import { lang, t } from "./strings.js";

const params = new URLSearchParams(window.location.search);
const highlightS = Number(params.get("highlight")) > 0 ? Number(params.get("highlight")) : 8;

const $ = (id) => document.getElementById(id);
const entries = new BoardEntries();
const highlighted = new Map(); // order id -> when its highlight ends (ms)
let channel = null;
let seenSnapshot = false; // numbers ready on the first snapshot are not news; ones that turned ready while away are

function highlight(ids) {
  const until = Date.now() + highlightS * 1000;
  for (const id of ids) highlighted.set(id, until);
  if (ids.length) setTimeout(render, highlightS * 1000 + 50);
}

function numberElement(entry) {
  const node = document.createElement("li");
  node.className = "number";
  node.dataset.order = String(entry.order_id);
  node.textContent = String(entry.number);
  if ((highlighted.get(entry.order_id) || 0) > Date.now()) node.classList.add("fresh");
  return node;
}

function render() {
  for (const [id, until] of highlighted) if (until <= Date.now()) highlighted.delete(id);
  for (const column of ["preparing", "ready"]) {
    $(column).replaceChildren(...entries.column(column).map(numberElement));
  }
}

function onWelcome(welcome) {
  channel = `branch:${welcome.principal.branch_id}:board`;
}

function onSnapshot(name, data) {
  if (name !== channel) return;
  const newlyReady = entries.replace(data);
  if (seenSnapshot) highlight(newlyReady);
  seenSnapshot = true;
  render();
}

function onEvent(name, event, data) {
  if (name !== channel || event !== "board.updated") return;
  const change = entries.apply(data);
  if (change === "ready") highlight([data.order_id]);
  if (change) render();
}

async function main() {
  document.documentElement.lang = lang;
  $("preparing-title").textContent = t("preparing");
  $("ready-title").textContent = t("ready");
  const session = await deviceSession("board", $("enrol"));
  $("enrol").hidden = true;
  $("board").hidden = false;
  const connection = new DeviceConnection({
    token: session.token,
    getToken: () => session.getToken(),
    onWelcome,
    onSnapshot,
    onEvent,
    onStatus: (status, detail) => showStatus($("status"), status, detail),
  });
  session.onToken = (token) => connection.refreshToken(token);
  connection.start();
}

main();
