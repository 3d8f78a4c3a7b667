// The kitchen display's own words in German and English (the tickets come in the kitchen's language already).

import { currentLocale, translator } from "../shared/i18n.js";

const STRINGS = {
  de: {
    title: "Küche",
    allStations: "Alle Stationen",
    filter: "Station",
    mute: "Ton aus",
    unmute: "Ton an",
    soundLocked: "Tippen für Ton",
    empty: "Keine offenen Bons",
    eat_in: "Hier essen",
    takeaway: "Mitnehmen",
    paid: "Neu",
    preparing: "In Arbeit",
    ready: "Fertig",
    bumped: "Erledigt",
    waitingFor: "Wartet auf",
    note: "Hinweis",
    start: "Start",
    bump: "Fertig",
    recall: "Zurück",
    complete: "Abgeholt",
    keys: "1–9 wählen · Enter weiter · S Start · R Fertig · B Station fertig · U zurück · C abgeholt · M Ton",
  },
  en: {
    title: "Kitchen",
    allStations: "All stations",
    filter: "Station",
    mute: "Mute",
    unmute: "Sound on",
    soundLocked: "Tap for sound",
    empty: "No open tickets",
    eat_in: "Eat in",
    takeaway: "Take away",
    paid: "New",
    preparing: "Preparing",
    ready: "Ready",
    bumped: "Bumped",
    waitingFor: "Waiting for",
    note: "Note",
    start: "Start",
    bump: "Bump",
    recall: "Recall",
    complete: "Complete",
    keys: "1–9 select · Enter next step · S start · R ready · B bump · U recall · C complete · M mute",
  },
};

// The display's language (`?lang=`, else the browser's, else German) and its words.
export const lang = currentLocale();
export const t = translator(STRINGS, lang);
