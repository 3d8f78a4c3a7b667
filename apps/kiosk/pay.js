// Placing the order and paying it at the paired terminal (docs/protocol.md "order.place", "Payments"): the order is
// placed with the total the customer saw, then `payment.start` asks the terminal to charge it; the kiosk's
// `device:{d}` events say how the payment goes. A declined, failed, expired or cancelled payment can be started
// again; giving up cancels the payment in flight and the unpaid order.

import { CommandError } from "../shared/client.js";

const OPEN = new Set(["pending", "processing"]);
const ENDED = new Set(["declined", "failed", "expired", "cancelled", "needs_refund"]);

export class PayFlow {
  /** `command(type, data)`: the connection's; `onChange()`: called whenever `phase` or its data change. */
  constructor(command, onChange) {
    this.command = command;
    this.onChange = onChange;
    this.generation = 0; // raised by every reset: an answer for an earlier customer is undone, not shown
    this.reset();
  }

  /** Forget everything (a new customer). */
  reset() {
    this.generation += 1;
    this.phase = "idle"; // placing | waiting | failed | done | cancelled (the order, by its payment timeout)
    this.order = null;
    this.payment = null;
    this.reason = null; // why the last attempt failed: a payment status or an error code
  }

  _set(phase, reason = null) {
    this.phase = phase;
    this.reason = reason;
    this.onChange();
  }

  /** Place the cart's order at the total the customer saw (the cart's) and start paying; price_changed and
   * out_of_stock are thrown. */
  async place(cart) {
    const generation = this.generation;
    this._set("placing");
    let order;
    try {
      order = await this.command("order.place", { cart_id: cart.id, expected_total: cart.total });
    } catch (error) {
      if (generation !== this.generation) return;
      this._set("idle");
      throw error;
    }
    if (generation !== this.generation) {
      // The customer left while the order was being placed.
      this.command("order.cancel", { order_id: order.id }).catch(() => {});
      return;
    }
    this.order = order;
    await this.start();
  }

  /** Ask the paired terminal to charge the order (again). */
  async start() {
    if (!this.order) return;
    const { generation, order } = this;
    this._set("placing");
    try {
      const payment = await this.command("payment.start", { order_id: this.order.id });
      if (generation === this.generation) return this._payment(payment);
      // The customer left while the terminal was being asked: stop the charge and the order.
      await this.command("payment.cancel", { payment_id: payment.id });
      await this.command("order.cancel", { order_id: order.id });
    } catch (error) {
      if (generation !== this.generation) return undefined;
      if (error instanceof CommandError) this._set("failed", error.code);
      else throw error;
    }
    return undefined;
  }

  /** The customer stops the charge at the terminal; the order stays for another try. */
  async cancelPayment() {
    if (!this.payment || !OPEN.has(this.payment.status)) return;
    try {
      this._payment(await this.command("payment.cancel", { payment_id: this.payment.id }));
    } catch (error) {
      // Final already: its event says how it ended.
    }
  }

  /** Give up: cancel the payment in flight and the unpaid order. */
  async abandon() {
    const { order, payment } = this;
    this.reset();
    try {
      if (payment && OPEN.has(payment.status)) await this.command("payment.cancel", { payment_id: payment.id });
      if (order && order.status === "awaiting_payment") await this.command("order.cancel", { order_id: order.id });
    } catch (error) {
      // Paid meanwhile, or cancelled already: nothing more to undo (an unpaid order also times out on the server).
    }
  }

  _payment(payment) {
    this.payment = payment;
    if (OPEN.has(payment.status)) this._set("waiting");
    else if (payment.status === "approved") this._set("done");
    else if (ENDED.has(payment.status)) this._set("failed", payment.status);
  }

  /** Apply an event of the kiosk's device channel. */
  onEvent(event, data) {
    if (!this.order || this.phase === "idle") return;
    if (event.startsWith("payment.") && data.order_id === this.order.id) {
      if (this.payment === null || data.id >= this.payment.id) this._payment(data);
    } else if (event.startsWith("order.") && data.id === this.order.id) {
      this.order = data;
      if (data.status !== "awaiting_payment" && data.status !== "cancelled") this._set("done");
      else if (data.status === "cancelled" && this.phase !== "done") this._set("cancelled");
    }
  }

  /** Apply the device channel's snapshot after a reconnect: its open payments and awaiting orders. */
  onSnapshot(data) {
    if (!this.order) return;
    const order = (data.orders ?? []).find((row) => row.id === this.order.id);
    if (order) this.order = order;
    const payment = (data.payments ?? []).find((row) => row.order_id === this.order.id);
    if (payment) this._payment(payment);
  }
}
