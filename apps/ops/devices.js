// The branch's devices, online or offline: the list from REST (`GET /devices?branch_id=`, devices:read) and the
// `branch:{b}:devices` channel (its snapshot holds every device with `online`; `device.online`/`device.offline`
// then move them, docs/protocol.md "Events").

import { t } from "./strings.js";

export class DevicesPanel {
  constructor(list, note, { session, onError }) {
    this.list = list;
    this.note = note;
    this.session = session;
    this.onError = onError;
    this.devices = new Map(); // id -> {id, kind, name, is_active, online, station_id, ...}
    this.branch = null;
    this.onChange = () => {};
  }

  /** Show another branch: forget the devices held and read its list. */
  async setBranch(branch) {
    this.branch = branch;
    this.devices.clear();
    delete this.list.dataset.loadedBranch;
    this.render();
    await this.load();
  }

  /** Read the branch's devices over REST (their names, kinds and stations); the channel says who is online. */
  async load() {
    if (!this.allowed()) return;
    const branch = this.branch;
    try {
      const page = await this.session.get(`/devices?branch_id=${branch}&limit=500`);
      if (branch !== this.branch) return;
      for (const device of page.items) {
        const held = this.devices.get(device.id);
        this.devices.set(device.id, { ...device, online: held?.online ?? false });
      }
      this.render();
    } catch (error) {
      this.onError(error);
    }
  }

  /** The list is left out without devices:read, whatever the channel sends. */
  allowed() {
    return this.session.can("devices:read");
  }

  /** The channel's snapshot: every device of the branch (`data-loaded-branch` on the list says it came). */
  snapshot(data) {
    this.list.dataset.loadedBranch = String(this.branch);
    if (!this.allowed()) return;
    const seen = new Set();
    for (const device of data.devices ?? []) {
      seen.add(device.id);
      this.devices.set(device.id, { ...this.devices.get(device.id), ...device });
    }
    for (const id of [...this.devices.keys()]) if (!seen.has(id)) this.devices.delete(id);
    this.render();
  }

  event(event, data) {
    if (!this.allowed() || (event !== "device.online" && event !== "device.offline")) return;
    const held = this.devices.get(data.device_id);
    if (held) {
      held.online = data.online;
      this.render();
    } else {
      // A device this page has not heard of yet (just set up): read the list again.
      this.devices.set(data.device_id, { id: data.device_id, kind: "", name: `#${data.device_id}`, online: data.online });
      this.render();
      this.load();
    }
  }

  /** The devices of one kind, by id. */
  ofKind(kind) {
    return [...this.devices.values()].filter((device) => device.kind === kind).sort((a, b) => a.id - b.id);
  }

  render() {
    const allowed = this.allowed();
    this.note.hidden = allowed;
    this.note.textContent = allowed ? "" : t("missing.permission", { permission: "devices:read" });
    if (!allowed) {
      this.list.replaceChildren();
      this.onChange();
      return;
    }
    const rows = [...this.devices.values()].sort((a, b) => a.id - b.id).map((device) => this.row(device));
    if (!rows.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = t("devices.empty");
      rows.push(empty);
    }
    this.list.replaceChildren(...rows);
    this.onChange();
  }

  row(device) {
    const row = document.createElement("li");
    row.className = "row device";
    row.dataset.testid = `device-${device.id}`;
    row.dataset.online = String(Boolean(device.online));
    const name = document.createElement("span");
    name.className = "row-main";
    name.textContent = device.name;
    const kind = document.createElement("span");
    kind.className = "muted";
    kind.textContent = device.kind ? `${t(`kind.${device.kind}`)} · #${device.id}` : `#${device.id}`;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.testid = "presence";
    const state = device.is_active === false ? "disabled" : device.online ? "online" : "offline";
    badge.dataset.state = state;
    badge.textContent = t(state);
    row.append(name, kind, badge);
    return row;
  }
}
