// The menu the kiosk shows: the `branch:{b}:menu` snapshot (or a `menu.get` reply in another language), kept up to
// date by `menu.item_updated`, `menu.item_removed` and `stock.changed` (docs/protocol.md "Menu", "Combos",
// "Languages"). Events name rows in the branch's default locale and carry `translations`: every name is read through
// `text()` with the protocol's fallback (the locale, its language, the default locale, its language, the row's name).

const base = (code) => String(code || "").split("-")[0];

export class MenuStore {
  constructor() {
    this.data = null; // the snapshot: branch_id, currency, service_modes, locale, default_locale, locales, categories
    this.items = new Map(); // item id -> item
  }

  get ready() {
    return this.data !== null;
  }

  get locales() {
    return this.data?.locales ?? [];
  }

  /** Replace everything with a snapshot or a `menu.get` reply. */
  replace(data) {
    this.data = data;
    this.items.clear();
    for (const category of data.categories ?? []) {
      for (const item of category.items ?? []) this._keep(item);
    }
    this._deriveCombos();
  }

  /** Apply a menu event; true when something changed. */
  apply(event, data) {
    if (!this.ready) return false;
    if (event === "menu.item_updated") {
      this._remove(data.id);
      const category = this.data.categories.find((row) => row.id === data.category_id);
      if (!category) return true; // a category this menu does not show yet: the next snapshot brings it
      category.items.push(data);
      category.items.sort((a, b) => a.position - b.position || a.id - b.id);
      this._keep(data);
    } else if (event === "menu.item_removed") {
      this._remove(data.item_id);
    } else if (event === "stock.changed") {
      const item = this.items.get(data.item_id);
      if (item) {
        Object.assign(item, { available: data.available, stock: data.stock });
        item._ownOrderable = data.orderable;
        item.orderable = data.orderable;
      }
    } else {
      return false;
    }
    this._deriveCombos();
    return true;
  }

  categories() {
    return (this.data?.categories ?? []).filter((category) => category.items.length > 0);
  }

  item(id) {
    return this.items.get(id) ?? null;
  }

  /** The text `field` (`name` or `description`) of a row in `locale`, with the protocol's fallback. */
  text(row, locale, field = "name") {
    const translations = row?.translations ?? {};
    const wanted = [locale, base(locale), this.data?.default_locale, base(this.data?.default_locale)];
    for (const code of wanted) {
      const value = code && translations[code]?.[field];
      if (value) return value;
    }
    return row?.[field] ?? "";
  }

  /** A combo slot choice's name: its item's, as the menu names it, else the choice's own. */
  choiceName(choice, locale) {
    const item = this.items.get(choice.item_id);
    return item ? this.text(item, locale) : this.text(choice, locale);
  }

  _keep(item) {
    if (item._ownOrderable === undefined) {
      // A combo whose slots were all fillable when it came: its `orderable` is its own.
      const fillable = (item.combo_slots ?? []).every((slot) => slot.choices.some((choice) => choice.available));
      item._ownOrderable = fillable ? item.orderable : item.available && (item.stock === null || item.stock > 0);
    }
    this.items.set(item.id, item);
  }

  _remove(id) {
    this.items.delete(id);
    for (const category of this.data.categories) {
      category.items = category.items.filter((item) => item.id !== id);
    }
  }

  _deriveCombos() {
    // A combo's choices follow their items' availability; the combo is orderable while each slot can be filled.
    for (const item of this.items.values()) {
      if (!item.combo_slots?.length) continue;
      for (const slot of item.combo_slots) {
        for (const choice of slot.choices) {
          const component = this.items.get(choice.item_id);
          if (component) choice.available = component.orderable;
        }
      }
      const fillable = item.combo_slots.every((slot) => slot.choices.some((choice) => choice.available));
      item.orderable = item._ownOrderable && fillable;
    }
  }
}
