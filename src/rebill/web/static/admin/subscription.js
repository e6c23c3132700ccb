// One subscription: its details, renewals, phases, history, and the actions support staff take on it.
import { gql, has, serverFeatures } from "./api.js";
import { clear, errorBox, h, money, spinner, statusBadge, value, when } from "./dom.js";
import { actionsFor, openAction } from "./actions.js";
import { invoicesTab } from "./invoices.js";
import { hasShipping, taxAndShippingCard } from "./taxshipping.js";
import { CONTRACT_FIELDS, contractCard } from "./contracts.js";

// Newer servers sort a history with orderBy (newest first); older ones are sorted here.
function historyOrder(features) {
  return has(features.args.Subscription?.history, "orderBy") ? ", orderBy: { direction: DESC }" : "";
}

// Servers from before invoices have no Subscription.invoices: their pages have no Invoices tab. Without
// introspection nothing is known, and the console assumes the server that serves it.
function hasInvoices(features) {
  return features.args.Subscription ? Boolean(features.args.Subscription.invoices) : true;
}

// Servers from before contract terms have no Subscription.contract: their pages show no contract.
function hasContracts(features) {
  return features.args.Subscription ? Boolean(features.args.Subscription.contract) : true;
}

function detailQuery(features) {
  const consent = has(features.types.HistoryEntry, "consentReference") ? "consentReference" : "";
  const invoices = hasInvoices(features) ? "invoiceCount: invoices(first: 1) { totalCount }" : "";
  const contract = hasContracts(features) ? CONTRACT_FIELDS : "";
  return `query Subscription($id: ID!) {
    subscription(id: $id) {
      id status renewalType version currency timeZone
      nextRenewalDate trialEndDate startDate endDate anchorDate currentPeriodStart currentPeriodEnd
      occurrencesBilled overdueCount nextRetryDate cancelAtPeriodEnd createdAt updatedAt replacesId replacedById
      gatewayId gatewayMode lastGatewayId metadata
      amount { amount currency } credit { amount currency }
      customer { id email name timeZone }
      paymentMethod { id kind brand last4 expMonth expYear }
      profile { id name custom cadence { unit count } }
      shippingAddress { line1 line2 city region postalCode country }
      items { id quantity autoRenew priceFromTiers unitPrice { amount currency } total { amount currency }
              pendingUnitPrice { amount currency } pendingQuantity product { id name sku kind } }
      coupons { code active } ${invoices} ${contract}
      phases { id effectiveDate status changes createdBy reason createdAt appliedAt }
      renewals(first: 12) { totalCount edges { node {
        id cycle kind status periodStart periodEnd attempts nextRetryDate fulfillment gatewayId adjustment createdAt
        amount { amount currency } refundedAmount { amount currency }
        transactions { id kind status amount { amount currency } declineCode gatewayId createdAt }
      } } }
      history(first: 25${historyOrder(features)}) { totalCount pageInfo { hasNextPage endCursor } edges { node {
        id occurredAt actor action reason bulkRunId ${consent} changes { field before after }
      } } }
    }
  }`;
}

export async function loadSubscription(id) {
  const features = await serverFeatures();
  const data = await gql(detailQuery(features), { id });
  return data.subscription;
}

function dl(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, detail]) => [h("dt", {}, term), h("dd", {}, detail ?? "—")]),
  );
}

function paymentMethod(pm) {
  if (!pm) return "none";
  if (pm.kind === "CARD") {
    const expires = pm.expMonth && pm.expYear ? ` (expires ${String(pm.expMonth).padStart(2, "0")}/${pm.expYear})` : "";
    return `${pm.brand || "card"} •••• ${pm.last4 || "????"}${expires}`;
  }
  return pm.kind.toLowerCase();
}

function address(a) {
  if (!a) return "—";
  return [a.line1, a.line2, [a.postalCode, a.city].filter(Boolean).join(" "), a.region, a.country].filter(Boolean).join(", ");
}

