// The order board's numbers: kept by order id at the newest version heard of, from the `branch:{b}:board`
// snapshot (`preparing`, `ready`) and `board.updated` events (docs/protocol.md "Events", "Versions").

export class BoardEntries {
  constructor() {
    this.entries = new Map(); // order id -> {order_id, version, number, column}; column null: off the board
  }

  // Replaces everything with a snapshot; returns the order ids that are ready now and were not before.
  replace(snapshot) {
    const before = this.readyIds();
    this.entries.clear();
    for (const column of ["preparing", "ready"]) {
      for (const entry of snapshot[column] || []) this.entries.set(entry.order_id, { ...entry, column });
    }
    return [...this.readyIds()].filter((id) => !before.has(id));
  }

  // Applies a `board.updated`; returns "ready" when the number has just turned ready, "changed", or null when
  // the event was older than the entry held (or changed nothing).
  apply(update) {
    const held = this.entries.get(update.order_id);
    if (held && update.version < held.version) return null;
    const wasReady = held ? held.column === "ready" : false;
    // An entry off the board is kept (column null) so that a late older event cannot bring it back.
    this.entries.delete(update.order_id); // re-inserted last: a number that moves joins the end of its column
    this.entries.set(update.order_id, { ...update });
    if (update.column === "ready" && !wasReady) return "ready";
    return held && held.column === update.column ? null : "changed";
  }

  readyIds() {
    return new Set(this.column("ready").map((entry) => entry.order_id));
  }

  // The entries of a column in the order they came to it.
  column(name) {
    return [...this.entries.values()].filter((entry) => entry.column === name);
  }
}
