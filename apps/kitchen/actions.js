// What a kitchen display can do to a ticket, and the command each action sends (docs/protocol.md "Kitchen",
// "Kitchen stations"). A station's display bumps and recalls its own part; a whole-kitchen display moves the
// whole order. Either may recall or complete an order that is ready.

// The actions of a ticket at this display, the first being what a tap on the ticket's main button (or Enter)
// does. `station` is the display's own station code, null for a whole-kitchen display.
export function actionsFor(ticket, station) {
  if (station) {
    if (ticket.status === "ready") return ["complete", "recall"];
    if (ticket.bumped_at == null) return ["bump"];
    return ticket.status === "preparing" ? ["recall"] : [];
  }
  switch (ticket.status) {
    case "paid":
      return ["start"];
    case "preparing":
      return ["ready"];
    case "ready":
      return ["complete", "recall"];
    default:
      return [];
  }
}

// The command of an action on a ticket: [type, data]. A ready order is recalled whole (a station's recall of a
// ready order is refused: the protocol asks for order.recall).
export function commandFor(action, ticket, station) {
  const data = { order_id: ticket.id };
  if (station && action === "bump") return ["station.bump", data];
  if (station && action === "recall" && ticket.status !== "ready") return ["station.recall", data];
  const type = { start: "order.start", ready: "order.ready", recall: "order.recall", complete: "order.complete" };
  return [type[action], data];
}

// The bump bar: the action a key asks for ("select" with the ticket's position for digits), or null.
export function keyAction(key) {
  if (/^[0-9]$/.test(key)) return { action: "select", index: key === "0" ? 9 : Number(key) - 1 };
  const keys = {
    Enter: "primary",
    " ": "primary",
    b: "bump",
    s: "start",
    r: "ready",
    u: "recall",
    Backspace: "recall",
    c: "complete",
    m: "mute",
    ArrowLeft: "previous",
    ArrowRight: "next",
  };
  const action = keys[key.length === 1 ? key.toLowerCase() : key];
  return action ? { action } : null;
}