export async function renderSubscription(root, id, tab, navigate, flash = null) {
  clear(root, spinner("Loading the subscription…"));
  let s;
  try {
    s = await loadSubscription(id);
  } catch (exc) {
    clear(root, h("p", {}, h("a", { href: "#/subscriptions" }, "← Subscriptions")), errorBox(exc.message));
    return;
  }
  if (!s) {
    clear(root, h("p", {}, h("a", { href: "#/subscriptions" }, "← Subscriptions")), errorBox(`No subscription ${id}.`));
    return;
  }
  const features = await serverFeatures();
  const reload = (message) => renderSubscription(root, id, tab, navigate, message);
  const tabs = [
    ["overview", "Overview"],
    ["renewals", `Renewals (${s.renewals.totalCount})`],
    s.invoiceCount ? ["invoices", `Invoices (${s.invoiceCount.totalCount})`] : null,
    ["phases", `Phases (${s.phases.length})`],
    ["history", `History (${s.history.totalCount})`],
  ].filter(Boolean);
  const current = tabs.some(([k]) => k === tab) ? tab : "overview";
  const actionBar = h(
    "div",
    { class: "actions", id: "subscription-actions" },
    actionsFor(s, features).map((action) =>
      h(
        "button",
        { type: "button", class: action.danger ? "danger" : "", dataset: { action: action.name }, onclick: () => openAction(action, s, panel, reload) },
        action.label,
      ),
    ),
  );
  const panel = h("div", { class: "action-panel", id: "action-panel" });
  const body = h("div", { class: "tab-body", id: `tab-${current}` });
  clear(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/subscriptions" }, "← Subscriptions")),
    h(
      "div",
      { class: "subscription-head" },
      h("h1", {}, "Subscription ", h("span", { class: "mono" }, s.id), " ", statusBadge(s.status)),
      h("div", { class: "muted" }, `${s.customer.email} · version ${s.version} · ${s.profile.name}`),
    ),
    flash ? h("div", { class: "notice", id: "flash", role: "status" }, flash) : null,
    actionBar,
    panel,
    h(
      "nav",
      { class: "tabs", role: "tablist" },
      tabs.map(([key, label]) =>
        h("a", { href: `#/subscription/${encodeURIComponent(s.id)}/${key}`, role: "tab", class: key === current ? "active" : "", "aria-selected": key === current ? "true" : "false" }, label),
      ),
    ),
    body,
  );
  if (current === "overview") overview(body, s, hasContracts(features) ? contractCard(s, panel, reload) : null);
  if (current === "overview" && hasShipping(features)) await taxAndShippingCard(body, s, panel, reload);
  if (current === "renewals") renewals(body, s, features, panel, reload);
  if (current === "invoices") await invoicesTab(body, s, panel, reload);
  if (current === "phases") phases(body, s);
  if (current === "history") historyTab(body, s, features);
}

