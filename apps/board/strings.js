// The order board's own words in German and English.

import { currentLocale, translator } from "../shared/i18n.js";

const STRINGS = {
  de: { preparing: "In Zubereitung", ready: "Abholbereit", title: "Bestellungen" },
  en: { preparing: "Preparing", ready: "Ready", title: "Orders" },
};

// The display's language (`?lang=`, else the browser's, else German) and its words.
export const lang = currentLocale();
export const t = translator(STRINGS, lang);
