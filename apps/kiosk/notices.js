// What `order.place` can refuse, explained to the customer (docs/protocol.md "order.place"): a changed price (the
// old and the new total, ordered at the new one when confirmed) and items short in stock (each named, with a button
// that removes the cart's lines holding it, a combo's line when it is one of its components).

import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

/** Show the `price_changed` details; `onConfirm()` places the order again at the new total. */
export function showPriceChanged(view, details, onConfirm) {
  const amounts = { old: view.money(details.expected_total), new: view.money(details.total) };
  const text = $("price-text");
  text.textContent = view.t("price.text", amounts);
  text.dataset.old = details.expected_total;
  text.dataset.new = details.total;
  $("price-confirm").textContent = view.t("price.confirm", amounts);
  $("price-confirm").onclick = () => {
    $("price-dialog").close();
    onConfirm();
  };
  $("price-dialog").showModal();
}

export class StockNotice {
  /** `remove(line)` takes a cart line out. */
  constructor(dialog, view, remove) {
    this.dialog = dialog;
    this.view = view;
    this.remove = remove;
    this.items = [];
    $("stock-back").addEventListener("click", () => dialog.close());
  }

  /** Open for the `out_of_stock` details' items. */
  show(items) {
    this.items = items;
    if (!this.dialog.open) this.dialog.showModal();
  }

  _why(item) {
    const { t } = this.view;
    if (item.reason === "daypart") return `${item.name}: ${t("item.unavailable")}`;
    if (item.reason) return `${item.name}: ${t("item.soldOut")}`;
    return t("stock.left", { name: item.name, left: item.left });
  }

  /** Show the lines still holding a short item; close once none is left. */
  render(cart) {
    if (!this.dialog.open) return;
    const { t } = this.view;
    const lines = cart?.lines ?? [];
    const holds = (line, item) =>
      line.item_id === item.item_id ||
      line.item_id === item.combo_item_id ||
      (line.components ?? []).some((component) => component.item_id === item.item_id);
    const rows = this.items.flatMap((item) =>
      lines
        .filter((line) => holds(line, item))
        .map((line) =>
          el(
            "li",
            { dataset: { testid: "stock-item", itemId: item.item_id } },
            el("span", {}, this._why(item)),
            el("button", { type: "button", class: "danger", dataset: { testid: `stock-remove-${line.id}` },
              onclick: () => this.remove(line) }, `${t("cart.remove")}: ${line.name}`),
          ),
        ),
    );
    if (rows.length) $("stock-items").replaceChildren(...rows);
    else this.dialog.close();
  }
}