function overview(body, s, contract = null) {
  clear(
    body,
    contract,
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Subscription Information"),
        dl([
          ["Status", statusBadge(s.status)],
          ["Amount (next renewal)", [h("strong", { id: "subscription-amount" }, money(s.amount)), h("span", { class: "muted" }, " excluding shipping and taxes")]],
          ["Next renewal", h("span", { id: "next-renewal" }, s.nextRenewalDate || "—")],
          s.trialEndDate ? ["Trial ends", s.trialEndDate] : null,
          ["Current period", s.currentPeriodStart ? `${s.currentPeriodStart} → ${s.currentPeriodEnd}` : "—"],
          ["Started", s.startDate],
          ["Ends", s.endDate || (s.cancelAtPeriodEnd ? "at period end" : "no end date")],
          ["Anchor", s.anchorDate],
          ["Renewals billed", String(s.occurrencesBilled)],
          ["Overdue renewals", String(s.overdueCount)],
          s.nextRetryDate ? ["Next retry", s.nextRetryDate] : null,
          ["Renewal type", s.renewalType.toLowerCase()],
          ["Profile", `${s.profile.name}${s.profile.custom ? " (custom)" : ""} · every ${s.profile.cadence.count} ${s.profile.cadence.unit.toLowerCase()}`],
          ["Time zone", s.timeZone],
          s.credit ? ["Credit", money(s.credit)] : null,
          s.replacesId ? ["Replaces", h("a", { href: `#/subscription/${s.replacesId}` }, s.replacesId)] : null,
          s.replacedById ? ["Replaced by", h("a", { href: `#/subscription/${s.replacedById}` }, s.replacedById)] : null,
        ]),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Customer and payment"),
        dl([
          ["Customer", `${s.customer.name || ""} <${s.customer.email}>`],
          ["Payment method", h("span", { id: "payment-method" }, paymentMethod(s.paymentMethod))],
          ["Gateway", s.gatewayId ? `${s.gatewayId} (${s.gatewayMode.toLowerCase()})` : "by the payment profile"],
          ["Last gateway used", s.lastGatewayId || "—"],
          ["Shipping address", address(s.shippingAddress)],
          ["Coupons", s.coupons.length ? s.coupons.map((c) => `${c.code}${c.active ? "" : " (used up)"}`).join(", ") : "none"],
          ["Metadata", s.metadata && Object.keys(s.metadata).length ? h("code", {}, JSON.stringify(s.metadata)) : "—"],
          ["Created", when(s.createdAt)],
          ["Last changed", when(s.updatedAt)],
        ]),
      ),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Items"),
      h(
        "table",
        { class: "list", id: "items-table" },
        h("thead", {}, h("tr", {}, ["Product", "SKU", "Quantity", "Unit price", "Total", "Pending", "Auto-renew"].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          s.items.map((i) =>
            h(
              "tr",
              {},
              h("td", {}, i.product.name),
              h("td", { class: "mono" }, i.product.sku),
              h("td", { class: "num" }, String(i.quantity)),
              h("td", { class: "num" }, money(i.unitPrice), i.priceFromTiers ? h("div", { class: "muted" }, "from tiers") : null),
              h("td", { class: "num" }, money(i.total)),
              h("td", {}, [i.pendingUnitPrice ? `price ${money(i.pendingUnitPrice)}` : null, i.pendingQuantity ? `quantity ${i.pendingQuantity}` : null].filter(Boolean).join(", ") || "—"),
              h("td", {}, i.autoRenew ? "yes" : "no"),
            ),
          ),
        ),
      ),
    ),
  );
}

function renewals(body, s, features, panel, reload) {
  const rows = s.renewals.edges.map((e) => e.node);
  if (!rows.length) {
    clear(body, h("p", { class: "muted" }, "No renewal yet."));
    return;
  }
  const refund = actionsFor(s, features).find((a) => a.name === "refund");
  clear(
    body,
    h(
      "table",
      { class: "list", id: "renewals-table" },
      h("thead", {}, h("tr", {}, ["Cycle", "Kind", "Status", "Period", "Amount", "Refunded", "Attempts", "Fulfillment", "Gateway", "Transactions", ""].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            { dataset: { id: r.id } },
            h("td", {}, String(r.cycle)),
            h("td", {}, r.kind.toLowerCase(), r.adjustment ? " (adjustment)" : ""),
            h("td", {}, statusBadge(r.status)),
            h("td", {}, `${r.periodStart} → ${r.periodEnd}`),
            h("td", { class: "num" }, money(r.amount)),
            h("td", { class: "num" }, Number(r.refundedAmount.amount) ? money(r.refundedAmount) : "—"),
            h("td", { class: "num" }, String(r.attempts), r.nextRetryDate ? h("div", { class: "muted" }, `retry ${r.nextRetryDate}`) : null),
            h("td", {}, r.fulfillment.toLowerCase()),
            h("td", {}, r.gatewayId || "—"),
            h("td", {}, r.transactions.map((t) => h("div", {}, `${t.kind} ${t.status.toLowerCase()} ${money(t.amount)}${t.declineCode ? ` (${t.declineCode})` : ""}`))),
            h("td", {}, refund && r.status === "PAID" ? h("button", { type: "button", onclick: () => openAction(refund, s, panel, reload, { renewal: r }) }, "Refund…") : null),
          ),
        ),
      ),
    ),
    s.renewals.totalCount > rows.length ? h("p", { class: "muted" }, `The ${rows.length} newest of ${s.renewals.totalCount} renewals.`) : null,
  );
}

