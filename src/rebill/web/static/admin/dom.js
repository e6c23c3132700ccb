// A tiny DOM helper: h("div", {class: "x", onclick}, child, …). Text is always set as text, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = Boolean(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function money(m) {
  if (!m) return "—";
  return `${m.amount} ${m.currency}`;
}

export function moneyList(list) {
  if (!list || !list.length) return "—";
  return list.map(money).join(", ");
}

export function when(instant) {
  if (!instant) return "—";
  return instant.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC");
}

export function value(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
}

export function errorBox(message) {
  return h("div", { class: "error", role: "alert" }, message);
}

// userErrors go next to the field they name; the rest in a list at the top of the form.
export function showUserErrors(form, errors) {
  for (const old of form.querySelectorAll(".field-error, .form-errors")) old.remove();
  const loose = [];
  for (const error of errors || []) {
    const path = (error.field || []).filter((p) => p !== "input");
    const name = path[path.length - 1];
    const input = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
    const text = `${error.message} (${error.code})`;
    if (input) input.closest("label, .field")?.append(h("span", { class: "field-error", role: "alert" }, text));
    else loose.push(text);
  }
  if (loose.length) form.prepend(h("div", { class: "form-errors error", role: "alert" }, loose.map((t) => h("div", {}, t))));
}

export function spinner(text = "Working…") {
  return h("span", { class: "spinner" }, text);
}
