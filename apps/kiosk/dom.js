// Small helpers the kiosk's views share: building elements, allergen labels, calories.

/** The most of one line a customer can order. */
export const MAX_QTY = 99;

// The 14 allergens of EU law, in the EU's order (docs/protocol.md "Allergens and calories").
const ALLERGENS = [
  "gluten", "crustaceans", "eggs", "fish", "peanuts", "soybeans", "milk",
  "nuts", "celery", "mustard", "sesame", "sulphites", "lupin", "molluscs",
];

/** An element: `el("button", {class: "x", dataset: {testid: "y"}, onclick}, "text", child, ...)`. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The allergens of several rows together, each once, in the EU's order. */
export function allergensOf(...rows) {
  const found = new Set(rows.flatMap((row) => row?.allergens ?? []));
  return ALLERGENS.filter((code) => found.has(code));
}

/** Calories of rows together: null when any is unknown. */
export function caloriesOf(...rows) {
  let total = 0;
  for (const row of rows) {
    if (row.calories === null || row.calories === undefined) return null;
    total += row.calories;
  }
  return total;
}

/** Allergen labels: short words in the customer's language, the code kept for styling and tests. */
export function allergenList(codes, t) {
  if (!codes.length) return null;
  return el(
    "ul",
    { class: "allergens", "aria-label": t("dialog.allergens") },
    codes.map((code) => el("li", { class: "allergen", dataset: { allergen: code } }, t(`allergen.${code}`))),
  );
}

/** A signed price difference ("+0,80 €"), or null for none. */
export function delta(minor, money) {
  if (!minor) return null;
  return minor > 0 ? `+${money(minor)}` : `−${money(-minor)}`;
}
