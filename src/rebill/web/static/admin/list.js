// Subscriptions: search, filter, sort and page through them.
import { gql, serverFeatures } from "./api.js";
import { clear, errorBox, h, money, spinner, statusBadge } from "./dom.js";

const STATUSES = ["FUTURE", "TRIAL", "ACTIVE", "OVERDUE", "SUSPENDED", "AWAITING_REINSTATE", "CANCELLED", "EXPIRED"];
const SORTS = [
  ["ID", "Created (id)"],
  ["NEXT_RENEWAL_DATE", "Next renewal"],
  ["AMOUNT", "Amount"],
  ["UPDATED_AT", "Last changed"],
];

const ROW_FIELDS = `id status renewalType nextRenewalDate trialEndDate amount { amount currency }
  gatewayId gatewayMode customer { email name } profile { name } items { product { sku } quantity }`;

// The filter lives in the URL (#/subscriptions?…), so a search can be shared and Back works.
export function readFilter(params) {
  const filter = {};
  const text = (name) => params.get(name) || null;
  // "customer" is what the box sends: words of a name or an address. "email" is the older, exact
  // address of links shared before; the box takes it over on the next search.
  if (text("customer")) filter.customerSearch = text("customer");
  else if (text("email")) filter.customerEmail = text("email");
  if (text("id")) filter.ids = text("id").split(/[\s,]+/).filter(Boolean);
  const statuses = params.getAll("status");
  if (statuses.length) filter.status = statuses;
  if (text("renewalType")) filter.renewalType = text("renewalType");
  if (text("from")) filter.nextRenewalFrom = text("from");
  if (text("to")) filter.nextRenewalTo = text("to");
  if (text("inTrial")) filter.inTrial = text("inTrial") === "yes";
  if (text("amountMin")) filter.amountMin = text("amountMin");
  if (text("amountMax")) filter.amountMax = text("amountMax");
  if (text("currency")) filter.currency = text("currency").toUpperCase();
  if (text("gatewayMode")) filter.gatewayMode = [text("gatewayMode")];
  if (text("gateway")) filter.gatewayIds = [text("gateway")];
  if (text("hasGateway")) filter.hasGateway = text("hasGateway") === "yes";
  if (text("profile")) filter.profileIds = [text("profile")];
  if (text("product")) filter.productIds = [text("product")];
  return filter;
}

let catalog = null;

async function loadCatalog() {
  if (catalog) return catalog;
  const data = await gql(`{
    profiles(first: 100, includeCustom: false) { edges { node { id name } } }
    products(first: 100) { edges { node { id name sku } } }
  }`);
  catalog = {
    profiles: data.profiles.edges.map((e) => e.node),
    products: data.products.edges.map((e) => e.node),
  };
  return catalog;
}

