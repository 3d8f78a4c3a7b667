// The DOM of a ticket: number, service mode, age timer, its lines with options, combo components and the
// customer's note (an allergy) flagged, and the buttons of what the display can do with it. Text only goes in by
// textContent: the names and notes come from customers.

import { actionsFor } from "./actions.js";
import { ageClass, formatAge, isDone, since } from "./tickets.js";
import { t } from "./strings.js";

function el(tag, className = "", text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function optionList(options) {
  const list = el("ul", "options");
  for (const option of options || []) list.append(el("li", "option", `+ ${option.name}`));
  return list;
}

function lineItem(line) {
  const item = el("li", "line");
  const head = el("div", "line-head");
  head.append(el("span", "qty", `${line.qty}×`), el("span", "name", line.name));
  item.append(head);
  if ((line.options || []).length) item.append(optionList(line.options));
  if ((line.components || []).length) {
    const components = el("ul", "components");
    for (const component of line.components) {
      const entry = el("li", "component");
      entry.append(el("span", "slot", `${component.slot}: `), el("span", "name", component.name));
      if ((component.options || []).length) entry.append(optionList(component.options));
      components.append(entry);
    }
    item.append(components);
  }
  if (line.note) {
    item.classList.add("has-note");
    const note = el("p", "note");
    note.append(el("strong", "", `⚠ ${t("note")}: `), document.createTextNode(line.note));
    item.append(note);
  }
  return item;
}

// The age in seconds of a ticket at `now` (milliseconds, the server's clock).
export function ageOf(ticket, now) {
  return (now - since(ticket)) / 1000;
}

// Sets a ticket element's timer text and colour class.
export function updateAge(node, ticket, now, thresholds) {
  const age = ageOf(ticket, now);
  const timer = node.querySelector(".age");
  timer.textContent = formatAge(age);
  const klass = isDone(ticket) ? "done" : ageClass(age, thresholds.warnS, thresholds.lateS);
  node.dataset.age = klass;
}

// The element of a ticket at `position` (1-based, what a digit key selects).
export function ticketElement(ticket, { position, station, selected, now, thresholds }) {
  const node = el("article", "ticket");
  node.dataset.order = String(ticket.id);
  node.dataset.status = ticket.status;
  node.tabIndex = -1;
  if (selected) node.classList.add("selected");
  if (isDone(ticket)) node.classList.add("done");
  if ((ticket.lines || []).some((line) => line.note)) node.classList.add("flagged");

  const head = el("header", "ticket-head");
  head.append(
    el("span", "position", String(position)),
    el("span", "number", `#${ticket.number}`),
    el("span", "mode", t(ticket.service_mode)),
    el("span", "age"),
  );
  node.append(head);

  const done = station && ticket.bumped_at != null && ticket.status !== "ready";
  const state = el("div", "state", t(done ? "bumped" : ticket.status));
  if (ticket.customer_name) state.append(el("span", "customer", ` · ${ticket.customer_name}`));
  node.append(state);

  const waiting = (ticket.stations || []).filter((entry) => entry.bumped_at == null && entry.station !== station);
  if (station && waiting.length && ticket.status !== "ready") {
    node.append(el("div", "waiting", `${t("waitingFor")}: ${waiting.map((s) => s.station).join(", ")}`));
  }

  const lines = el("ul", "lines");
  for (const line of ticket.lines || []) lines.append(lineItem(line));
  node.append(lines);

  const buttons = el("footer", "ticket-actions");
  actionsFor(ticket, station).forEach((action, index) => {
    const button = el("button", index === 0 ? "action primary" : "action", t(action));
    button.type = "button";
    button.dataset.action = action;
    buttons.append(button);
  });
  node.append(buttons);
  updateAge(node, ticket, now, thresholds);
  return node;
}
