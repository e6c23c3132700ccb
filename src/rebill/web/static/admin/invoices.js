// Invoices in the console: a subscription's invoices, its upcoming invoice and invoicing settings; the Invoices
// page (filters, pages both ways); one invoice with its document. Wherever an invoice shows, staff act on it
// after a dry run: review a draft (lines, refresh, finalize, delete), record a payment, issue a credit note,
// void. Documents are fetched with the key in the Authorization header (api.js), never with the key in a URL.
import { downloadDocument, fetchDocument, gql, serverFeatures } from "./api.js";
import { clear, errorBox, h, money, spinner, statusBadge, when } from "./dom.js";
import { openAction } from "./actions.js";

const STATUSES = ["DRAFT", "OPEN", "PAID", "VOID", "UNCOLLECTIBLE"];
const VOIDABLE = new Set(["OPEN", "UNCOLLECTIBLE"]);
const PAYABLE = VOIDABLE;
const CREDITABLE = new Set(["PAID", "OPEN", "UNCOLLECTIBLE"]);
const LINE = "id kind description quantity periodStart periodEnd unitPrice { amount currency } amount { amount currency }";
const CREDIT_NOTE = "id number issueDate reason refunded total { amount currency }";
// Lines and credit notes come with every row (one query each per page, batched by the server): a draft is
// reviewed where it is listed, and an invoice's credit notes are listed under it.
const ROW = `id number status documentType issueDate dueDate voidReason periodStart periodEnd
  subtotal { amount currency } total { amount currency } amountDue { amount currency } creditedTotal { amount currency }
  lines { ${LINE} } creditNotes { ${CREDIT_NOTE} }`;
const SETTINGS = "purchaseOrder memo paymentTermsDays documentType draftInvoices draftDays";

export function pdfPath(invoice) {
  return `/invoices/${encodeURIComponent(invoice.id)}.pdf`;
}

function pagePath(invoice) {
  return `/invoices/${encodeURIComponent(invoice.id)}`;
}

