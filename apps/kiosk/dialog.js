// The item dialog: an item's option groups (each with its min/max enforced), a combo's slots (an item per slot,
// with that item's own options and the slot's upcharge), quantity and a note for the kitchen. Its add button stays
// disabled, with a hint saying what is missing, until every group and slot is valid; then it sends `cart.add`
// through `onAdd(data)` (docs/protocol.md "cart.add"). Prices shown are the menu's; totals come from the server.

import { MAX_QTY, allergenList, allergensOf, caloriesOf, delta, el } from "./dom.js";

/** A group's rule in words: "Choose 1", "Up to 3", "Choose 1 to 2". */
function ruleText(group, t) {
  const { min_select: min, max_select: max } = group;
  if (min === max) return t("group.exactly", { n: min });
  if (min === 0) return t("group.upTo", { max });
  return t("group.range", { min, max });
}

/** The key of a group's choices: the item's own (`slotId` null) or a combo slot's item's. */
function groupKey(slotId, groupId) {
  return slotId === null ? `g${groupId}` : `s${slotId}g${groupId}`;
}

function defaults(group) {
  return new Set(group.choices.filter((choice) => choice.is_default).map((choice) => choice.id));
}

export class ItemDialog {
  /** `dialog`: the <dialog> element; `view`: {menu, t, locale, money}; `onAdd(data)`: resolves or throws. */
  constructor(dialog, view, onAdd) {
    this.dialog = dialog;
    this.view = view;
    this.onAdd = onAdd;
    this.item = null;
    dialog.addEventListener("close", () => (this.item = null));
  }

