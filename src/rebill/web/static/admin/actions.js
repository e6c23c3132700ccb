// Lifecycle actions: each runs first as a dry run that shows what would change and what would be charged,
// then, confirmed, for real (with the version the page showed, so a stale page is refused).
import { gql, has, newIdempotencyKey } from "./api.js";
import { clear, errorBox, h, money, showUserErrors, spinner, value } from "./dom.js";

const SUBSCRIPTION = `subscription { id status version nextRenewalDate trialEndDate endDate cancelAtPeriodEnd renewalType
  currentPeriodStart currentPeriodEnd occurrencesBilled amount { amount currency } gatewayId gatewayMode
  profile { id name } shippingAddress { line1 line2 city region postalCode country }
  items { id quantity unitPrice { amount currency } pendingUnitPrice { amount currency } pendingQuantity product { sku } } }`;
const RENEWAL = `renewal { id cycle kind status periodStart periodEnd amount { amount currency } refundedAmount { amount currency } }`;
const REFUND = `refund { id amount { amount currency } }`;

const LIVE = new Set(["FUTURE", "TRIAL", "ACTIVE", "OVERDUE", "SUSPENDED", "AWAITING_REINSTATE"]);

function itemOptions(s) {
  return s.items.map((i) => [i.id, `${i.product.sku}: ${i.quantity} × ${money(i.unitPrice)}`]);
}

function paidRenewals(s) {
  return s.renewals.edges.map((e) => e.node).filter((r) => r.status === "PAID" || Number(r.refundedAmount.amount) > 0);
}

