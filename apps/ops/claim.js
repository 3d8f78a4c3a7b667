// Claiming a pairing code (docs/protocol.md "Getting a token"): the six digits a fresh screen shows, the branch, the
// device's kind and name, a kitchen display's station and a kiosk's or terminal's partner, sent to
// `POST /pairing-codes/{code}/claim` (devices:write). The screen picks up its new credentials by itself.

import { errorText, lang, t } from "./strings.js";

const PARTNER = {
  kiosk: { kind: "payment_terminal", field: "paired_terminal_id" },
  payment_terminal: { kind: "kiosk", field: "paired_kiosk_id" },
};

export class ClaimForm {
  constructor(root, { session, devices, onClaimed, onError }) {
    this.$ = (id) => root.querySelector(`#${id}`);
    this.form = this.$("claim");
    this.session = session;
    this.devices = devices; // the DevicesPanel: partners to pair with
    this.onClaimed = onClaimed;
    this.onError = onError; // the page's error display: a station list that could not be read
    this.stations = new Map(); // branch id -> [{id, code, name}]
    this.allowed = session.can("devices:write");
    this.$("claim-note").hidden = this.allowed;
    this.$("claim-note").textContent = t("missing.permission", { permission: "devices:write" });
    for (const field of this.form.elements) field.disabled = !this.allowed;
    this.form.addEventListener("submit", (submit) => {
      submit.preventDefault();
      this.claim();
    });
    this.$("claim-kind").addEventListener("change", () => this.renderExtras());
    this.$("claim-branch").addEventListener("change", () => this.renderExtras());
    devices.onChange = () => this.renderPartners();
  }

  /** The branches a device may be set up in; `selected` is the one the page shows. */
  setBranches(branches, selected) {
    const select = this.$("claim-branch");
    select.replaceChildren(...branches.map((branch) => new Option(branch.name, String(branch.id))));
    select.value = String(selected);
    this.renderExtras();
  }

  selectBranch(branch) {
    this.$("claim-branch").value = String(branch);
    this.renderExtras();
  }

  async renderExtras() {
    const kind = this.$("claim-kind").value;
    const branch = Number(this.$("claim-branch").value);
    this.$("claim-station-box").hidden = kind !== "kitchen_display";
    this.renderPartners();
    if (kind !== "kitchen_display" || !branch || !this.session.can("devices:read")) return;
    if (!this.stations.has(branch)) {
      try {
        const page = await this.session.get(`/stations?branch_id=${branch}&limit=500`);
        this.stations.set(branch, page.items);
      } catch (error) {
        this.onError(error); // not kept: the next look at this branch reads it again
      }
    }
    const select = this.$("claim-station");
    const held = select.value;
    const stations = this.stations.get(branch) ?? [];
    select.replaceChildren(
      new Option(t("claim.wholeKitchen"), ""),
      ...stations.map((station) => new Option(station.name || station.code, String(station.id))),
    );
    if ([...select.options].some((option) => option.value === held)) select.value = held;
  }

  renderPartners() {
    const kind = this.$("claim-kind").value;
    const partner = PARTNER[kind];
    const branch = Number(this.$("claim-branch").value);
    const box = this.$("claim-pair-box");
    box.hidden = !partner || branch !== this.devices.branch;
    if (box.hidden) return;
    const select = this.$("claim-pair");
    const held = select.value;
    select.replaceChildren(
      new Option(t("claim.noPair"), ""),
      ...this.devices.ofKind(partner.kind).map((device) => new Option(`${device.name} (#${device.id})`, String(device.id))),
    );
    if ([...select.options].some((option) => option.value === held)) select.value = held;
  }

  body() {
    const kind = this.$("claim-kind").value;
    const body = { branch_id: Number(this.$("claim-branch").value), kind, name: this.$("claim-name").value.trim() };
    const station = this.$("claim-station").value;
    if (kind === "kitchen_display" && station) body.station_id = Number(station);
    const pair = this.$("claim-pair").value;
    if (PARTNER[kind] && !this.$("claim-pair-box").hidden && pair) body[PARTNER[kind].field] = Number(pair);
    return body;
  }

  async claim() {
    if (!this.allowed) return;
    const code = this.$("claim-code").value.trim();
    const result = this.$("claim-result");
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const claimed = await this.session.post(`/pairing-codes/${encodeURIComponent(code)}/claim`, this.body());
      const { device } = claimed;
      const until = new Date(claimed.pickup_until).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
      result.textContent = t("claim.done", { id: device.id, name: device.name, kind: t(`kind.${device.kind}`), until });
      result.dataset.state = "ok";
      result.dataset.device = String(device.id);
      delete result.dataset.code;
      this.$("claim-code").value = "";
      this.$("claim-name").value = "";
      this.onClaimed(device);
    } catch (error) {
      result.textContent = errorText(error) + fieldErrors(error);
      result.dataset.state = "error";
      result.dataset.code = error.code ?? "";
      delete result.dataset.device;
    } finally {
      result.hidden = false;
      button.disabled = false;
    }
  }
}

function fieldErrors(error) {
  const errors = error?.details?.errors;
  if (!Array.isArray(errors) || !errors.length) return "";
  return ` – ${errors.map((entry) => [entry.field, entry.message].filter(Boolean).join(": ")).join("; ")}`;
}
