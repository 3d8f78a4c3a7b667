// Live orders by state, from `branch:{b}:orders` (docs/protocol.md "Channels"): its snapshot holds the orders of the
// last 24 hours that are not completed; `order.*` events then move them. Kept by id at the newest version (the shared
// client drops older payloads); completed, cancelled and refunded orders leave the columns.

import { formatMoney } from "../shared/i18n.js";
import { lang, t } from "./strings.js";

const COLUMNS = ["awaiting_payment", "paid", "preparing", "ready"];

export class OrdersPanel {
  constructor(container) {
    this.container = container;
    this.orders = new Map(); // id -> order
    this.columns = new Map();
    for (const state of COLUMNS) {
      const column = document.createElement("section");
      column.className = "orders-column";
      column.dataset.state = state;
      const title = document.createElement("h3");
      title.append(t(`state.${state}`), " ");
      const count = document.createElement("span");
      count.className = "count";
      title.append(count);
      const list = document.createElement("ol");
      list.className = "order-cards";
      list.dataset.testid = `orders-${state}`;
      column.append(title, list);
      this.columns.set(state, { list, count });
    }
    container.replaceChildren(...[...this.columns.keys()].map((state) => this.columns.get(state).list.parentElement));
  }

  clear() {
    this.orders.clear();
    this.render();
  }

  snapshot(data) {
    this.orders.clear();
    for (const order of data.orders ?? []) if (COLUMNS.includes(order.status)) this.orders.set(order.id, order);
    this.render();
  }

  /** An `order.*` event (the shared client drops older versions); an order that leaves the columns is forgotten. */
  event(event, data) {
    if (!event.startsWith("order.") || typeof data?.id !== "number") return;
    if (COLUMNS.includes(data.status)) this.orders.set(data.id, data);
    else this.orders.delete(data.id);
    this.render();
  }

  render() {
    for (const [state, { list, count }] of this.columns) {
      const shown = [...this.orders.values()]
        .filter((order) => order.status === state)
        .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id - b.id));
      list.replaceChildren(...shown.map((order) => card(order)));
      count.textContent = String(shown.length);
    }
  }
}

function card(order) {
  const item = document.createElement("li");
  item.className = "order-card";
  item.dataset.testid = `order-${order.id}`;
  item.dataset.order = String(order.id);
  item.dataset.status = order.status;
  const head = document.createElement("div");
  head.className = "order-head";
  const number = document.createElement("strong");
  number.textContent = `#${order.number}`;
  const total = document.createElement("span");
  total.textContent = formatMoney(order.total, order.currency, lang);
  head.append(number, total);
  const lines = document.createElement("div");
  lines.className = "muted order-lines";
  lines.textContent = (order.lines ?? []).map((line) => `${line.qty}× ${line.name}`).join(", ");
  const time = document.createElement("div");
  time.className = "muted order-time";
  const created = new Date(order.created_at);
  time.textContent = Number.isNaN(created.getTime())
    ? ""
    : created.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  if (order.customer_name) time.textContent += ` · ${order.customer_name}`;
  item.append(head, lines, time);
  return item;
}
