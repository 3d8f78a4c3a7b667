// The kitchen display's tickets: kept by order id at the newest version heard of, from the channel's snapshot,
// its events and the replies of the display's own commands (docs/protocol.md "Snapshots", "Versions").

// The statuses a ticket is open in; any other (completed, cancelled, refunded) takes it off the display.
const OPEN = new Set(["paid", "preparing", "ready"]);

// The events that end a ticket whatever the status they carry.
const ENDING = new Set(["order.completed", "order.cancelled"]);

export class TicketStore {
  constructor() {
    this.tickets = new Map(); // order id -> ticket (the order, or a station's ticket)
    this.ended = new Map(); // order id -> version at which it left: a late older event must not bring it back
  }

  // Replaces everything with a snapshot's `tickets`.
  replace(tickets) {
    this.tickets.clear();
    this.ended.clear();
    for (const ticket of tickets || []) {
      if (OPEN.has(ticket.status)) this.tickets.set(ticket.id, ticket);
    }
  }

  // The version held for an order, on the display or at its end; 0 when unknown.
  versionOf(id) {
    const held = this.tickets.get(id);
    if (held) return held.version;
    return this.ended.get(id) || 0;
  }

  // Applies an event's or a reply's ticket. Returns "new" for a ticket not shown before, "changed", "removed",
  // or null when it was stale (older than what is held) and nothing changed.
  apply(ticket, event = null) {
    if (!ticket || typeof ticket.id !== "number") return null;
    if (ticket.version < this.versionOf(ticket.id)) return null;
    if ((event && ENDING.has(event)) || !OPEN.has(ticket.status)) {
      const had = this.tickets.delete(ticket.id);
      this.ended.set(ticket.id, ticket.version);
      return had ? "removed" : null;
    }
    const isNew = !this.tickets.has(ticket.id);
    this.tickets.set(ticket.id, ticket);
    this.ended.delete(ticket.id);
    return isNew ? "new" : "changed";
  }

  // The station codes the tickets' lines and combo components go to, sorted.
  stationCodes() {
    const codes = new Set();
    for (const ticket of this.tickets.values()) {
      for (const line of ticket.lines || []) {
        for (const code of lineStations(line)) codes.add(code);
      }
    }
    return [...codes].sort();
  }

  // The tickets to show, oldest first; a station's tickets it already bumped come after its open ones. With
  // `station` (a whole-kitchen display's filter), only tickets with lines there, cut to those lines.
  visible(station = null) {
    const shown = [];
    for (const ticket of this.tickets.values()) {
      const cut = station ? cutToStation(ticket, station) : ticket;
      if (cut) shown.push(cut);
    }
    return shown.sort(
      (a, b) => Number(isDone(a)) - Number(isDone(b)) || since(a) - since(b) || a.id - b.id,
    );
  }
}

// When the ticket came to the kitchen: paid (or, for an order shown before it has that, created).
export function since(ticket) {
  return Date.parse(ticket.paid_at || ticket.created_at) || 0;
}

// Whether a ticket is done at this display: a station's ticket it bumped, or an order that is ready.
export function isDone(ticket) {
  if ("bumped_at" in ticket) return ticket.bumped_at != null || ticket.status === "ready";
  return ticket.status === "ready";
}

// The stations a line's work goes to: its components' when it is a combo, else its own.
export function lineStations(line) {
  const components = line.components || [];
  if (components.length) return components.map((component) => component.station).filter(Boolean);
  return line.station ? [line.station] : [];
}

// The ticket with only the lines of `station` (a combo's line with only that station's components); null when
// none of its lines go there.
export function cutToStation(ticket, station) {
  const lines = [];
  for (const line of ticket.lines || []) {
    const components = line.components || [];
    if (components.length) {
      const mine = components.filter((component) => component.station === station);
      if (mine.length) lines.push({ ...line, components: mine });
    } else if (line.station === station) {
      lines.push(line);
    }
  }
  return lines.length ? { ...ticket, lines } : null;
}

// The ticket's age class for its timer: "fresh", "warn" past `warnS` seconds, "late" past `lateS`.
export function ageClass(ageS, warnS, lateS) {
  if (ageS >= lateS) return "late";
  if (ageS >= warnS) return "warn";
  return "fresh";
}

// An age as m:ss (or h:mm:ss past an hour).
export function formatAge(ageS) {
  const total = Math.max(0, Math.floor(ageS));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  if (hours) return `${hours}:${String(minutes).padStart(2, "0")}:${seconds}`;
  return `${minutes}:${seconds}`;
}
