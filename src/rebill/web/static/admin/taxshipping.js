// Tax and shipping on a subscription's overview (DOMAIN.md "Tax and shipping"): the shipping profile it ships
// with and a change of it (a dry run first; consent when the shipping charge goes up), the customer's tax
// standing, and what the next invoice adds to the price, which stays "excluding shipping and taxes".
import { gql } from "./api.js";
import { clear, errorBox, h, money, spinner } from "./dom.js";
import { openAction } from "./actions.js";
import { CUSTOMER_TAX, openTaxExemption } from "./customer.js";
import { loadShippingProfiles, ratesText } from "./shipping.js";

const UPCOMING = `upcomingInvoice { issueDate subtotal { amount currency } discountTotal { amount currency }
  shippingTotal { amount currency } taxTotal { amount currency } total { amount currency }
  taxes { name percentage inclusive exemptReason amount { amount currency } } }`;
const SHIPPING = `shippingProfile { id name rates { name amount { amount currency } } }
  profile { id shippingProfile { id name } } ${UPCOMING}`;

const QUERY = `query TaxAndShipping($id: ID!) { subscription(id: $id) {
  id ${SHIPPING} customer { ${CUSTOMER_TAX} } } }`;

const LIVE = new Set(["FUTURE", "TRIAL", "ACTIVE", "OVERDUE", "SUSPENDED", "AWAITING_REINSTATE"]);

function address(a) {
  if (!a) return "—";
  return [a.line1, a.line2, [a.postalCode, a.city].filter(Boolean).join(" "), a.region, a.country].filter(Boolean).join(", ");
}

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, detail]) => [h("dt", {}, term), h("dd", {}, detail ?? "—")]),
  );
}

// The subscription's own profile when it has one that differs from its subscription profile's.
function override(s) {
  const own = s.shippingProfile;
  const profiles = s.profile.shippingProfile;
  return own && (!profiles || profiles.id !== own.id) ? own : null;
}

function shippingProfileAction(s) {
  const current = override(s);
  return {
    name: "shipping-profile",
    label: "Change shipping profile",
    mutation: "setShippingProfile",
    input: "SetShippingProfileInput",
    extra: `subscription { ${SHIPPING} }`,
    fields: [
      {
        name: "shippingProfileId",
        label: "Shipping profile",
        type: "select",
        value: current ? current.id : "",
        options: async () => {
          const profiles = (await loadShippingProfiles()).filter((p) => p.active || p.id === current?.id);
          const fromProfile = s.profile.shippingProfile ? s.profile.shippingProfile.name : "none";
          return [["", `The subscription profile's (${fromProfile})`], ...profiles.map((p) => [p.id, `${p.name}: ${ratesText(p)}`])];
        },
      },
      { name: "consentReference", label: "Consent reference (needed when the shipping charge goes up)", type: "text" },
    ],
    build: (v) => ({ subscriptionId: s.id, shippingProfileId: v.shippingProfileId || null, consentReference: v.consentReference || null }),
    watch: [
      ["Shipping profile", (x) => x.shippingProfile?.name ?? "none"],
      ["Shipping on the next invoice", (x) => money(x.upcomingInvoice?.shippingTotal)],
      ["Tax on the next invoice", (x) => money(x.upcomingInvoice?.taxTotal)],
      ["Next invoice total", (x) => money(x.upcomingInvoice?.total)],
    ],
  };
}

function nextInvoice(s) {
  const u = s.upcomingInvoice;
  if (!u) return h("p", { class: "muted", id: "upcoming-summary" }, "No renewal is coming, so no invoice either.");
  const rates = u.taxes
    .map((t) => `${t.name} ${t.percentage} %${t.inclusive ? ", included" : ""}${t.exemptReason ? ` (exempt: ${t.exemptReason})` : ""}`)
    .join("; ");
  return h(
    "div",
    { id: "upcoming-summary" },
    h("h3", {}, `Next invoice${u.issueDate ? ` (${u.issueDate})` : ""}`),
    h(
      "dl",
      { class: "facts totals" },
      h("dt", {}, "Price, excluding shipping and taxes"),
      h("dd", { class: "num", id: "upcoming-price" }, money(s.amount)),
      Number(u.discountTotal.amount) ? [h("dt", {}, "Discounts"), h("dd", { class: "num" }, `−${money(u.discountTotal)}`)] : null,
      h("dt", {}, "Shipping"),
      h("dd", { class: "num", id: "upcoming-shipping" }, money(u.shippingTotal)),
      h("dt", {}, rates ? `Tax (${rates})` : "Tax"),
      h("dd", { class: "num", id: "upcoming-tax" }, money(u.taxTotal)),
      h("dt", {}, h("strong", {}, "Total")),
      h("dd", { class: "num" }, h("strong", { id: "upcoming-total" }, money(u.total))),
    ),
    h("p", { class: "muted" }, "A preview: nothing is stored."),
  );
}

// Servers from before tax and shipping have no Subscription.shippingProfile: their pages show no such card.
// Without introspection nothing is known, and the console assumes the server that serves it.
export function hasShipping(features) {
  return features.args.Subscription ? Boolean(features.args.Subscription.shippingProfile) : true;
}

// The card, added to the overview ``body`` under its first columns; it loads what it shows itself, as the
// Invoices tab does.
export async function taxAndShippingCard(body, s, panel, reload) {
  const card = h("section", { class: "card", id: "tax-and-shipping" }, h("h2", {}, "Shipping and tax"), spinner("Loading shipping and tax…"));
  const columns = body.querySelector(":scope > .columns");
  if (columns) columns.after(card);
  else body.append(card);
  let sub;
  try {
    sub = (await gql(QUERY, { id: s.id })).subscription;
  } catch (exc) {
    clear(card, h("h2", {}, "Shipping and tax"), errorBox(exc.message));
    return;
  }
  const full = { ...s, ...sub, profile: { ...s.profile, ...sub.profile }, customer: { ...s.customer, ...sub.customer } };
  const profile = full.shippingProfile;
  const c = full.customer;
  const own = override(full);
  clear(
    card,
    h("h2", {}, "Shipping and tax"),
    h(
      "div",
      { class: "columns" },
      h(
        "div",
        {},
        facts([
          [
            "Shipping profile",
            h(
              "span",
              { id: "shipping-profile" },
              profile ? profile.name : "none",
              profile ? h("span", { class: "muted" }, own ? " (this subscription's own)" : " (from its subscription profile)") : null,
            ),
          ],
          profile ? ["Rates, in order", ratesText(profile)] : null,
          ["Ships", full.shippingAddress ? `yes, to ${address(full.shippingAddress)}` : "no: without a shipping address nothing is billed for shipping"],
          ["Tax", h("span", { id: "customer-tax" }, c.taxExempt ? `exempt: ${c.taxExemptReason || "—"}` : "at the rate of the customer's address")],
          ["Tax id", h("span", { id: "customer-tax-id" }, c.taxId || "—")],
          ["Billing address", address(c.billingAddress)],
        ]),
        h(
          "div",
          { class: "buttons" },
          LIVE.has(s.status)
            ? h("button", { type: "button", dataset: { action: "shipping-profile" }, onclick: () => openAction(shippingProfileAction(full), full, panel, reload) }, "Change shipping profile…")
            : null,
          h("button", { type: "button", dataset: { action: "tax-exemption" }, onclick: () => openTaxExemption(c, panel, reload) }, "Edit tax exemption…"),
        ),
      ),
      nextInvoice(full),
    ),
  );
}