function creditNotePdfPath(note) {
  return `/credit-notes/${encodeURIComponent(note.id)}.pdf`;
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

// -- amounts: decimal strings, added in minor units so that nothing is lost to floating point ----------

function scaleOf(m) {
  return (String(m.amount).split(".")[1] || "").length;
}

function toMinor(amount, scale) {
  const text = String(amount).trim();
  const sign = text.startsWith("-") ? -1n : 1n;
  const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
  return sign * (BigInt(whole || "0") * 10n ** BigInt(scale) + BigInt(fraction.padEnd(scale, "0").slice(0, scale) || "0"));
}

function fromMinor(units, scale) {
  const digits = (units < 0n ? -units : units).toString().padStart(scale + 1, "0");
  const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return units < 0n ? `-${text}` : text;
}

// a + b, or a − b with ``sign`` −1n; both in a's currency.
function plus(a, b, sign = 1n) {
  const scale = Math.max(scaleOf(a), scaleOf(b));
  return { amount: fromMinor(toMinor(a.amount, scale) + sign * toMinor(b.amount, scale), scale), currency: a.currency };
}

function sameAmount(a, b) {
  const scale = Math.max(scaleOf(a), scaleOf(b));
  return toMinor(a.amount, scale) === toMinor(b.amount, scale);
}

// -- documents ----------------------------------------------------------------------------

// A button that saves a document as a PDF; a refusal shows next to it.
function documentButton(path, filename, title) {
  const button = h("button", { type: "button", name: "pdf", title }, "PDF");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.parentElement?.querySelector(".download-error")?.remove();
    try {
      await downloadDocument(path, filename);
    } catch (exc) {
      button.after(h("span", { class: "download-error field-error", role: "alert" }, exc.message));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function pdfButton(invoice) {
  return documentButton(pdfPath(invoice), `${invoice.number || "draft-invoice"}.pdf`, `Download ${numberOf(invoice)} as a PDF`);
}

function creditNoteButton(note) {
  return documentButton(creditNotePdfPath(note), `${note.number}.pdf`, `Download ${note.number} as a PDF`);
}

// -- lines --------------------------------------------------------------------------------

// An invoice's lines; ``onRemove`` adds a remove button to one-off lines, ``marks`` (line → "added" or
// "removed") shows what a dry run changes.
function linesTable(lines, { onRemove = null, marks = new Map(), id = null } = {}) {
  return h(
    "table",
    { class: "list lines", id },
    h("thead", {}, h("tr", {}, ["Description", "#Qty", "#Unit price", "#Amount", onRemove ? "" : null].filter((x) => x !== null).map(heading))),
    h(
      "tbody",
      {},
      lines.map((line) =>
        h(
          "tr",
          { class: marks.get(line) || null, dataset: { kind: line.kind, line: line.id } },
          h(
            "td",
            {},
            line.description,
            line.kind === "ONE_OFF" ? h("span", { class: "chip" }, "one-off") : null,
            marks.get(line) ? h("span", { class: "chip" }, marks.get(line)) : null,
            line.periodStart ? h("div", { class: "muted" }, `${line.periodStart} → ${line.periodEnd}`) : null,
          ),
          h("td", { class: "num" }, line.quantity ?? ""),
          h("td", { class: "num" }, line.unitPrice ? money(line.unitPrice) : ""),
          h("td", { class: "num" }, money(line.amount)),
          onRemove
            ? h("td", { class: "row-actions" }, line.kind === "ONE_OFF" ? h("button", { type: "button", name: "remove-line", onclick: () => onRemove(line) }, "Remove…") : null)
            : null,
        ),
      ),
    ),
  );
}

function lineSum(lines, currency) {
  return lines.reduce((sum, line) => plus(sum, line.amount), { amount: "0", currency });
}

// What a dry run of a draft change shows: the draft's lines and total after. The dry run's invoice has its
// totals after the change, but its lines as stored (the change was rolled back before they were read), so
// ``compose`` builds them from the request when the request says exactly what happens to them (adding or
// removing a line); otherwise the invoice's lines are shown only when they add up to its subtotal.
function draftAfter(before, result, compose = null) {
  const after = result.invoice;
  if (!after) return null;
  let lines = null;
  let marks = new Map();
  if (compose) ({ lines, marks } = compose(after));
  else if (sameAmount(lineSum(after.lines, after.total.currency), after.subtotal)) lines = after.lines;
  return h(
    "div",
    { class: "draft-after" },
    h("h3", {}, "The draft after"),
    lines ? linesTable(lines, { marks, id: "draft-after-lines" }) : h("p", { class: "muted" }, "Its lines are recomputed from the subscription as it is now; one-off lines are kept."),
    h("p", { class: "draft-total" }, "Total ", h("strong", {}, money(after.total)), sameAmount(after.total, before.total) ? " (unchanged)" : ` (now ${money(before.total)})`),
  );
}

function totalRow(before, result) {
  return result.invoice && !sameAmount(result.invoice.total, before.total) ? [["Total", money(before.total), money(result.invoice.total)]] : [];
}

// -- actions on an invoice: each a console action (dry run, then a confirmation) -----------------------

// What invoice actions share: the invoice in the payload, no subscription version, no field of their own unless
// ``spec`` names some.
function invoiceAction(invoice, spec) {
  return {
    selection: `invoice { ${ROW} }`,
    versioned: false,
    subject: "invoice",
    fields: [],
    build: () => ({ invoiceId: invoice.id }),
    ...spec,
  };
}

// Void: a reason, a dry run, then a confirmation.
export function voidAction(invoice) {
  return invoiceAction(invoice, {
    name: "void-invoice",
    label: `Void ${numberOf(invoice)}`,
    mutation: "voidInvoice",
    input: "VoidInvoiceInput",
    danger: true,
    reasonLabel: "Reason (kept on the invoice and in the history)",
    reasonRequired: true,
    rows: (before, result) => (result.invoice ? [["Status", before.status, result.invoice.status]] : []),
    consequences: (before) => [`Nothing more is collected for ${numberOf(before)}: ${money(before.amountDue)} was due, and its retries stop`],
  });
}

function addLineAction(draft) {
  let asked = null;
  return invoiceAction(draft, {
    name: "add-invoice-line",
    label: "Add a line to the draft",
    mutation: "addInvoiceLine",
    input: "AddInvoiceLineInput",
    subject: "draft",
    fields: [
      { name: "description", label: "Description (printed on the invoice)", type: "text", required: true, maxlength: 500 },
      { name: "unitPrice", label: `Unit price (${draft.total.currency}; negative for a discount)`, type: "text", required: true },
      { name: "quantity", label: "Quantity", type: "number", value: "1", min: 1, required: true },
    ],
    build: (v) => {
      asked = { description: v.description, unitPrice: { amount: v.unitPrice, currency: draft.total.currency }, quantity: Number(v.quantity || 1) };
      return { invoiceId: draft.id, ...asked };
    },
    rows: totalRow,
    details: (before, result) =>
      draftAfter(before, result, (after) => {
        const line = { id: "new", kind: "ONE_OFF", ...asked, amount: plus(after.subtotal, before.subtotal, -1n) };
        return { lines: [...before.lines, line], marks: new Map([[line, "added"]]) };
      }),
  });
}

function removeLineAction(draft, line) {
  return invoiceAction(draft, {
    name: "remove-invoice-line",
    label: `Remove “${line.description}” from the draft`,
    mutation: "removeInvoiceLine",
    input: "RemoveInvoiceLineInput",
    subject: "draft",
    build: () => ({ invoiceId: draft.id, lineId: line.id }),
    rows: totalRow,
    details: (before, result) =>
      draftAfter(before, result, () => {
        const gone = before.lines.find((l) => l.id === line.id);
        return { lines: before.lines, marks: new Map(gone ? [[gone, "removed"]] : []) };
      }),
  });
}

function refreshAction(draft) {
  return invoiceAction(draft, {
    name: "refresh-invoice",
    label: "Refresh the draft",
    mutation: "refreshInvoice",
    input: "RefreshInvoiceInput",
    subject: "draft",
    rows: totalRow,
    details: (before, result) => draftAfter(before, result),
  });
}

function finalizeAction(draft) {
  return invoiceAction(draft, {
    name: "finalize-invoice",
    label: "Finalize now",
    mutation: "finalizeInvoice",
    input: "FinalizeInvoiceInput",
    subject: "draft",
    rows: (before, result) => [["Status", before.status, result.dryRun ? "numbered, then charged" : result.invoice?.status]],
    consequences: (before, result) => {
      const inv = result.invoice;
      if (inv?.number) return [`${inv.number} issued for ${money(inv.total)}: ${inv.status === "PAID" ? "paid" : `${inv.status.toLowerCase()}, ${money(inv.amountDue)} due`}`];
      return [
        `Refreshed from the subscription, given the next invoice number and charged at once: ${money(before.amountDue)} as the draft stands (the customer's balance is applied first)`,
      ];
    },
    details: (before, result) => (result.dryRun ? draftAfter(before, result) : null),
  });
}

function deleteDraftAction(draft) {
  return invoiceAction(draft, {
    name: "delete-draft-invoice",
    label: "Delete draft",
    mutation: "deleteDraftInvoice",
    input: "DeleteDraftInvoiceInput",
    subject: "draft",
    danger: true,
    reasonLabel: "Reason (kept in the history)",
    reasonRequired: true,
    rows: (before) => [["Draft", `${before.lines.length} line${before.lines.length === 1 ? "" : "s"}, ${money(before.total)}`, "deleted"]],
    consequences: (before, result) => [
      `This period (${before.periodStart} → ${before.periodEnd}) ${result.dryRun ? "would be" : "is"} skipped: nothing is billed for it, and the history says so`,
    ],
  });
}

function markPaidAction(invoice) {
  let asked = {};
  return invoiceAction(invoice, {
    name: "mark-invoice-paid",
    label: `Record a payment on ${numberOf(invoice)}`,
    mutation: "markInvoicePaid",
    input: "MarkInvoicePaidInput",
    reasonLabel: "Note (kept in the history)",
    fields: [
      { name: "paidAt", label: "Date received (empty: today)", type: "date" },
      { name: "reference", label: "Reference (the transfer's id, a cheque number)", type: "text", maxlength: 200 },
    ],
    build: (v) => {
      asked = { paidAt: v.paidAt || null, reference: v.reference || null };
      return { invoiceId: invoice.id, ...asked };
    },
    rows: (before, result) => [["Status", before.status, result.dryRun ? "PAID" : result.invoice?.status]],
    consequences: (before, result) => {
      const on = asked.paidAt ? `on ${asked.paidAt}` : "today";
      const ref = asked.reference ? ` (${asked.reference})` : "";
      return [`${money(before.amountDue)} ${result.dryRun ? "would be recorded as" : "recorded as"} received ${on}${ref}: its renewal is paid and its retries stop; nothing is charged`];
    },
  });
}

function creditNoteAction(invoice) {
  const left = plus(invoice.total, invoice.creditedTotal, -1n);
  let asked = {};
  return invoiceAction(invoice, {
    name: "create-credit-note",
    label: `Issue a credit note on ${numberOf(invoice)}`,
    mutation: "createCreditNote",
    input: "CreateCreditNoteInput",
    selection: `creditNote { id number total { amount currency } refunded }`,
    reasonLabel: "Reason (printed on the credit note and kept in the history)",
    reasonRequired: true,
    fields: [
      { name: "amount", label: `Amount (${invoice.total.currency}, tax included; at most ${left.amount})`, type: "text", value: left.amount, required: true },
      { name: "refund", label: "Refund through the gateway (otherwise it goes to the customer's balance, applied to their next invoices)", type: "checkbox" },
    ],
    build: (v) => {
      asked = { amount: { amount: v.amount, currency: invoice.total.currency }, refund: Boolean(v.refund) };
      return { invoiceId: invoice.id, ...asked };
    },
    rows: (before, result) => [["Credited", money(before.creditedTotal), money(plus(before.creditedTotal, result.creditNote?.total ?? asked.amount))]],
    consequences: (before, result) => {
      const note = result.creditNote;
      const how = (refunded) => (refunded ? "refunded through the gateway" : "to the customer's balance");
      if (note && result.dryRun) return [`${note.number} would be issued: ${money(note.total)} would go ${how(note.refunded)}`];
      if (note) return [`${note.number}: ${money(note.total)} ${how(note.refunded)}`];
      const amount = money(asked.amount);
      return [asked.refund ? `${amount} would be refunded through the gateway, with a numbered credit note` : `${amount} would go to the customer's balance, with a numbered credit note`];
    },
  });
}

// The actions an invoice offers in this status, as buttons that open them in ``open``; ``can`` says whether
// the server has a mutation.
function invoiceButtons(inv, open, can) {
  const button = (action, text, attrs = {}) => h("button", { type: "button", dataset: { action: action.name }, onclick: () => open(action), ...attrs }, text);
  return [
    PAYABLE.has(inv.status) && can("markInvoicePaid") ? button(markPaidAction(inv), "Record payment…") : null,
    CREDITABLE.has(inv.status) && inv.documentType === "INVOICE" && can("createCreditNote") && !sameAmount(inv.creditedTotal, inv.total)
      ? button(creditNoteAction(inv), "Credit note…")
      : null,
    VOIDABLE.has(inv.status) && can("voidInvoice") ? button(voidAction(inv), "Void…", { class: "danger", name: "void" }) : null,
  ].filter(Boolean);
}

// A draft under review: its lines (one-off lines can be removed) and what can be done with it before it is
// finalized (by staff now, or by the worker after the draft days).
function draftReview(draft, open, can) {
  const button = (action, text, attrs = {}) => (can(action.mutation) ? h("button", { type: "button", dataset: { action: action.name }, onclick: () => open(action), ...attrs }, text) : null);
  return h(
    "div",
    { class: "draft-review", dataset: { invoice: draft.id } },
    h("p", { class: "muted" }, `Draft for ${draft.periodStart} → ${draft.periodEnd}: no number and nothing charged until it is finalized.`),
    linesTable(draft.lines, { onRemove: can("removeInvoiceLine") ? (line) => open(removeLineAction(draft, line)) : null }),
    h("p", { class: "draft-total" }, "Total ", h("strong", {}, money(draft.total))),
    h(
      "div",
      { class: "buttons" },
      button(addLineAction(draft), "Add line…"),
      button(refreshAction(draft), "Refresh…"),
      button(finalizeAction(draft), "Finalize now…", { class: "primary" }),
      button(deleteDraftAction(draft), "Delete draft…", { class: "danger" }),
    ),
  );
}

// An invoice's credit notes: number, date, total, refunded or to the balance, reason and PDF.
function creditNotesTable(notes, id = null) {
  return h(
    "table",
    { class: "list credit-notes", id },
    h("thead", {}, h("tr", {}, ["Credit note", "Issued", "#Total", "Settled", "Reason", ""].map(heading))),
    h(
      "tbody",
      {},
      notes.map((note) =>
        h(
          "tr",
          { dataset: { id: note.id } },
          h("td", { class: "mono nowrap" }, note.number),
          h("td", { class: "nowrap" }, note.issueDate),
          h("td", { class: "num" }, money(note.total)),
          h("td", {}, note.refunded ? "refunded" : "to the balance"),
          h("td", {}, note.reason || "—"),
          h("td", { class: "row-actions" }, creditNoteButton(note)),
        ),
      ),
    ),
  );
}

// What invoice views need to act: the server's mutations (an older server lacks some).
async function abilities() {
  const mutations = (await serverFeatures()).mutations;
  return (name) => mutations.size === 0 || mutations.has(name);
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

// Under an invoice's row: a draft's review, and the credit notes issued against it.
function detailsRow(inv, columns, open, can) {
  const draft = inv.status === "DRAFT";
  if (!draft && !inv.creditNotes.length) return null;
  return h(
    "tr",
    { class: "invoice-details", dataset: { for: inv.id } },
    h(
      "td",
      { colspan: columns },
      draft ? draftReview(inv, open, can) : null,
      inv.creditNotes.length ? [h("h3", {}, `Credit notes: ${money(inv.creditedTotal)} credited`), creditNotesTable(inv.creditNotes)] : null,
    ),
  );
}

// A table of invoices; ``customer`` and ``subscription`` add those columns, and then the due date goes under
// the issue date to leave them room. ``open(invoice)(action)`` opens an action; ``can`` says which the server has.
function invoiceTable(rows, { id, customer = false, subscription = false, open, can }) {
  const narrow = customer || subscription;
  const headings = ["Number", "Status", customer ? "Customer" : null, subscription ? "Subscription" : null, narrow ? "Issued, due" : "Issued", narrow ? null : "Due", "#Total", "#Amount due", ""].filter((x) => x !== null);
  return h(
    "table",
    { class: "list", id },
    h("thead", {}, h("tr", {}, headings.map(heading))),
    h(
      "tbody",
      {},
      rows.map((inv) => [
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
            { class: "row-actions wrap" },
            pdfButton(inv),
            " ",
            h("a", { href: invoiceHref(inv), class: "open" }, "Open"),
            invoiceButtons(inv, open(inv), can).map((button) => [" ", button]),
          ),
        ),
        detailsRow(inv, headings.length, open(inv), can),
      ]),
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
  const can = await abilities();
  const open = (inv) => (action) => openAction(action, inv, panel, reload);
  clear(
    body,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Invoices"),
      rows.length ? invoiceTable(rows, { id: "subscription-invoices", open, can }) : h("p", { class: "muted" }, "No invoice yet."),
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
  const can = await abilities();
  const open = (inv) => (action) => openAction(action, inv, panel, reload);
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
  clear(results, pager, rows.length ? invoiceTable(rows, { id: "invoice-table", customer: true, subscription: true, open, can }) : null);
}

// -- one invoice ------------------------------------------------------------------------

const ONE = `query Invoice($id: ID!) { invoice(id: $id) {
  ${ROW} currency purchaseOrder finalizedAt paidAt voidedAt
  creditApplied { amount currency } amountPaid { amount currency }
  shippingTotal { amount currency } taxTotal { amount currency } taxes { name percentage inclusive exemptReason }
  customer { id email name } subscription { id } renewal { id cycle }
} }`;

// The rates an invoice was taxed at, or the reason it was not.
function taxRates(inv) {
  const text = inv.taxes
    .map((t) => (t.exemptReason ? `exempt: ${t.exemptReason}` : `${t.name} ${t.percentage} %${t.inclusive ? ", included" : ""}`))
    .join("; ");
  return text ? h("span", { class: "muted" }, ` (${text})`) : null;
}

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
    // A deleted draft leaves nothing to show but what was done.
    if (flash) clear(root, back, h("div", { class: "notice", id: "flash", role: "status" }, flash), h("p", { class: "muted" }, "This draft no longer exists."));
    else clear(root, back, errorBox(`No invoice ${id}.`));
    return;
  }
  const panel = h("div", { class: "action-panel", id: "action-panel" });
  const reload = (message) => renderInvoice(root, id, navigate, message);
  const act = (action) => openAction(action, inv, panel, reload);
  const can = await abilities();
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
      invoiceButtons(inv, act, can),
    ),
    panel,
    inv.status === "DRAFT" ? h("section", { class: "card", id: "draft-review" }, h("h2", {}, "Review the draft"), draftReview(inv, act, can)) : null,
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
          ["Shipping", h("span", { id: "invoice-shipping" }, money(inv.shippingTotal))],
          ["Tax", h("span", { id: "invoice-tax" }, money(inv.taxTotal), taxRates(inv))],
          ["Total", money(inv.total)],
          ["Paid", money(inv.amountPaid)],
          ["Amount due", money(inv.amountDue)],
          inv.creditNotes.length ? ["Credited", money(inv.creditedTotal)] : null,
          inv.paidAt ? ["Paid at", when(inv.paidAt)] : null,
          inv.voidedAt ? ["Voided at", `${when(inv.voidedAt)}${inv.voidReason ? ` (${inv.voidReason})` : ""}`] : null,
        ]
          .filter(Boolean)
          .map(([term, detail]) => [h("dt", {}, term), h("dd", {}, detail)]),
      ),
    ),
    inv.creditNotes.length ? h("section", { class: "card" }, h("h2", {}, "Credit notes"), creditNotesTable(inv.creditNotes, "credit-notes")) : null,
    frame,
  );
  try {
    clear(frame, await documentFrame(inv));
  } catch (exc) {
    clear(frame, errorBox(exc.message));
  }
}
