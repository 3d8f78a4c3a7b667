// The 86 switch: the branch's items from `branch:{b}:menu` (its snapshot is the menu; `stock.changed`,
// `menu.item_updated` and `menu.item_removed` keep it), each switched off or on with `item.set_available`
// (stock:write; docs/protocol.md "Menu"). The switch shows what the server says: the reply, then the event.

import { lang, t } from "./strings.js";

export class ItemsPanel {
  constructor(list, note, { session, onError }) {
    this.list = list;
    this.note = note;
    this.session = session;
    this.onError = onError;
    this.connection = null;
    this.branch = null;
    this.items = new Map(); // id -> {id, name, category_id, position, available, stock, orderable}
    this.categories = new Map(); // category id -> its position in the menu
    this.busy = new Set();
  }

  setBranch(branch) {
    this.branch = branch;
    this.items.clear();
    this.categories.clear();
    delete this.list.dataset.loadedBranch;
    this.render();
  }

  snapshot(data) {
    this.items.clear();
    this.categories.clear();
    for (const category of data.categories ?? []) {
      this.categories.set(category.id, category.position);
      for (const item of category.items ?? []) this.items.set(item.id, { ...item, category_id: category.id });
    }
    this.render();
    this.list.dataset.loadedBranch = String(this.branch); // the snapshot of the branch shown came
  }

  event(event, data) {
    if (event === "stock.changed") {
      const held = this.items.get(data.item_id);
      if (!held) return;
      Object.assign(held, { available: data.available, stock: data.stock, orderable: data.orderable });
    } else if (event === "menu.item_updated") {
      this.items.set(data.id, { ...data, category_id: data.category_id ?? this.items.get(data.id)?.category_id });
    } else if (event === "menu.item_removed") {
      this.items.delete(data.item_id);
    } else {
      return;
    }
    this.render();
  }

  async toggle(item) {
    if (!this.connection || this.busy.has(item.id)) return;
    this.busy.add(item.id);
    this.render();
    try {
      const data = { item_id: item.id, available: !item.available, branch_id: this.branch };
      const reply = await this.connection.command("item.set_available", data);
      this.event("stock.changed", reply);
    } catch (error) {
      this.onError(error);
    } finally {
      this.busy.delete(item.id);
      this.render();
    }
  }

  render() {
    const allowed = this.session.can("stock:write");
    this.note.textContent = allowed ? t("items.hint") : t("missing.permission", { permission: "stock:write" });
    const position = (item) => this.categories.get(item.category_id) ?? Number.MAX_SAFE_INTEGER;
    const items = [...this.items.values()].sort(
      (a, b) => position(a) - position(b) || a.position - b.position || a.id - b.id,
    );
    this.list.replaceChildren(...items.map((item) => this.row(item, allowed)));
  }

  row(item, allowed) {
    const row = document.createElement("li");
    row.className = "row item";
    row.dataset.testid = `item-${item.id}`;
    row.dataset.available = String(item.available);
    const name = document.createElement("span");
    name.className = "row-main";
    name.dataset.testid = "item-name";
    // Menu events name items in the branch's default language; their translations hold the page's.
    name.textContent = item.translations?.[lang]?.name ?? item.name;
    const stock = document.createElement("span");
    stock.className = "muted";
    stock.textContent = item.stock === null || item.stock === undefined ? "" : t("items.left", { stock: item.stock });
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "small switch";
    toggle.dataset.testid = "item-toggle";
    toggle.setAttribute("role", "switch");
    toggle.setAttribute("aria-checked", String(item.available));
    toggle.textContent = item.available ? t("items.on") : t("items.off");
    toggle.disabled = !allowed || this.busy.has(item.id);
    toggle.addEventListener("click", () => this.toggle(item));
    row.append(name, stock, toggle);
    return row;
  }
}