  /** Show `item` with its default choices. */
  open(item) {
    this.item = item;
    this.qty = 1;
    this.note = "";
    this.error = "";
    this.busy = false;
    this.picked = new Map(); // group key -> Set of choice ids
    this.slots = new Map(); // slot id -> chosen item id (or null)
    for (const group of item.option_groups) this.picked.set(groupKey(null, group.id), defaults(group));
    for (const slot of item.combo_slots ?? []) {
      const pick = slot.choices.find((choice) => choice.is_default && choice.available) ?? null;
      this.slots.set(slot.id, null);
      if (pick) this._pickSlot(slot, pick);
    }
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  _pickSlot(slot, choice) {
    this.slots.set(slot.id, choice.item_id);
    for (const group of choice.option_groups) this.picked.set(groupKey(slot.id, group.id), defaults(group));
  }

  _slotChoice(slot) {
    return slot.choices.find((choice) => choice.item_id === this.slots.get(slot.id)) ?? null;
  }

  /** Every group in force now, with its key: the item's, then each filled slot's item's. */
  _groups() {
    const groups = this.item.option_groups.map((group) => ({ key: groupKey(null, group.id), group }));
    for (const slot of this.item.combo_slots ?? []) {
      const choice = this._slotChoice(slot);
      for (const group of choice?.option_groups ?? []) groups.push({ key: groupKey(slot.id, group.id), group });
    }
    return groups;
  }

  /** What is still missing, in words (empty: ready to add). */
  missing() {
    const { menu, locale } = this.view;
    const names = [];
    for (const slot of this.item.combo_slots ?? []) {
      if (this._slotChoice(slot) === null) names.push(menu.text(slot, locale));
    }
    for (const { key, group } of this._groups()) {
      if (this.picked.get(key).size < group.min_select) names.push(menu.text(group, locale));
    }
    return names;
  }

  _toggle(key, group, choiceId) {
    const chosen = this.picked.get(key);
    if (chosen.has(choiceId)) chosen.delete(choiceId);
    else if (group.max_select === 1) {
      chosen.clear();
      chosen.add(choiceId);
    } else if (chosen.size < group.max_select) chosen.add(choiceId);
    this.render();
  }

  _groupView(key, group) {
    const { menu, locale, money } = this.view;
    const chosen = this.picked.get(key);
    const full = group.max_select > 1 && chosen.size >= group.max_select;
    const short = chosen.size < group.min_select;
    return el(
      "fieldset",
      { class: `group${short ? " short" : ""}`, dataset: { testid: `group-${group.id}`, key } },
      el("legend", {}, menu.text(group, locale), " ", el("span", { class: "rule" }, ruleText(group, this.view.t))),
      el(
        "div",
        { class: "choices" },
        group.choices.map((choice) =>
          el(
            "button",
            {
              type: "button",
              class: "choice",
              "aria-pressed": String(chosen.has(choice.id)),
              disabled: full && !chosen.has(choice.id),
              dataset: { testid: `choice-${choice.id}`, key: `${key}c${choice.id}` },
              onclick: () => this._toggle(key, group, choice.id),
            },
            el("span", {}, menu.text(choice, locale)),
            el("span", { class: "delta" }, delta(choice.price_delta, money)),
          ),
        ),
      ),
    );
  }

  _slotView(slot) {
    const { menu, locale, money, t } = this.view;
    const current = this._slotChoice(slot);
    return el(
      "fieldset",
      { class: `slot${current ? "" : " short"}`, dataset: { testid: `slot-${slot.id}` } },
      el("legend", {}, menu.text(slot, locale), " ", el("span", { class: "rule" }, t("group.exactly", { n: 1 }))),
      el(
        "div",
        { class: "choices" },
        slot.choices.map((choice) =>
          el(
            "button",
            {
              type: "button",
              class: "choice",
              "aria-pressed": String(current?.item_id === choice.item_id),
              disabled: !choice.available,
              dataset: { testid: `slot-choice-${choice.item_id}`, key: `slot${slot.id}i${choice.item_id}` },
              onclick: () => {
                this._pickSlot(slot, choice);
                this.render();
              },
            },
            el("span", {}, menu.choiceName(choice, locale)),
            el("span", { class: "delta" }, delta(choice.upcharge, money)),
          ),
        ),
      ),
      (current?.option_groups ?? []).map((group) => this._groupView(groupKey(slot.id, group.id), group)),
    );
  }

  /** The chosen rows (the item, its choices, each component with its choices) for allergens and calories. */
  _rows() {
    const rows = [];
    const choicesOf = (groups, slotId) =>
      groups.flatMap((group) => group.choices.filter((c) => this.picked.get(groupKey(slotId, group.id))?.has(c.id)));
    if (this.item.combo_slots?.length) {
      for (const slot of this.item.combo_slots) {
        const choice = this._slotChoice(slot);
        if (choice) rows.push(choice, ...choicesOf(choice.option_groups, slot.id));
      }
    } else rows.push(this.item);
    return rows.concat(choicesOf(this.item.option_groups, null));
  }

  render() {
    const { menu, locale, money, t } = this.view;
    const item = this.item;
    const focused = document.activeElement?.dataset?.key ?? document.activeElement?.dataset?.testid;
    const missing = this.missing();
    const rows = this._rows();
    const kcal = caloriesOf(...rows);
    const description = menu.text(item, locale, "description");
    this.dialog.replaceChildren(
      el(
        "form",
        { class: "item-dialog", onsubmit: (event) => this._submit(event) },
        el(
          "header",
          { class: "dialog-head" },
          el("h2", { id: "dialog-title" }, menu.text(item, locale)),
          el("span", { class: "price" }, money(item.price)),
          el(
            "button",
            { type: "button", class: "close", dataset: { testid: "dialog-close" },
              "aria-label": t("dialog.close"), onclick: () => this.close() },
            "×",
          ),
        ),
        description ? el("p", { class: "muted" }, description) : null,
        el(
          "div",
          { class: "facts" },
          allergenList(allergensOf(...rows), t),
          kcal === null ? null : el("span", { class: "kcal" }, t("item.kcal", { kcal })),
        ),
        (item.combo_slots ?? []).map((slot) => this._slotView(slot)),
        item.option_groups.map((group) => this._groupView(groupKey(null, group.id), group)),
        el(
          "label",
          { class: "note" },
          t("dialog.note"),
          el("input", { type: "text", maxLength: 200, value: this.note, dataset: { testid: "dialog-note" },
            oninput: (event) => (this.note = event.target.value) }),
        ),
        el(
          "div",
          { class: "qty", role: "group", "aria-label": t("dialog.qty") },
          el("button", { type: "button", "aria-label": t("dialog.less"), disabled: this.qty <= 1,
            dataset: { testid: "qty-minus" }, onclick: () => this._setQty(this.qty - 1) }, "−"),
          el("output", { dataset: { testid: "qty" } }, String(this.qty)),
          el("button", { type: "button", "aria-label": t("dialog.more"), disabled: this.qty >= MAX_QTY,
            dataset: { testid: "qty-plus" }, onclick: () => this._setQty(this.qty + 1) }, "+"),
        ),
        el(
          "footer",
          { class: "dialog-foot" },
          el("p", { class: "hint", role: "status", dataset: { testid: "dialog-hint" } },
            this.error || (missing.length ? t("hint.pick", { names: missing.join(", ") }) : "")),
          el("button", { type: "submit", class: "primary add", disabled: missing.length > 0 || this.busy,
            dataset: { testid: "dialog-add" } }, t("dialog.add")),
        ),
      ),
    );
    this.dialog.setAttribute("aria-labelledby", "dialog-title");
    const again = focused && this.dialog.querySelector(`[data-key="${focused}"], [data-testid="${focused}"]`);
    if (again && !again.disabled) again.focus();
  }

  _setQty(qty) {
    this.qty = Math.min(MAX_QTY, Math.max(1, qty));
    this.render();
  }

  /** The `cart.add` data of what is chosen (without `cart_id`). */
  data() {
    const item = this.item;
    const data = { item_id: item.id, qty: this.qty };
    data.options = item.option_groups.flatMap((group) => [...this.picked.get(groupKey(null, group.id))]);
    if (item.combo_slots?.length) {
      data.components = item.combo_slots.map((slot) => {
        const choice = this._slotChoice(slot);
        const choiceIds = choice.option_groups.flatMap((group) => [...this.picked.get(groupKey(slot.id, group.id))]);
        return { slot_id: slot.id, item_id: choice.item_id, choice_ids: choiceIds };
      });
    }
    const note = this.note.trim();
    if (note) data.note = note;
    return data;
  }

  async _submit(event) {
    event.preventDefault();
    if (this.busy || this.missing().length) return;
    this.busy = true;
    this.error = "";
    this.render();
    try {
      await this.onAdd(this.data());
      this.close();
    } catch (error) {
      this.busy = false;
      this.error = this.view.t("error.generic", { message: error.message });
      if (this.item) this.render();
    }
  }

  /** Show the menu's newest state of the open item; close when it can no longer be ordered. */
  refresh() {
    if (!this.item) return;
    const fresh = this.view.menu.item(this.item.id);
    if (!fresh || !fresh.orderable) return this.close();
    this.item = fresh;
    // Groups the new state brings start at their defaults; a slot's choice no longer available is picked again.
    for (const group of fresh.option_groups) {
      if (!this.picked.has(groupKey(null, group.id))) this.picked.set(groupKey(null, group.id), defaults(group));
    }
    for (const slot of fresh.combo_slots ?? []) {
      const choice = this._slotChoice(slot);
      if (!choice || !choice.available) this.slots.set(slot.id, null);
      else if (choice.option_groups.some((group) => !this.picked.has(groupKey(slot.id, group.id)))) {
        this._pickSlot(slot, choice);
      }
    }
    return this.render();
  }
}
