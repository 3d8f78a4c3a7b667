// The cart as the server priced it (docs/protocol.md "Carts"): its lines with their options, components, notes and
// problems, each line's total, the tax it contains per rate and the total. Nothing is added up here.

import { MAX_QTY, delta, el } from "./dom.js";

function optionText(options, money) {
  return options.map((option) => [option.name, delta(option.price_delta, money)].filter(Boolean).join(" "));
}

function lineView(line, view, actions) {
  const { t, money } = view;
  const components = (line.components ?? []).map((component) =>
    el(
      "li",
      { class: "component" },
      el("span", { class: "component-slot" }, `${component.slot}: `),
      component.name,
      component.upcharge ? ` ${delta(component.upcharge, money)}` : "",
      component.options.length ? ` (${optionText(component.options, money).join(", ")})` : "",
    ),
  );
  return el(
    "li",
    {
      class: `cart-line${line.problem ? " problem" : ""}`,
      dataset: { testid: "cart-line", lineId: line.id, itemId: line.item_id },
    },
    el(
      "div",
      { class: "line-head" },
      el("span", { class: "line-name" }, `${line.qty} × ${line.name}`),
      el("span", { class: "line-total", dataset: { testid: "line-total" } }, money(line.line_total)),
    ),
    line.options.length ? el("p", { class: "line-options" }, optionText(line.options, money).join(", ")) : null,
    components.length ? el("ul", { class: "components" }, components) : null,
    line.note ? el("p", { class: "line-note" }, t("cart.note", { note: line.note })) : null,
    line.problem ? el("p", { class: "line-problem", role: "alert" }, line.problem.message) : null,
    el(
      "div",
      { class: "line-actions" },
      el("button", { type: "button", "aria-label": t("dialog.less"), dataset: { testid: "line-minus" },
        onclick: () => actions.setQty(line, line.qty - 1) }, "−"),
      el("button", { type: "button", "aria-label": t("dialog.more"), dataset: { testid: "line-plus" },
        disabled: line.qty >= MAX_QTY,
        onclick: () => actions.setQty(line, line.qty + 1) }, "+"),
      el("button", { type: "button", class: "remove", dataset: { testid: "line-remove" },
        onclick: () => actions.setQty(line, 0) }, t("cart.remove")),
    ),
  );
}

/** Fill `container` with `cart` (or nothing yet). */
export function renderCart(container, cart, view, actions) {
  const { t, money } = view;
  const lines = cart?.lines ?? [];
  const taxes = (cart?.taxes ?? []).map((rate) =>
    el("li", { class: "tax", dataset: { testid: "cart-tax", rate: rate.rate_bp } },
      el("span", {}, t("cart.tax", { rate: (rate.rate_bp / 100).toLocaleString(view.locale) })),
      el("span", {}, money(rate.tax))),
  );
  container.replaceChildren(
    el("h2", {}, t("cart.title")),
    lines.length
      ? el("ul", { class: "cart-lines" }, lines.map((line) => lineView(line, view, actions)))
      : el("p", { class: "muted", dataset: { testid: "cart-empty" } }, t("cart.empty")),
    el(
      "div",
      { class: "cart-foot" },
      taxes.length ? el("ul", { class: "taxes" }, taxes) : null,
      el("p", { class: "total" }, el("span", {}, t("cart.total")),
        el("span", { dataset: { testid: "cart-total", total: cart?.total ?? 0 } }, money(cart?.total ?? 0))),
      el(
        "div",
        { class: "button-row" },
        el("button", { type: "button", dataset: { testid: "cancel-order" }, onclick: actions.cancel },
          t("cancel.order")),
        el("button", { type: "button", class: "primary", dataset: { testid: "checkout" },
          disabled: !lines.length || lines.some((line) => line.problem), onclick: actions.checkout }, t("checkout")),
      ),
    ),
  );
}