export function actionsFor(s, features) {
  const mutations = features.mutations;
  const can = (name) => mutations.size === 0 || mutations.has(name);
  const list = [
    {
      name: "change-next-renewal",
      label: "Change next renewal date",
      mutation: "changeNextRenewalDate",
      input: "ChangeNextRenewalDateInput",
      applies: LIVE.has(s.status),
      fields: [{ name: "date", label: "New next renewal date", type: "date", value: s.nextRenewalDate, required: true }],
      build: (v) => ({ subscriptionId: s.id, date: v.date }),
    },
    {
      name: "change-price",
      label: "Change price",
      mutation: "updateItem",
      input: "UpdateItemInput",
      extra: RENEWAL,
      applies: LIVE.has(s.status) && s.items.length > 0,
      fields: [
        { name: "itemId", label: "Item", type: "select", options: itemOptions(s) },
        { name: "unitPrice", label: `New unit price (${s.currency})`, type: "text", value: s.items[0]?.unitPrice.amount, required: true },
        { name: "effective", label: "Takes effect", type: "select", options: [["IMMEDIATE", "now"], ["NEXT_RENEWAL", "at the next renewal"]] },
        { name: "proration", label: "Proration", type: "select", options: [["NONE", "none"], ["PRORATED", "prorated"], ["FULL", "full"]] },
        { name: "consentReference", label: "Consent reference (needed when the price goes up)", type: "text" },
      ],
      build: (v) => ({
        subscriptionId: s.id,
        itemId: v.itemId,
        unitPrice: { amount: v.unitPrice, currency: s.currency },
        effective: v.effective,
        proration: v.proration,
        consentReference: v.consentReference || null,
      }),
    },
    {
      name: "force-bill",
      label: "Force Bill NOW",
      mutation: "forceBill",
      input: "ForceBillInput",
      extra: RENEWAL,
      applies: LIVE.has(s.status),
      fields: has(features.inputs.ForceBillInput, "allowRepeat")
        ? [{ name: "allowRepeat", label: "Bill again even if this period was just billed", type: "checkbox" }]
        : [],
      build: (v) => ({ subscriptionId: s.id, ...(v.allowRepeat ? { allowRepeat: true } : {}) }),
    },
    {
      name: "renew-now",
      label: "Renew now",
      mutation: "renewNow",
      input: "RenewNowInput",
      extra: RENEWAL,
      applies: LIVE.has(s.status),
      fields: [
        { name: "mode", label: "Mode", type: "select", options: [["EXTEND", "extend: the next renewal moves one period on"], ["RESTART", "restart: the period starts today"]] },
        { name: "unitPrice", label: `Custom price (${s.currency}, optional)`, type: "text" },
        { name: "consentReference", label: "Consent reference (needed when the price goes up)", type: "text" },
      ],
      build: (v) => ({
        subscriptionId: s.id,
        mode: v.mode,
        unitPrice: v.unitPrice ? { amount: v.unitPrice, currency: s.currency } : null,
        consentReference: v.consentReference || null,
      }),
    },
    {
      name: "suspend",
      label: "Suspend",
      mutation: "suspendSubscription",
      input: "SuspendSubscriptionInput",
      applies: ["TRIAL", "ACTIVE", "OVERDUE"].includes(s.status),
      fields: [],
      build: () => ({ subscriptionId: s.id }),
    },
    {
      name: "activate",
      label: "Activate",
      mutation: "activateSubscription",
      input: "ActivateSubscriptionInput",
      applies: ["SUSPENDED", "AWAITING_REINSTATE"].includes(s.status),
      fields: [],
      build: () => ({ subscriptionId: s.id }),
    },
    {
      name: "resume",
      label: "Resume (undo the scheduled end)",
      mutation: "resumeSubscription",
      input: "ResumeSubscriptionInput",
      applies: mutations.has("resumeSubscription") && LIVE.has(s.status) && (s.cancelAtPeriodEnd || Boolean(s.endDate)),
      fields: [],
      build: () => ({ subscriptionId: s.id }),
    },
    {
      name: "change-profile",
      label: "Change profile",
      mutation: "changeProfile",
      input: "ChangeProfileInput",
      applies: LIVE.has(s.status),
      fields: [{ name: "profileId", label: "Subscription profile", type: "select", options: profileOptions, value: s.profile.id }],
      build: (v) => ({ subscriptionId: s.id, profileId: v.profileId }),
    },
    {
      name: "shipping-address",
      label: "Change shipping address",
      mutation: "updateShippingAddress",
      input: "UpdateShippingAddressInput",
      applies: LIVE.has(s.status),
      fields: [
        { name: "line1", label: "Address", type: "text", value: s.shippingAddress?.line1, required: true },
        { name: "line2", label: "Address, line 2", type: "text", value: s.shippingAddress?.line2 },
        { name: "postalCode", label: "Postal code", type: "text", value: s.shippingAddress?.postalCode },
        { name: "city", label: "City", type: "text", value: s.shippingAddress?.city, required: true },
        { name: "region", label: "Region", type: "text", value: s.shippingAddress?.region },
        { name: "country", label: "Country (two letters)", type: "text", value: s.shippingAddress?.country, required: true },
      ],
      build: (v) => ({
        subscriptionId: s.id,
        address: { line1: v.line1, line2: v.line2 || null, postalCode: v.postalCode || null, city: v.city, region: v.region || null, country: v.country },
      }),
    },
    {
      name: "set-gateway",
      label: "Set gateway",
      mutation: "setGateway",
      input: "SetGatewayInput",
      applies: LIVE.has(s.status),
      fields: [
        { name: "gatewayId", label: "Gateway", type: "text", value: s.gatewayId, required: true },
        { name: "mode", label: "Mode", type: "select", options: [["PREFERRED", "preferred: used first, others if it fails"], ["FORCED", "forced: only this gateway"]], value: s.gatewayMode },
      ],
      build: (v) => ({ subscriptionId: s.id, gatewayId: v.gatewayId, mode: v.mode }),
    },
    {
      name: "renewal-type",
      label: "Set renewal type",
      mutation: "setRenewalType",
      input: "SetRenewalTypeInput",
      applies: LIVE.has(s.status),
      fields: [{ name: "renewalType", label: "Renewal type", type: "select", options: [["AUTOMATIC", "automatic: charged on schedule"], ["MANUAL", "manual: the customer renews"]], value: s.renewalType === "AUTOMATIC" ? "MANUAL" : "AUTOMATIC" }],
      build: (v) => ({ subscriptionId: s.id, renewalType: v.renewalType }),
    },
    {
      name: "cancel",
      label: "Cancel Subscription",
      mutation: "cancelSubscription",
      input: "CancelSubscriptionInput",
      extra: REFUND,
      danger: true,
      applies: LIVE.has(s.status),
      fields: [
        { name: "atPeriodEnd", label: "At the end of the current period (otherwise now)", type: "checkbox" },
        { name: "refundLastRenewal", label: "Refund the last card renewal", type: "checkbox" },
        { name: "cancelFulfillment", label: "Cancel the last renewal's fulfillment (not shipped yet)", type: "checkbox" },
        ...(s.contract
          ? [{ name: "overrideContract", label: `Now despite the contract (until ${s.contract.endDate}): bills its early termination fee`, type: "checkbox" }]
          : []),
      ],
      build: (v) => ({
        subscriptionId: s.id,
        atPeriodEnd: Boolean(v.atPeriodEnd),
        refundLastRenewal: Boolean(v.refundLastRenewal),
        cancelFulfillment: Boolean(v.cancelFulfillment),
        ...(s.contract ? { overrideContract: Boolean(v.overrideContract) } : {}),
      }),
    },
    {
      name: "refund",
      label: "Refund",
      mutation: "refundRenewal",
      input: "RefundRenewalInput",
      extra: RENEWAL,
      applies: paidRenewals(s).length > 0,
      fields: [
        { name: "renewalId", label: "Renewal", type: "select", options: paidRenewals(s).map((r) => [r.id, `cycle ${r.cycle}: ${money(r.amount)} paid, ${money(r.refundedAmount)} refunded`]) },
        { name: "amount", label: `Amount (${s.currency}; empty = all that is left)`, type: "text" },
      ],
      build: (v) => ({ renewalId: v.renewalId, amount: v.amount ? { amount: v.amount, currency: s.currency } : null }),
    },
  ];
  return list.filter((a) => a.applies && can(a.mutation));
}

