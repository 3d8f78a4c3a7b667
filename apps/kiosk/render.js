// The start screen (languages and service modes) and the menu (category tabs, item cards), built from the menu the
// kiosk holds. An item that cannot be ordered now is greyed out and its card cannot be pressed.

import { allergenList, el } from "./dom.js";
import { languageName } from "./strings.js";

/** A button per branch language, the current one pressed; `prefix` starts each test id, `extra` adds a class. */
export function languageButtons(view, { prefix, extra = "", onLanguage }) {
  return view.menu.locales.map((code) =>
    el(
      "button",
      { type: "button", class: `language${extra}`, lang: code, "aria-pressed": String(code === view.locale),
        dataset: { testid: `${prefix}${code}` }, onclick: () => onLanguage(code) },
      languageName(code),
    ),
  );
}

/** The start screen's choices: the branch's languages and its service modes. */
export function renderStart(view, { onLanguage, onMode }) {
  const { menu, t } = view;
  document.getElementById("languages").replaceChildren(
    ...languageButtons(view, { prefix: "start-language-", onLanguage }),
  );
  document.getElementById("modes").replaceChildren(
    ...(menu.data?.service_modes ?? []).map((mode) =>
      el("button", { type: "button", class: "mode primary", dataset: { testid: `mode-${mode}` },
        onclick: () => onMode(mode) },
        t(`mode.${mode}`)),
    ),
  );
  document.getElementById("start-loading").hidden = menu.ready;
}

/** The category tabs; `current` is the id of the one shown. */
export function renderCategories(view, current, onPick) {
  const { menu, locale } = view;
  document.getElementById("categories").replaceChildren(
    ...menu.categories().map((category) =>
      el(
        "button",
        { type: "button", class: "category", "aria-current": category.id === current ? "true" : null,
          dataset: { testid: `category-${category.id}` }, onclick: () => onPick(category.id) },
        menu.text(category, locale),
      ),
    ),
  );
}

function itemCard(item, view, onOpen) {
  const { menu, locale, t, money } = view;
  const name = menu.text(item, locale);
  const why = item.available === false || item.stock === 0 ? t("item.soldOut") : t("item.unavailable");
  const description = menu.text(item, locale, "description");
  return el(
    "li",
    {},
    el(
      "button",
      {
        type: "button",
        class: `item-card${item.orderable ? "" : " unavailable"}`,
        disabled: !item.orderable,
        dataset: { testid: `item-${item.id}`, name, orderable: String(item.orderable) },
        onclick: () => onOpen(item),
      },
      item.image_url ? el("img", { src: item.image_url, alt: "", loading: "lazy" }) : null,
      el("span", { class: "item-name" }, name),
      description ? el("span", { class: "item-description" }, description) : null,
      el("span", { class: "item-price" }, money(item.price)),
      item.calories === null ? null : el("span", { class: "kcal" }, t("item.kcal", { kcal: item.calories })),
      allergenList(item.allergens, t),
      item.orderable ? null : el("span", { class: "sold-out" }, why),
    ),
  );
}

/** The items of the category `current`. */
export function renderItems(view, current, onOpen) {
  const category = view.menu.categories().find((row) => row.id === current);
  const cards = (category?.items ?? []).map((item) => itemCard(item, view, onOpen));
  document.getElementById("items").replaceChildren(...cards);
}
