// Invoices in the console: a subscription's invoices, its upcoming invoice and invoicing settings; the Invoices
// page (filters, pages both ways, void); one invoice with its document. Documents are fetched with the key in
// the Authorization header (api.js), never with the key in a URL.
import { downloadDocument, fetchDocument, gql } from "./api.js";
import { clear, errorBox, h, money, spinner, statusBadge, when } from "./dom.js";
import { openAction } from "./actions.js";

const STATUSES = ["DRAFT", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE"];
const VOIDABLE = new Set(["OPEN", "UNCOLLECTIBLE"]);
const ROW = `id number status documentType issueDate dueDate voidReason
  total { amount currency } amountDue { amount currency }`;
const SETTINGS = "purchaseOrder memo paymentTermsDays documentType draftInvoices draftDays";
const LINE = "id kind description quantity periodStart periodEnd unitPrice { amount currency } amount { amount currency }";

export function pdfPath(invoice) {
  return `/invoices/${encodeURIComponent(invoice.id)}.pdf`;
}

function pagePath(invoice) {
  return `/invoices/${encodeURIComponent(invoice.id)}`;
}

function numberOf(invoice) {
  return invoice.number || "draft";
}

function invoiceHref(invoice) {
  return `#/invoice/${encodeURIComponent(invoice.id)}`;
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

// A button that saves the invoice's PDF; a refusal shows next to it.
function pdfButton(invoice) {
  const button = h("button", { type: "button", name: "pdf", title: `Download ${numberOf(invoice)} as a PDF` }, "PDF");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.parentElement?.querySelector(".download-error")?.remove();
    try {
      await downloadDocument(pdfPath(invoice), `${invoice.number || "draft-invoice"}.pdf`);
    } catch (exc) {
      button.after(h("span", { class: "download-error field-error", role: "alert" }, exc.message));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// Void is a console action like the others: reason, dry run, then a confirmation.
export function voidAction(invoice) {
  return {
    name: "void-invoice",
    label: `Void ${numberOf(invoice)}`,
    mutation: "voidInvoice",
    input: "VoidInvoiceInput",
    selection: `invoice { ${ROW} }`,
    versioned: false,
    danger: true,
    subject: "invoice",
    reasonLabel: "Reason (kept on the invoice and in the history)",
    reasonRequired: true,
    fields: [],
    build: () => ({ invoiceId: invoice.id }),
    rows: (before, result) => (result.invoice ? [["Status", before.status, result.invoice.status]] : []),
    consequences: (before) => [`Nothing more is collected for ${numberOf(before)}: ${money(before.amountDue)} was due, and its retries stop`],
  };
}

function invoicingAction(s) {
  const now = s.invoicing;
  return {
    name: "invoicing",
    label: "Edit invoicing settings",
    mutation: "updateInvoicing",
    input: "UpdateInvoicingInput",
    extra: `subscription { invoicing { ${SETTINGS} } }`,
    fields: [
      { name: "purchaseOrder", label: "Purchase order (empty: none)", type: "text", value: now.purchaseOrder, maxlength: 200 },
      { name: "memo", label: "Memo (empty: none)", type: "textarea", value: now.memo, maxlength: 2000 },
      { name: "paymentTermsDays", label: "Payment terms: days after issue (empty: the default)", type: "number", value: now.paymentTermsDays, min: 0, max: 365 },
    ],
    build: (v) => ({
      subscriptionId: s.id,
      purchaseOrder: v.purchaseOrder || null,
      memo: v.memo || null,
      paymentTermsDays: v.paymentTermsDays === "" ? null : Number(v.paymentTermsDays),
    }),
    watch: [
      ["Purchase order", (x) => x.invoicing?.purchaseOrder],
      ["Memo", (x) => x.invoicing?.memo],
      ["Payment terms (days)", (x) => x.invoicing?.paymentTermsDays],
    ],
  };
}

// An address that may break before its "@" only, rather than anywhere or nowhere.
function email(address) {
  const at = address.lastIndexOf("@");
  return at > 0 ? h("span", {}, address.slice(0, at), h("wbr"), address.slice(at)) : address;
}

// A column heading; "#…" heads a column of numbers (right-aligned like them).
function heading(text) {
  return text.startsWith("#") ? h("th", { class: "num" }, text.slice(1)) : h("th", {}, text);
}

// A table of invoices; ``customer`` and ``subscription`` add those columns, and then the due date goes under
// the issue date to leave them room.
function invoiceTable(rows, { id, customer = false, subscription = false, onVoid = null }) {
  const narrow = customer || subscription;
  const headings = ["Number", "Status", customer ? "Customer" : null, subscription ? "Subscription" : null, narrow ? "Issued, due" : "Issued", narrow ? null : "Due", "#Total", "#Amount due", ""];
  return h(
    "table",
    { class: "list", id },
    h("thead", {}, h("tr", {}, headings.filter((x) => x !== null).map(heading))),
    h(
      "tbody",
      {},
      rows.map((inv) =>
        h(
          "tr",
          { dataset: { id: inv.id, status: inv.status } },
          h(
            "td",
            { class: "nowrap" },
            h("a", { href: invoiceHref(inv), class: "mono" }, numberOf(inv)),
            inv.documentType === "PRO_FORMA" ? h("span", { class: "chip" }, "pro forma") : null,
          ),
          h("td", {}, statusBadge(inv.status), inv.voidReason ? h("div", { class: "muted" }, inv.voidReason) : null),
          customer ? h("td", {}, email(inv.customer.email), inv.customer.name ? h("div", { class: "muted" }, inv.customer.name) : null) : null,
          subscription
            ? h("td", {}, inv.subscription ? h("a", { href: `#/subscription/${encodeURIComponent(inv.subscription.id)}/invoices`, class: "mono subscription-id" }, inv.subscription.id) : "—")
            : null,
          narrow
            ? h("td", { class: "nowrap" }, inv.issueDate || "—", h("div", { class: "muted" }, inv.dueDate ? `due ${inv.dueDate}` : ""))
            : [h("td", { class: "nowrap" }, inv.issueDate || "—"), h("td", { class: "nowrap" }, inv.dueDate || "—")],
          h("td", { class: "num" }, money(inv.total)),
          h("td", { class: "num" }, money(inv.amountDue)),
          h(
            "td",
            { class: "row-actions" },
            pdfButton(inv),
            " ",
            h("a", { href: invoiceHref(inv), class: "open" }, "Open"),
            onVoid && VOIDABLE.has(inv.status) ? [" ", h("button", { type: "button", name: "void", class: "danger", onclick: () => onVoid(inv) }, "Void…")] : null,
          ),
        ),
      ),
    ),
  );
}

function totals(doc) {
  const rows = [
    ["Subtotal", doc.subtotal],
    Number(doc.discountTotal.amount) ? ["Discounts", { ...doc.discountTotal, amount: `−${doc.discountTotal.amount}` }] : null,
    Number(doc.shippingTotal.amount) ? ["Shipping", doc.shippingTotal] : null,
    Number(doc.taxTotal.amount) ? ["Tax", doc.taxTotal] : null,
    ["Total", doc.total],
    Number(doc.creditApplied.amount) ? ["Credit applied", doc.creditApplied] : null,
  ].filter(Boolean);
  return h(
    "dl",
    { class: "facts totals" },
    rows.map(([term, m]) => [h("dt", {}, term), h("dd", { class: "num" }, money(m))]),
    h("dt", {}, h("strong", {}, "Amount due")),
    h("dd", { class: "num" }, h("strong", { id: "upcoming-amount-due" }, money(doc.amountDue))),
  );
}

function upcomingCard(preview) {
  const card = h("section", { class: "card", id: "upcoming-invoice" }, h("h2", {}, "Upcoming invoice"));
  if (!preview) {
    card.append(h("p", { class: "muted" }, "No renewal is coming, so no invoice either."));
    return card;
  }
  card.append(
    h("p", { class: "muted" }, `Issued ${preview.issueDate || "at the next renewal"}${preview.periodStart ? ` for ${preview.periodStart} → ${preview.periodEnd}` : ""}; a preview, nothing is stored.`),
    h(
      "table",
      { class: "list" },
      h("thead", {}, h("tr", {}, ["Description", "#Qty", "#Unit price", "#Amount"].map(heading))),
      h(
        "tbody",
        {},
        preview.lines.map((line) =>
          h(
            "tr",
            { dataset: { kind: line.kind } },
            h("td", {}, line.description),
            h("td", { class: "num" }, line.quantity ?? ""),
            h("td", { class: "num" }, line.unitPrice ? money(line.unitPrice) : ""),
            h("td", { class: "num" }, money(line.amount)),
          ),
        ),
      ),
    ),
    totals(preview),
  );
  return card;
}

function settingsCard(s, panel, reload) {
  const i = s.invoicing;
  const edit = h("button", { type: "button", dataset: { action: "invoicing" }, onclick: () => openAction(invoicingAction(s), s, panel, reload) }, "Edit invoicing settings");
  return h(
    "section",
    { class: "card", id: "invoicing-settings" },
    h("h2", {}, "Invoicing settings"),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Purchase order"),
      h("dd", { id: "invoicing-purchase-order" }, i.purchaseOrder || "—"),
      h("dt", {}, "Memo"),
      h("dd", { class: "pre" }, i.memo || "—"),
      h("dt", {}, "Payment terms"),
      h("dd", {}, i.paymentTermsDays ? `due ${i.paymentTermsDays} days after issue` : "due on issue"),
      h("dt", {}, "Document"),
      h("dd", {}, i.documentType === "PRO_FORMA" ? "pro forma first" : "invoice"),
      h("dt", {}, "Draft invoices"),
      h("dd", {}, i.draftInvoices ? `on: reviewed for ${i.draftDays} days` : "off"),
    ),
    h("p", { class: "muted" }, "A change applies to invoices issued after it; issued ones never change."),
    h("div", { class: "buttons" }, edit),
  );
}

const SUBSCRIPTION_INVOICES = `query SubscriptionInvoices($id: ID!) { subscription(id: $id) {
  id invoicing { ${SETTINGS} }
  upcomingInvoice { currency issueDate periodStart periodEnd lines { ${LINE} }
    subtotal { amount currency } discountTotal { amount currency } shippingTotal { amount currency }
    taxTotal { amount currency } total { amount currency } creditApplied { amount currency } amountDue { amount currency } }
  invoices(first: 25) { totalCount edges { node { ${ROW} } } }
} }`;

// The subscription page's Invoices tab.
export async function invoicesTab(body, s, panel, reload) {
  clear(body, spinner("Loading invoices…"));
  let sub;
  try {
    sub = (await gql(SUBSCRIPTION_INVOICES, { id: s.id })).subscription;
  } catch (exc) {
    clear(body, errorBox(exc.message));
    return;
  }
  const withSettings = { ...s, invoicing: sub.invoicing };
  const rows = sub.invoices.edges.map((e) => e.node);
  const onVoid = (inv) => openAction(voidAction(inv), inv, panel, reload);
  clear(
    body,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Invoices"),
      rows.length ? invoiceTable(rows, { id: "subscription-invoices", onVoid }) : h("p", { class: "muted" }, "No invoice yet."),
      sub.invoices.totalCount > rows.length
        ? h("p", { class: "muted" }, `The ${rows.length} newest of ${sub.invoices.totalCount}: `, h("a", { href: `#/invoices?subscription=${encodeURIComponent(s.id)}` }, "all of them"))
        : null,
    ),
    h("div", { class: "columns" }, upcomingCard(sub.upcomingInvoice), settingsCard(withSettings, panel, reload)),
  );
}

// -- the Invoices page ----------------------------------------------------------------

// The filter lives in the URL (#/invoices?…), so a search can be shared and Back works.
function readFilter(params) {
  const filter = {};
  const text = (name) => (params.get(name) || "").trim() || null;
  const statuses = params.getAll("status");
  if (statuses.length) filter.status = statuses;
  if (text("number")) filter.number = text("number");
  if (text("from")) filter.issuedFrom = text("from");
  if (text("to")) filter.issuedTo = text("to");
  if (text("customer")) filter.customerId = text("customer");
  if (text("subscription")) filter.subscriptionId = text("subscription");
  if (text("type")) filter.documentType = text("type");
  return filter;
}

export async function renderInvoices(root, params, navigate, flash = null) {
  const p = (name) => params.get(name) || "";
  const statuses = new Set(params.getAll("status"));
  const form = h(
    "form",
    { class: "filters", id: "invoice-filters" },
    h(
      "div",
      { class: "search-row" },
      h("input", { name: "number", type: "search", placeholder: "Number (INV-2026-000001)", value: p("number"), "aria-label": "Invoice number" }),
      h("input", { name: "customer", placeholder: "Customer id", value: p("customer"), "aria-label": "Customer id" }),
      h("input", { name: "subscription", placeholder: "Subscription id", value: p("subscription"), "aria-label": "Subscription id" }),
      h("button", { type: "submit", class: "primary" }, "Search"),
      h("button", { type: "button", onclick: () => navigate("#/invoices") }, "Clear"),
    ),
    h(
      "fieldset",
      { class: "statuses" },
      h("legend", {}, "Status"),
      STATUSES.map((s) => h("label", {}, h("input", { type: "checkbox", name: "status", value: s, checked: statuses.has(s) }), " ", s.toLowerCase())),
    ),
    h(
      "div",
      { class: "grid" },
      field("Issued from", h("input", { type: "date", name: "from", value: p("from") })),
      field("to", h("input", { type: "date", name: "to", value: p("to") })),
      field(
        "Document",
        h(
          "select",
          { name: "type" },
          [["", "any"], ["INVOICE", "invoice"], ["PRO_FORMA", "pro forma"]].map(([v, label]) => h("option", { value: v, selected: v === p("type") ? "selected" : null }, label)),
        ),
      ),
      field(
        "Per page",
        h(
          "select",
          { name: "first" },
          ["10", "25", "50", "100"].map((v) => h("option", { value: v, selected: v === (p("first") || "25") ? "selected" : null }, v)),
        ),
      ),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) next.append(k, String(v).trim());
    navigate("#/invoices?" + next.toString());
  });
  for (const box of form.querySelectorAll("select, input[type=checkbox]")) box.addEventListener("change", () => form.requestSubmit());

  const panel = h("div", { class: "action-panel", id: "action-panel" });
  const results = h("div", { class: "results" }, spinner("Loading invoices…"));
  clear(root, h("h1", {}, "Invoices"), flash ? h("div", { class: "notice", id: "flash", role: "status" }, flash) : null, form, panel, results);

  const first = Number(p("first") || 25);
  const backwards = Boolean(p("before"));
  const variables = { filter: readFilter(params) };
  if (backwards) Object.assign(variables, { last: first, before: p("before") });
  else Object.assign(variables, { first, after: p("after") || null });
  let data;
  try {
    data = await gql(
      `query Invoices($filter: InvoiceFilter, $first: Int, $after: String, $last: Int, $before: String) {
        invoices(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
          totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges { node { ${ROW} customer { id email name } subscription { id } } }
        }
      }`,
      variables,
    );
  } catch (exc) {
    clear(results, errorBox(exc.message));
    return;
  }
  const connection = data.invoices;
  const rows = connection.edges.map((e) => e.node);
  const reload = (message) => renderInvoices(root, params, navigate, message);
  const onVoid = (inv) => openAction(voidAction(inv), inv, panel, reload);
  const pageStart = Number(p("offset") || 0);
  const info = connection.pageInfo;
  const turn = (cursorName, cursor, offset) => {
    const next = new URLSearchParams(params);
    next.delete("after");
    next.delete("before");
    next.set(cursorName, cursor);
    next.set("offset", String(Math.max(0, offset)));
    navigate("#/invoices?" + next.toString());
  };
  const pager = h(
    "div",
    { class: "pager" },
    h("span", { id: "invoice-count" }, connection.totalCount === 0 ? "No invoice matches." : `${pageStart + 1}\u2013${pageStart + rows.length} of ${connection.totalCount}`),
    h("button", { type: "button", name: "previous", disabled: info.hasPreviousPage ? null : "disabled", onclick: () => turn("before", info.startCursor, pageStart - first) }, "\u2190 Previous"),
    h("button", { type: "button", name: "next", disabled: info.hasNextPage && rows.length ? null : "disabled", onclick: () => turn("after", info.endCursor, pageStart + rows.length) }, "Next \u2192"),
  );
  clear(results, pager, rows.length ? invoiceTable(rows, { id: "invoice-table", customer: true, subscription: true, onVoid }) : null);
}

// -- one invoice ------------------------------------------------------------------------

const ONE = `query Invoice($id: ID!) { invoice(id: $id) {
  ${ROW} currency periodStart periodEnd purchaseOrder finalizedAt paidAt voidedAt
  subtotal { amount currency } creditApplied { amount currency } amountPaid { amount currency }
  customer { id email name } subscription { id } renewal { id cycle }
} }`;

// The document as the server renders it, shown in a frame that runs no script and has no origin of its own.
async function documentFrame(invoice) {
  const html = await (await fetchDocument(pagePath(invoice))).text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  // Its "Download PDF" link is relative to /invoices/ and carries no key: the console's PDF button does that here.
  for (const link of doc.querySelectorAll(".actions")) link.remove();
  return h("iframe", {
    class: "document",
    id: "invoice-document",
    title: `Invoice ${numberOf(invoice)}`,
    sandbox: "",
    srcdoc: "<!doctype html>" + doc.documentElement.outerHTML,
  });
}

export async function renderInvoice(root, id, navigate, flash = null) {
  clear(root, spinner("Loading the invoice…"));
  const back = h("p", { class: "crumbs" }, h("a", { href: "#/invoices" }, "← Invoices"));
  let inv;
  try {
    inv = (await gql(ONE, { id })).invoice;
  } catch (exc) {
    clear(root, back, errorBox(exc.message));
    return;
  }
  if (!inv) {
    clear(root, back, errorBox(`No invoice ${id}.`));
    return;
  }
  const panel = h("div", { class: "action-panel", id: "action-panel" });
  const reload = (message) => renderInvoice(root, id, navigate, message);
  const frame = h("div", { class: "document-frame" }, spinner("Loading the document…"));
  if (inv.subscription) back.append(" · ", h("a", { href: `#/subscription/${encodeURIComponent(inv.subscription.id)}/invoices` }, "its subscription"));
  clear(
    root,
    back,
    h("h1", {}, inv.documentType === "PRO_FORMA" ? "Pro forma " : "Invoice ", h("span", { class: "mono" }, numberOf(inv)), " ", statusBadge(inv.status)),
    flash ? h("div", { class: "notice", id: "flash", role: "status" }, flash) : null,
    h(
      "div",
      { class: "actions" },
      pdfButton(inv),
      VOIDABLE.has(inv.status) ? h("button", { type: "button", name: "void", class: "danger", onclick: () => openAction(voidAction(inv), inv, panel, reload) }, "Void…") : null,
    ),
    panel,
    h(
      "section",
      { class: "card" },
      h(
        "dl",
        { class: "facts" },
        [
          ["Customer", `${inv.customer.name || ""} <${inv.customer.email}>`],
          ["Subscription", inv.subscription ? h("a", { href: `#/subscription/${encodeURIComponent(inv.subscription.id)}/invoices`, class: "mono" }, inv.subscription.id) : "—"],
          ["Renewal", inv.renewal ? `cycle ${inv.renewal.cycle}` : "—"],
          ["Issued", inv.issueDate || "—"],
          ["Due", inv.dueDate || "—"],
          ["Period", inv.periodStart ? `${inv.periodStart} → ${inv.periodEnd}` : "—"],
          ["Purchase order", inv.purchaseOrder || "—"],
          ["Total", money(inv.total)],
          ["Paid", money(inv.amountPaid)],
          ["Amount due", money(inv.amountDue)],
          inv.paidAt ? ["Paid at", when(inv.paidAt)] : null,
          inv.voidedAt ? ["Voided at", `${when(inv.voidedAt)}${inv.voidReason ? ` (${inv.voidReason})` : ""}`] : null,
        ]
          .filter(Boolean)
          .map(([term, detail]) => [h("dt", {}, term), h("dd", {}, detail)]),
      ),
    ),
    frame,
  );
  try {
    clear(frame, await documentFrame(inv));
  } catch (exc) {
    clear(frame, errorBox(exc.message));
  }
}