function select(name, current, options, empty = "any") {
  return h(
    "select",
    { name },
    empty === null ? null : h("option", { value: "" }, empty),
    options.map(([v, label]) => h("option", { value: v, selected: v === current ? "selected" : null }, label)),
  );
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

export async function renderList(root, params, navigate) {
  const features = await serverFeatures();
  const serverSort = Boolean(features.args.Query?.subscriptions?.has("orderBy"));
  const { profiles, products } = await loadCatalog().catch(() => ({ profiles: [], products: [] }));
  const p = (name) => params.get(name) || "";
  const statuses = new Set(params.getAll("status"));

  const form = h(
    "form",
    { class: "filters", id: "subscription-filters" },
    h(
      "div",
      { class: "search-row" },
      h("input", { name: "customer", type: "search", placeholder: "Customer (email or name)", value: p("customer") || p("email"), "aria-label": "Customer (email or name)" }),
      h("input", { name: "id", placeholder: "Subscription id(s)", value: p("id"), "aria-label": "Subscription ids" }),
      h("button", { type: "submit", class: "primary" }, "Search"),
      h("button", { type: "button", onclick: () => navigate("#/subscriptions") }, "Clear"),
    ),
    h(
      "fieldset",
      { class: "statuses" },
      h("legend", {}, "Status"),
      STATUSES.map((s) =>
        h("label", {}, h("input", { type: "checkbox", name: "status", value: s, checked: statuses.has(s) }), " ", s.toLowerCase().replace("_", " ")),
      ),
    ),
    h(
      "div",
      { class: "grid" },
      field("Next renewal from", h("input", { type: "date", name: "from", value: p("from") })),
      field("to", h("input", { type: "date", name: "to", value: p("to") })),
      field("Renewal type", select("renewalType", p("renewalType"), [["AUTOMATIC", "automatic"], ["MANUAL", "manual"]])),
      field("In trial", select("inTrial", p("inTrial"), [["yes", "yes"], ["no", "no"]])),
      field("Amount from", h("input", { name: "amountMin", inputmode: "decimal", value: p("amountMin"), size: 8 })),
      field("to", h("input", { name: "amountMax", inputmode: "decimal", value: p("amountMax"), size: 8 })),
      field("Currency", h("input", { name: "currency", value: p("currency"), size: 4, maxlength: 3 })),
      field("Profile", select("profile", p("profile"), profiles.map((x) => [x.id, x.name]))),
      field("Product", select("product", p("product"), products.map((x) => [x.id, `${x.name} (${x.sku})`]))),
      field("Gateway", h("input", { name: "gateway", value: p("gateway"), size: 10 })),
      field("Gateway mode", select("gatewayMode", p("gatewayMode"), [["FORCED", "forced"], ["PREFERRED", "preferred"]])),
      field("Has gateway", select("hasGateway", p("hasGateway"), [["yes", "yes"], ["no", "no"]])),
      field("Sort by", sortSelect(p("sort"))),
      field("Direction", select("dir", p("dir") || "ASC", [["ASC", "ascending"], ["DESC", "descending"]], null)),
      field("Per page", select("first", p("first") || "25", [["10", "10"], ["25", "25"], ["50", "50"], ["100", "100"]], null)),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.append(k, v);
    navigate("#/subscriptions?" + next.toString());
  });
  for (const box of form.querySelectorAll("select, input[type=checkbox]")) box.addEventListener("change", () => form.requestSubmit());

  const results = h("div", { class: "results" }, spinner("Loading subscriptions…"));
  clear(root, h("h1", {}, "Subscriptions"), form, results);

  const first = Number(p("first") || 25);
  const both = Boolean(features.args.Query?.subscriptions?.has("before"));
  const backwards = both && Boolean(p("before"));
  const variables = { filter: readFilter(params) };
  const declared = ["$filter: SubscriptionFilter"];
  const args = ["filter: $filter"];
  const use = (name, type, value) => {
    variables[name] = value;
    declared.push(`$${name}: ${type}`);
    args.push(`${name}: $${name}`);
  };
  if (backwards) {
    use("last", "Int", first);
    use("before", "String", p("before"));
  } else {
    use("first", "Int", first);
    use("after", "String", p("after") || null);
  }
  if (serverSort) use("orderBy", "SubscriptionOrder", { field: p("sort") || "ID", direction: p("dir") || "ASC" });
  let data;
  try {
    data = await gql(
      `query Subscriptions(${declared.join(", ")}) {
        subscriptions(${args.join(", ")}) {
          totalCount pageInfo { hasNextPage endCursor ${both ? "hasPreviousPage startCursor" : ""} }
          edges { node { ${ROW_FIELDS} } }
        }
      }`,
      variables,
    );
  } catch (exc) {
    clear(results, errorBox(exc.message));
    return;
  }
  const connection = data.subscriptions;
  let rows = connection.edges.map((e) => e.node);
  if (!serverSort && p("sort") && p("sort") !== "ID") rows = sortLocally(rows, p("sort"), p("dir"));

  const pageStart = Number(p("offset") || 0);
  const table = h(
    "table",
    { class: "list", id: "subscription-table" },
    h("thead", {}, h("tr", {}, ["Subscription", "Customer", "Status", "Next renewal", "Amount", "Profile", "Items", "Gateway"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      rows.map((s) =>
        h(
          "tr",
          { dataset: { id: s.id } },
          h("td", {}, h("a", { href: `#/subscription/${encodeURIComponent(s.id)}`, class: "mono" }, s.id)),
          h("td", {}, s.customer.email, s.customer.name ? h("div", { class: "muted" }, s.customer.name) : null),
          h("td", {}, statusBadge(s.status), s.renewalType === "MANUAL" ? h("span", { class: "muted" }, " manual") : null),
          h("td", {}, s.nextRenewalDate || "—", s.trialEndDate && s.status === "TRIAL" ? h("div", { class: "muted" }, "trial ends") : null),
          h("td", { class: "num" }, money(s.amount)),
          h("td", {}, s.profile.name),
          h("td", {}, s.items.map((i) => `${i.quantity}× ${i.product.sku}`).join(", ")),
          h("td", {}, s.gatewayId ? `${s.gatewayId} (${(s.gatewayMode || "").toLowerCase()})` : "—"),
        ),
      ),
    ),
  );

  const info = connection.pageInfo;
  const turn = (cursorName, cursor, offset) => {
    const next = new URLSearchParams(params);
    next.delete("after");
    next.delete("before");
    next.set(cursorName, cursor);
    next.set("offset", String(Math.max(0, offset)));
    navigate("#/subscriptions?" + next.toString());
  };
  const hasPrevious = both ? info.hasPreviousPage : pageStart > 0;
  const hasNext = info.hasNextPage;
  const pager = h(
    "div",
    { class: "pager" },
    h("span", { id: "result-count" }, connection.totalCount === 0 ? "No subscription matches." : `${pageStart + 1}\u2013${pageStart + rows.length} of ${connection.totalCount}`),
    h(
      "button",
      { type: "button", name: "previous", disabled: hasPrevious ? null : "disabled", onclick: () => (both ? turn("before", info.startCursor, pageStart - first) : history.back()) },
      "\u2190 Previous",
    ),
    h(
      "button",
      { type: "button", name: "next", disabled: hasNext && rows.length ? null : "disabled", onclick: () => turn("after", info.endCursor, pageStart + rows.length) },
      "Next \u2192",
    ),
    serverSort ? null : h("span", { class: "muted" }, " (sorting applies to this page: this server sorts by id)"),
  );
  clear(results, pager, table);
}

function sortSelect(current) {
  return select("sort", current || "ID", SORTS, null);
}

function sortLocally(rows, key, dir) {
  const factor = dir === "DESC" ? -1 : 1;
  const get = {
    NEXT_RENEWAL_DATE: (s) => s.nextRenewalDate || "9999",
    AMOUNT: (s) => Number(s.amount.amount),
    UPDATED_AT: (s) => s.id,
  }[key];
  if (!get) return rows;
  return [...rows].sort((a, b) => (get(a) < get(b) ? -factor : get(a) > get(b) ? factor : 0));
}