function phases(body, s) {
  if (!s.phases.length) {
    clear(body, h("p", { class: "muted" }, "No phase: no change is scheduled for a later date."));
    return;
  }
  clear(
    body,
    h(
      "table",
      { class: "list" },
      h("thead", {}, h("tr", {}, ["Effective", "Status", "Changes", "By", "Reason", "Applied"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        s.phases.map((p) =>
          h("tr", {}, h("td", {}, p.effectiveDate), h("td", {}, p.status), h("td", {}, h("code", {}, JSON.stringify(p.changes))), h("td", {}, p.createdBy || "—"), h("td", {}, p.reason || "—"), h("td", {}, when(p.appliedAt))),
        ),
      ),
    ),
  );
}

const HISTORY_PAGE = `query History($id: ID!, $after: String) { subscription(id: $id) {
  history(first: 25, after: $after ORDER) { pageInfo { hasNextPage endCursor } edges { node {
    id occurredAt actor action reason bulkRunId CONSENT changes { field before after } } } } } }`;

function newestFirst(entries, features) {
  if (historyOrder(features)) return entries; // the server sorted them
  // Older servers send the oldest first: reverse, then sort by time (a stable sort keeps same-instant entries).
  return entries.reverse().sort((a, b) => (a.occurredAt < b.occurredAt ? 1 : a.occurredAt > b.occurredAt ? -1 : 0));
}

function historyEntry(entry, withConsent) {
  return h(
    "li",
    { class: "history-entry", dataset: { action: entry.action } },
    h(
      "div",
      { class: "history-head" },
      h("strong", {}, entry.action),
      h("span", { class: "muted" }, ` ${when(entry.occurredAt)} · by ${entry.actor}`),
      entry.bulkRunId ? h("a", { href: `#/bulk/run/${encodeURIComponent(entry.bulkRunId)}`, class: "chip" }, "bulk run") : null,
    ),
    h(
      "div",
      { class: "history-meta" },
      h("span", {}, "Reason: ", entry.reason || "—"),
      withConsent ? h("span", {}, " · Consent: ", entry.consentReference || "—") : null,
    ),
    h(
      "table",
      { class: "changes" },
      h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Before"), h("th", {}, "After"))),
      h(
        "tbody",
        {},
        entry.changes.map((c) => h("tr", {}, h("td", { class: "mono" }, c.field), h("td", { class: "before" }, value(c.before)), h("td", { class: "after" }, value(c.after)))),
      ),
    ),
  );
}

function historyTab(body, s, features) {
  const withConsent = has(features.types.HistoryEntry, "consentReference");
  const entries = newestFirst(s.history.edges.map((e) => e.node), features);
  if (!entries.length) {
    clear(body, h("p", { class: "muted" }, "No history yet."));
    return;
  }
  const list = h("ol", { class: "history", id: "history" }, entries.map((entry) => historyEntry(entry, withConsent)));
  const footer = h("div", { class: "history-footer" });
  let shown = entries.length;
  let page = s.history.pageInfo;
  const showFooter = () => {
    const more = h("button", { type: "button", name: "older" }, "Show older entries");
    more.addEventListener("click", async () => {
      more.disabled = true;
      try {
        const query = HISTORY_PAGE.replace("CONSENT", withConsent ? "consentReference" : "").replace("ORDER", historyOrder(features));
        const data = await gql(query, { id: s.id, after: page.endCursor });
        const older = newestFirst(data.subscription.history.edges.map((e) => e.node), features);
        list.append(...older.map((entry) => historyEntry(entry, withConsent)));
        shown += older.length;
        page = data.subscription.history.pageInfo;
        showFooter();
      } catch (exc) {
        clear(footer, errorBox(exc.message));
      }
    });
    clear(
      footer,
      h("p", { class: "muted" }, `The ${shown} newest of ${s.history.totalCount} entries.`),
      page.hasNextPage ? more : null,
    );
  };
  showFooter();
  clear(body, list, footer);
}