function control(f, initial) {
  const start = initial[f.name] ?? f.value ?? "";
  if (f.type === "textarea") return h("textarea", { name: f.name, rows: 3, maxlength: f.maxlength }, start);
  if (f.type === "select")
    return h("select", { name: f.name }, f.options.map(([v, label]) => h("option", { value: v, selected: v === start ? "selected" : null }, label)));
  if (f.type === "checkbox") return h("input", { type: "checkbox", name: f.name, checked: Boolean(start) });
  return h("input", { type: f.type, name: f.name, value: start, required: f.required ? "required" : null, min: f.min, max: f.max, maxlength: f.maxlength });
}

function read(form, fields) {
  const values = {};
  for (const f of fields) {
    const el = form.elements.namedItem(f.name);
    values[f.name] = f.type === "checkbox" ? el.checked : el.value.trim();
  }
  values.reason = form.elements.namedItem("reason").value.trim();
  return values;
}

// An action may name what its payload returns instead of the subscription (``selection``), say that its input
// takes no expectedVersion (``versioned: false``), and add rows (``watch``, ``rows``), consequences
// (``consequences``) and a view of its own (``details``, e.g. an invoice's lines after) to what its dry run shows.
function mutationText(action) {
  return `mutation Act($input: ${action.input}!) {
    result: ${action.mutation}(input: $input) {
      dryRun userErrors { field code message } ${action.selection ?? SUBSCRIPTION} ${action.extra || ""}
    }
  }`;
}

const WATCHED = [
  ["Status", (x) => x.status],
  ["Next renewal", (x) => x.nextRenewalDate],
  ["Trial ends", (x) => x.trialEndDate],
  ["Current period ends", (x) => x.currentPeriodEnd],
  ["Ends", (x) => x.endDate],
  ["Cancels at period end", (x) => x.cancelAtPeriodEnd],
  ["Renewal type", (x) => x.renewalType],
  ["Renewals billed", (x) => x.occurrencesBilled],
  ["Amount", (x) => money(x.amount)],
  ["Profile", (x) => x.profile?.name],
  ["Gateway", (x) => (x.gatewayId ? `${x.gatewayId} (${(x.gatewayMode || "").toLowerCase()})` : null)],
  ["Shipping address", (x) => (x.shippingAddress ? [x.shippingAddress.line1, x.shippingAddress.line2, x.shippingAddress.postalCode, x.shippingAddress.city, x.shippingAddress.region, x.shippingAddress.country].filter(Boolean).join(", ") : null)],
];

async function profileOptions(s) {
  const data = await gql(`{ profiles(first: 50) { edges { node { id name cadence { unit count } } } } }`);
  const options = data.profiles.edges.map(({ node: p }) => [p.id, `${p.name} (every ${p.cadence.count} ${p.cadence.unit.toLowerCase()})`]);
  if (!options.some(([id]) => id === s.profile.id)) options.unshift([s.profile.id, `${s.profile.name} (current)`]);
  return options;
}

// What the dry run says would change, in words a person checks before confirming.
function outcome(before, result, action = {}) {
  const rows = [];
  const after = result.subscription;
  if (after) {
    for (const [label, get] of [...WATCHED, ...(action.watch || [])]) {
      const b = get(before);
      const a = get(after);
      if (value(b) !== value(a)) rows.push([label, value(b), value(a)]);
    }
    for (const item of after.items || []) {
      const old = before.items.find((i) => i.id === item.id);
      if (!old) rows.push([`Item ${item.product.sku}`, "—", `${item.quantity} × ${money(item.unitPrice)}`]);
      else {
        if (old.unitPrice.amount !== item.unitPrice.amount) rows.push([`${item.product.sku} unit price`, money(old.unitPrice), money(item.unitPrice)]);
        if (old.quantity !== item.quantity) rows.push([`${item.product.sku} quantity`, old.quantity, item.quantity]);
        if (value(old.pendingUnitPrice) !== value(item.pendingUnitPrice)) rows.push([`${item.product.sku} price from next renewal`, money(old.pendingUnitPrice), money(item.pendingUnitPrice)]);
      }
    }
  }
  const charges = [];
  if (result.renewal) {
    const r = result.renewal;
    charges.push(`Renewal cycle ${r.cycle} (${r.periodStart} → ${r.periodEnd}): charges ${money(r.amount)}${Number(r.refundedAmount?.amount) ? `, refunded ${money(r.refundedAmount)}` : ""} — ${r.status.toLowerCase()}`);
  }
  if (result.refund) charges.push(`Refund of ${money(result.refund.amount)}`);
  if (action.rows) rows.push(...action.rows(before, result));
  if (action.consequences) charges.push(...action.consequences(before, result));
  return { rows, charges };
}

