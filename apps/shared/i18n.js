// The apps' own UI strings in German and English (the menu's texts come translated from the server).
//
//   import { translator, currentLocale, formatMoney, translatePage } from "../shared/i18n.js";
//   const locale = currentLocale();                  // "?lang=en", else the browser's, else "de"
//   const t = translator({ de: { hi: "Hallo {name}" }, en: { hi: "Hello {name}" } }, locale);
//   t("hi", { name: "Ana" });                        // "Hallo Ana"; an unknown key comes back as itself
//   translatePage(document, t);                      // fills every element with data-i18n="key"
//   formatMoney(700, "EUR", locale);                 // "7,00 €"

export const LOCALES = ["de", "en"];
export const DEFAULT_LOCALE = "de";

// Strings the shared modules show themselves (status banner, enrolment).
export const SHARED_STRINGS = {
  de: {
    "status.connecting": "Verbinde …",
    "status.online": "Verbunden",
    "status.offline": "Keine Verbindung – es wird erneut versucht",
    "status.stopped": "Dieses Gerät ist gesperrt",
    "enrol.title": "Gerät einrichten",
    "enrol.instructions": "Eine Person mit Admin-Rechten gibt diesen Code auf der Ops-Seite ein:",
    "enrol.expires": "Gültig noch {time}",
    "enrol.expired": "Der Code ist abgelaufen – ein neuer wird angefordert …",
    "enrol.waiting": "Warte auf die Freigabe …",
    "enrol.link": "Einrichtungslink wird eingelöst …",
    "enrol.link_failed": "Der Einrichtungslink gilt nicht mehr ({code}). Es wird ein Code angefordert …",
    "enrol.error": "Fehler: {message} – neuer Versuch gleich",
    "enrol.rejected": "Die gespeicherten Zugangsdaten gelten nicht mehr; das Gerät wird neu eingerichtet.",
  },
  en: {
    "status.connecting": "Connecting …",
    "status.online": "Connected",
    "status.offline": "No connection – retrying",
    "status.stopped": "This device is disabled",
    "enrol.title": "Set up this device",
    "enrol.instructions": "Someone with admin rights enters this code on the ops page:",
    "enrol.expires": "Valid for {time}",
    "enrol.expired": "The code has expired – asking for a new one …",
    "enrol.waiting": "Waiting to be claimed …",
    "enrol.link": "Redeeming the set-up link …",
    "enrol.link_failed": "The set-up link is no longer valid ({code}). Asking for a code …",
    "enrol.error": "Error: {message} – retrying shortly",
    "enrol.rejected": "The stored credentials are no longer valid; setting this device up again.",
  },
};

/** The locale to show: `?lang=` in the URL, else the browser's first supported language, else German. */
export function currentLocale(supported = LOCALES) {
  const asked = new URLSearchParams(globalThis.location?.search ?? "").get("lang");
  const candidates = [asked, ...(globalThis.navigator?.languages ?? [])].filter(Boolean);
  for (const candidate of candidates) {
    const base = candidate.toLowerCase().split("-")[0];
    if (supported.includes(base)) return base;
  }
  return supported.includes(DEFAULT_LOCALE) ? DEFAULT_LOCALE : supported[0];
}

/** A function `t(key, params)` over `strings[locale]`, then the shared strings, then English; `{name}` is filled. */
export function translator(strings, locale = currentLocale()) {
  const tables = [strings?.[locale], SHARED_STRINGS[locale], strings?.en, SHARED_STRINGS.en].filter(Boolean);
  return (key, params = {}) => {
    const table = tables.find((candidate) => key in candidate);
    const text = table ? table[key] : key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  };
}

/** Fill every element under `root` carrying `data-i18n="key"` with its text, and set `<html lang>`. */
export function translatePage(root, t, locale = currentLocale()) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  if (root.documentElement) root.documentElement.lang = locale;
}

/** An amount in minor units (cents) as money in `currency`, formatted for `locale`. */
export function formatMoney(minor, currency, locale = currentLocale()) {
  const digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(locale, { style: "currency", currency }).format(minor / 10 ** digits);
}
