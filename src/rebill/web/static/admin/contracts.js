// A subscription's contract (DOMAIN.md "Contract terms"): its terms on the overview, and the actions that
// attach, change or remove it; each runs as a dry run first, like every console action.
import { h, money } from "./dom.js";
import { openAction } from "./actions.js";

export const CONTRACT_FIELDS = `contract { startDate endDate term { unit count } noticeDays actionAtTermEnd
  earlyTerminationFee { amount currency } cancellationEffectiveDate } cancellationDate`;

const UNITS = [["MONTH", "months"], ["YEAR", "years"], ["WEEK", "weeks"], ["DAY", "days"]];
const ACTIONS = [["RENEW", "renew for another term"], ["EVERGREEN", "end the contract, keep billing"], ["CANCEL", "cancel the subscription"]];
const LIVE = new Set(["FUTURE", "TRIAL", "ACTIVE", "OVERDUE", "SUSPENDED", "AWAITING_REINSTATE"]);

const WATCH = [
  ["Contract ends", (x) => x.contract?.endDate],
  ["Term", (x) => (x.contract ? `${x.contract.term.count} ${x.contract.term.unit.toLowerCase()}` : null)],
  ["Notice (days)", (x) => x.contract?.noticeDays],
  ["At the term's end", (x) => x.contract?.actionAtTermEnd],
  ["Early termination fee", (x) => (x.contract?.earlyTerminationFee ? money(x.contract.earlyTerminationFee) : null)],
  ["A cancellation today takes effect", (x) => x.contract?.cancellationEffectiveDate],
];

function termsFields(s, c) {
  return [
    { name: "termCount", label: "Term length", type: "number", value: c ? c.term.count : 12, min: 1, max: 1000, required: true },
    { name: "termUnit", label: "Term unit", type: "select", options: UNITS, value: c ? c.term.unit : "MONTH" },
    { name: "startDate", label: "Start (empty: the current period's start)", type: "date", value: c ? c.startDate : "" },
    { name: "noticeDays", label: "Notice period (days before the term's end)", type: "number", value: c ? c.noticeDays : 0, min: 0, max: 3660 },
    { name: "actionAtTermEnd", label: "At the term's end", type: "select", options: ACTIONS, value: c ? c.actionAtTermEnd : "RENEW" },
    { name: "fee", label: `Early termination fee (${s.currency}; empty: none)`, type: "text", value: c?.earlyTerminationFee?.amount || "" },
  ];
}

function termsInput(s, v) {
  return {
    subscriptionId: s.id,
    term: { unit: v.termUnit, count: Number(v.termCount) },
    startDate: v.startDate || null,
    noticeDays: v.noticeDays === "" ? 0 : Number(v.noticeDays),
    actionAtTermEnd: v.actionAtTermEnd,
    earlyTerminationFee: v.fee ? { amount: v.fee, currency: s.currency } : null,
  };
}

export function contractActions(s) {
  const c = s.contract;
  const extra = `subscription { ${CONTRACT_FIELDS} }`;
  if (!c) {
    return [
      {
        name: "attach-contract",
        label: "Attach a contract",
        mutation: "attachContract",
        input: "AttachContractInput",
        extra,
        applies: LIVE.has(s.status),
        fields: termsFields(s, null),
        build: (v) => termsInput(s, v),
        watch: WATCH,
      },
    ];
  }
  return [
    {
      name: "update-contract",
      label: "Change the contract",
      mutation: "updateContract",
      input: "UpdateContractInput",
      extra,
      applies: LIVE.has(s.status),
      fields: termsFields(s, c),
      build: (v) => termsInput(s, v),
      watch: WATCH,
    },
    {
      name: "remove-contract",
      label: "Remove the contract",
      mutation: "removeContract",
      input: "RemoveContractInput",
      extra,
      danger: true,
      applies: LIVE.has(s.status),
      fields: [],
      build: () => ({ subscriptionId: s.id }),
      watch: WATCH,
    },
  ];
}

// The overview's contract card: the terms, when a cancellation would take effect, and its actions.
export function contractCard(s, panel, reload) {
  const c = s.contract;
  const facts = c
    ? [
        ["Term", `${c.startDate} → ${c.endDate} (${c.term.count} ${c.term.unit.toLowerCase()})`],
        ["Notice", `${c.noticeDays} days`],
        ["At the term's end", c.actionAtTermEnd.toLowerCase()],
        ["Early termination fee", c.earlyTerminationFee ? money(c.earlyTerminationFee) : "none"],
        ["A cancellation today takes effect", c.cancellationEffectiveDate || "—"],
      ]
    : [["Contract", "none: the subscription can be cancelled at any time"]];
  if (s.cancellationDate) facts.push(["Cancellation scheduled for", s.cancellationDate]);
  return h(
    "section",
    { class: "card", id: "contract" },
    h("h2", {}, "Contract"),
    h("dl", { class: "facts" }, facts.map(([term, detail]) => [h("dt", {}, term), h("dd", {}, detail)])),
    h(
      "div",
      { class: "actions" },
      contractActions(s)
        .filter((action) => action.applies)
        .map((action) =>
          h(
            "button",
            { type: "button", class: action.danger ? "danger" : "", dataset: { action: action.name }, onclick: () => openAction(action, s, panel, reload) },
            action.label,
          ),
        ),
    ),
  );
}
