// Tax rates: the list (archived ones too), a form for a new one, and archiving. A rate taxes the invoices of
// customers whose address is in its country (or region); two active rates for one place are refused.
import { gql, newIdempotencyKey } from "./api.js";
import { clear, errorBox, h, showUserErrors, spinner } from "./dom.js";

const RATE = "id name percentage inclusive country region active";

async function allRates() {
  const rates = [];
  let after = null;
  for (;;) {
    const data = await gql(
      `query TaxRates($after: String) { taxRates(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor } edges { node { ${RATE} } } } }`,
      { after },
    );
    rates.push(...data.taxRates.edges.map((e) => e.node));
    if (!data.taxRates.pageInfo.hasNextPage) return rates;
    after = data.taxRates.pageInfo.endCursor;
  }
}

function field(label, control, hint = null) {
  return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("span", { class: "muted" }, hint) : null);
}

function createForm(reload) {
  const form = h(
    "form",
    { class: "card action-form", id: "tax-rate-form", autocomplete: "off" },
    h("h2", {}, "New tax rate"),
    h(
      "div",
      { class: "grid" },
      field("Name (printed on invoices)", h("input", { name: "name", required: "required", maxlength: 200, placeholder: "CA sales tax" })),
      field("Percentage", h("input", { name: "percentage", required: "required", inputmode: "decimal", size: 8, placeholder: "8.875" }), "0 to 100"),
      field("Country", h("input", { name: "country", required: "required", size: 4, maxlength: 2, placeholder: "US" }), "ISO code, two letters"),
      field("Region (optional)", h("input", { name: "region", size: 8, maxlength: 10, placeholder: "US-CA" }), "empty: nationwide"),
    ),
    h("label", { class: "field check" }, h("input", { type: "checkbox", name: "inclusive" }), " Prices include it (otherwise it is added on top)"),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", name: "create" }, "Create tax rate")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showUserErrors(form, []);
    const v = (name) => form.elements.namedItem(name).value.trim();
    const input = {
      name: v("name"),
      percentage: v("percentage"),
      country: v("country").toUpperCase(),
      region: v("region") || null,
      inclusive: form.elements.namedItem("inclusive").checked,
      idempotencyKey: newIdempotencyKey(),
    };
    const button = form.elements.namedItem("create");
    button.disabled = true;
    try {
      const data = await gql(
        `mutation CreateTaxRate($input: CreateTaxRateInput!) { result: createTaxRate(input: $input) {
          userErrors { field code message } taxRate { ${RATE} } } }`,
        { input },
      );
      const payload = data.result;
      if (payload.userErrors.length) showUserErrors(form, payload.userErrors);
      else reload(`Tax rate ${payload.taxRate.name} (${payload.taxRate.percentage} %) created.`);
    } catch (exc) {
      showUserErrors(form, [{ field: [], code: "ERROR", message: exc.message }]);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function place(rate) {
  return rate.region ? `${rate.country}, ${rate.region}` : rate.country;
}

// Archiving asks once more in the row itself: it cannot be undone.
function archiveButton(rate, reload) {
  const cell = h("td", { class: "row-actions" });
  const ask = () =>
    clear(
      cell,
      h("span", { class: "muted" }, "It taxes no new invoice. "),
      h("button", { type: "button", class: "danger", name: "confirm-archive", onclick: () => archive(rate, cell, reload) }, "Confirm archive"),
      " ",
      h("button", { type: "button", onclick: () => clear(cell, h("button", { type: "button", name: "archive", onclick: ask }, "Archive…")) }, "Keep"),
    );
  clear(cell, rate.active ? h("button", { type: "button", name: "archive", onclick: ask }, "Archive…") : null);
  return cell;
}

async function archive(rate, cell, reload) {
  clear(cell, spinner("Archiving…"));
  try {
    const data = await gql(
      `mutation ArchiveTaxRate($input: ArchiveTaxRateInput!) { result: archiveTaxRate(input: $input) {
        userErrors { field code message } taxRate { ${RATE} } } }`,
      { input: { taxRateId: rate.id, idempotencyKey: newIdempotencyKey() } },
    );
    const errors = data.result.userErrors;
    if (errors.length) clear(cell, errorBox(errors.map((e) => `${e.message} (${e.code})`).join("; ")));
    else reload(`Tax rate ${rate.name} archived: it taxes no new invoice.`);
  } catch (exc) {
    clear(cell, errorBox(exc.message));
  }
}

export async function renderTaxRates(root, navigate, flash = null) {
  const reload = (message) => renderTaxRates(root, navigate, message);
  const results = h("div", { class: "results" }, spinner("Loading tax rates…"));
  clear(
    root,
    h("h1", {}, "Tax rates"),
    flash ? h("div", { class: "notice", id: "flash", role: "status" }, flash) : null,
    h(
      "p",
      { class: "muted" },
      "An invoice is taxed at the rate of the customer's billing address (else the shipping address): a region's rate wins over its country's. Subscription prices exclude shipping and taxes.",
    ),
    results,
    createForm(reload),
  );
  let rates;
  try {
    rates = await allRates();
  } catch (exc) {
    clear(results, errorBox(exc.message));
    return;
  }
  if (!rates.length) {
    clear(results, h("p", { class: "muted", id: "tax-rate-count" }, "No tax rate yet: no invoice is taxed."));
    return;
  }
  clear(
    results,
    h(
      "table",
      { class: "list", id: "tax-rate-table" },
      h("thead", {}, h("tr", {}, ["Name", "Percentage", "Inclusive", "Country", "Region", "Active", ""].map((t) => h("th", { class: t === "Percentage" ? "num" : null }, t)))),
      h(
        "tbody",
        {},
        rates.map((rate) => {
          const row = h(
            "tr",
            { dataset: { id: rate.id }, title: place(rate) },
            h("td", {}, rate.name),
            h("td", { class: "num" }, `${rate.percentage} %`),
            h("td", {}, rate.inclusive ? "yes: inside the price" : "no: added on top"),
            h("td", {}, rate.country),
            h("td", {}, rate.region || "—"),
            h("td", {}, rate.active ? h("span", { class: "badge status-active" }, "active") : h("span", { class: "badge status-expired" }, "archived")),
          );
          row.append(archiveButton(rate, reload));
          return row;
        }),
      ),
    ),
  );
}