function outcomeView(title, before, result, action) {
  const { rows, charges } = outcome(before, result, action);
  return h(
    "div",
    { class: "outcome" },
    h("h3", {}, title),
    charges.length ? h("ul", { class: "charges" }, charges.map((c) => h("li", {}, c))) : h("p", { class: "muted" }, "Nothing is charged or refunded."),
    rows.length
      ? h(
          "table",
          { class: "changes" },
          h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Now"), h("th", {}, "After"))),
          h("tbody", {}, rows.map(([f, b, a]) => h("tr", {}, h("td", {}, f), h("td", { class: "before" }, String(b)), h("td", { class: "after" }, String(a))))),
        )
      : h("p", { class: "muted" }, `No field of the ${action.subject || "subscription"} changes.`),
    action.details ? action.details(before, result) : null,
  );
}

export async function openAction(action, s, panel, reload, initial = {}) {
  const init = {};
  if (initial.renewal) init.renewalId = initial.renewal.id;
  const fields = [];
  for (const f of action.fields) {
    if (typeof f.options === "function") {
      clear(panel, spinner("Loading…"));
      try {
        fields.push({ ...f, options: await f.options(s) });
      } catch (exc) {
        clear(panel, errorBox(exc.message));
        return;
      }
    } else fields.push(f);
  }
  action = { ...action, fields };
  const form = h(
    "form",
    { class: "action-form", dataset: { action: action.name } },
    h("h2", {}, action.label),
    action.fields.map((f) =>
      f.type === "checkbox"
        ? h("label", { class: "field check" }, control(f, init), " ", f.label)
        : h("label", { class: "field" }, h("span", {}, f.label), control(f, init)),
    ),
    h(
      "label",
      { class: "field" },
      h("span", {}, action.reasonLabel || "Reason (kept in the history)"),
      h("input", { name: "reason", type: "text", placeholder: "e.g. customer asked by phone", required: action.reasonRequired ? "required" : null }),
    ),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit", class: "primary", name: "dry-run" }, "Dry run"),
      h("button", { type: "button", onclick: () => clear(panel) }, "Close"),
    ),
  );
  const result = h("div", { class: "result" });
  clear(panel, form, result);
  panel.scrollIntoView({ block: "nearest" });
  let input = null;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showUserErrors(form, []);
    const values = read(form, action.fields);
    input = { ...action.build(values), reason: values.reason || null, ...(action.versioned === false ? {} : { expectedVersion: s.version }) };
    clear(result, spinner("Dry run…"));
    let data;
    try {
      data = await gql(mutationText(action), { input: { ...input, dryRun: true } });
    } catch (exc) {
      clear(result, errorBox(exc.message));
      return;
    }
    const payload = data.result;
    if (payload.userErrors.length) {
      clear(result);
      showUserErrors(form, payload.userErrors);
      return;
    }
    const confirm = h("button", { type: "button", class: action.danger ? "danger" : "primary", name: "confirm" }, `Confirm: ${action.label}`);
    confirm.addEventListener("click", () => run(confirm));
    clear(result, h("div", { class: "dry-run", id: "dry-run" }, outcomeView("Dry run: nothing is stored yet", s, payload, action), h("div", { class: "buttons" }, confirm, h("button", { type: "button", onclick: () => clear(result) }, "Not now"))));
  });

  async function run(button) {
    button.disabled = true;
    const status = spinner("Applying…");
    button.after(status);
    let data;
    try {
      data = await gql(mutationText(action), { input: { ...input, dryRun: false, idempotencyKey: newIdempotencyKey() } });
    } catch (exc) {
      status.replaceWith(errorBox(exc.message));
      button.disabled = false;
      return;
    }
    const payload = data.result;
    if (payload.userErrors.length) {
      status.remove();
      clear(result);
      showUserErrors(form, payload.userErrors);
      return;
    }
    const { charges } = outcome(s, payload, action);
    reload(`${action.label}: done.${charges.length ? " " + charges.join("; ") : ""}`);
  }
}
