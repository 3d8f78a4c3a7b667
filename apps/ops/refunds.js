// Payments that need a refund: money a terminal took for an order that could no longer take it (docs/protocol.md
// "Payments"). Listed over REST (`GET /payments?status=needs_refund&branch_id=`, payments:read), kept live by the
// `payment.*` events of `branch:{b}:orders`, and settled with `POST /payments/{id}/refund` (payments:refund).

import { formatMoney } from "../shared/i18n.js";
import { lang, t } from "./strings.js";

export class RefundsPanel {
  constructor(list, empty, note, { session, onError, onDone }) {
    this.list = list;
    this.empty = empty;
    this.note = note;
    this.session = session;
    this.onError = onError;
    this.onDone = onDone;
    this.payments = new Map(); // id -> payment in needs_refund
    this.branch = null;
    this.busy = new Set();
  }

  /** Show another branch: its payments are read on the orders snapshot that follows. */
  setBranch(branch) {
    this.branch = branch;
    this.payments.clear();
    delete this.list.dataset.loadedBranch;
    this.render();
  }

  /** Read the branch's payments in needs_refund again (on every orders snapshot); `data-loaded-branch` says done. */
  async load() {
    const missing = ["payments:read", "payments:refund"].filter((permission) => !this.session.can(permission));
    this.note.hidden = missing.length === 0;
    this.note.textContent = missing.map((permission) => t("missing.permission", { permission })).join(" ");
    if (!this.session.can("payments:read") || this.branch === null) return;
    const branch = this.branch;
    try {
      const page = await this.session.get(`/payments?status=needs_refund&branch_id=${branch}&limit=500`);
      if (branch !== this.branch) return;
      this.payments.clear();
      for (const payment of page.items) this.payments.set(payment.id, payment);
      this.render();
      this.list.dataset.loadedBranch = String(branch);
    } catch (error) {
      this.onError(error);
    }
  }

  /** A `payment.<status>` event: a payment that turned needs_refund joins, one that left it goes. */
  event(event, data) {
    if (!event.startsWith("payment.") || typeof data?.id !== "number") return;
    const held = this.payments.get(data.id);
    if (held && held.version > data.version) return;
    if (data.status === "needs_refund") this.payments.set(data.id, data);
    else this.payments.delete(data.id);
    this.render();
  }

  async refund(payment) {
    if (this.busy.has(payment.id)) return;
    this.busy.add(payment.id);
    this.render();
    try {
      const done = await this.session.post(`/payments/${payment.id}/refund`);
      this.event(`payment.${done.status}`, done);
      this.onDone(t("refunded", { id: payment.id }));
    } catch (error) {
      this.onError(error);
    } finally {
      this.busy.delete(payment.id);
      this.render();
    }
  }

  render() {
    const rows = [...this.payments.values()].sort((a, b) => a.id - b.id).map((payment) => this.row(payment));
    this.list.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
  }

  row(payment) {
    const row = document.createElement("li");
    row.className = "row";
    row.dataset.testid = `refund-${payment.id}`;
    const what = document.createElement("span");
    what.className = "row-main";
    what.textContent = t("refunds.payment", { id: payment.id, order: payment.order_id });
    const amount = document.createElement("span");
    amount.textContent = formatMoney(payment.amount, payment.currency, lang);
    const method = document.createElement("span");
    method.className = "muted";
    method.textContent = [payment.method, payment.provider_ref].filter(Boolean).join(" · ");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small danger";
    button.dataset.testid = "refund";
    button.textContent = t("refund");
    button.disabled = !this.session.can("payments:refund") || this.busy.has(payment.id);
    if (!this.session.can("payments:refund")) button.title = t("missing.permission", { permission: "payments:refund" });
    button.addEventListener("click", () => this.refund(payment));
    row.append(what, method, amount, button);
    return row;
  }
}
