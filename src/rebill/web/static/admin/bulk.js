// The bulk editor: a plan (form and JSON side by side), its preview, runs with a limit, live progress,
// items, cancel and revert, and the runs started before.
import { gql, has, serverFeatures } from "./api.js";
import { clear, errorBox, h, money, moneyList, showUserErrors, spinner, statusBadge, value, when } from "./dom.js";

const STATUSES = ["FUTURE", "TRIAL", "ACTIVE", "OVERDUE", "SUSPENDED", "AWAITING_REINSTATE"];
const UNITS = ["DAY", "WEEK", "MONTH", "YEAR"];

// Each action: its JSON key, a label, and its parameters as [dotted path, label, kind, options].
const ACTIONS = {
  shiftNextRenewal: { label: "Shift next renewal", params: [["count", "by", "number"], ["unit", "", "select", UNITS]], start: { unit: "DAY", count: 14 } },
  setNextRenewalDate: { label: "Set next renewal date", params: [["date", "to", "date"]], start: { date: "" } },
  setUnitPrice: { label: "Set unit price", params: [["unitPrice.amount", "amount", "text"], ["unitPrice.currency", "currency", "text"], ["consentReference", "consent ref.", "text"]], start: { unitPrice: { amount: "", currency: "USD" } } },
  adjustPrice: { label: "Adjust price by percent", params: [["percent", "percent (-10 = 10 % off)", "text"], ["consentReference", "consent ref.", "text"]], start: { percent: "-10" } },
  setQuantity: { label: "Set quantity", params: [["quantity", "to", "number"]], start: { quantity: 1 } },
  setRenewalType: { label: "Set renewal type", params: [["renewalType", "", "select", ["AUTOMATIC", "MANUAL"]]], start: { renewalType: "MANUAL" } },
  setGateway: { label: "Set gateway", params: [["gatewayId", "gateway", "text"], ["mode", "", "select", ["PREFERRED", "FORCED"]]], start: { gatewayId: "sandbox", mode: "PREFERRED" } },
  clearGateway: { label: "Clear gateway", params: [], start: true },
  changeProfile: { label: "Change profile", params: [["profileId", "profile id", "text"]], start: { profileId: "" } },
  applyCoupon: { label: "Apply coupon", params: [["code", "code", "text"]], start: { code: "" } },
  removeCoupon: { label: "Remove coupon", params: [["code", "code", "text"]], start: { code: "" } },
  suspend: { label: "Suspend", params: [], start: true },
  activate: { label: "Activate", params: [], start: true },
  cancel: { label: "Cancel", params: [["atPeriodEnd", "at period end", "checkbox"]], start: { atPeriodEnd: true } },
};

const EXAMPLE_PLAN = {
  filter: { status: ["ACTIVE", "TRIAL"] },
  segments: [{ name: "everyone", actions: [{ shiftNextRenewal: { unit: "DAY", count: 14 } }] }],
};

const RUN_FIELDS = `id status dryRun limit total processed applied skipped failed conflicts createdBy createdAt
  startedAt finishedAt revertedAt cancelRequested error plan planHash`;

const RUNS_KEY = "rebill.bulkRuns";

function rememberRun(id) {
  const ids = JSON.parse(localStorage.getItem(RUNS_KEY) || "[]").filter((x) => x !== id);
  ids.unshift(id);
  localStorage.setItem(RUNS_KEY, JSON.stringify(ids.slice(0, 20)));
}

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setPath(obj, path, v) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] = typeof o[k] === "object" && o[k] !== null ? o[k] : {};
  if (v === "" || v === undefined) delete o[keys[keys.length - 1]];
  else o[keys[keys.length - 1]] = v;
}

let state = { plan: structuredClone(EXAMPLE_PLAN), preview: null };

export async function renderBulk(root, navigate) {
  const formBox = h("div", { class: "plan-form", id: "plan-form" });
  const json = h("textarea", { id: "plan-json", name: "plan", spellcheck: "false", rows: 24, "aria-label": "Plan JSON" });
  const jsonError = h("div", { class: "field-note" });
  const previewBox = h("div", { class: "preview", id: "preview" });
  const runsBox = h("div", { class: "past-runs", id: "past-runs" });
  const limit = h("input", { type: "number", name: "limit", min: 1, value: "10", id: "run-limit" });
  const dry = h("input", { type: "checkbox", name: "dryRun", id: "run-dry" });
  const startForm = h(
    "form",
    { class: "start-run", id: "start-run" },
    h("label", { class: "field" }, h("span", {}, "Limit (change at most)"), limit),
    h("label", { class: "field check" }, dry, " record outcomes only (dry run)"),
    h("button", { type: "submit", class: "primary", name: "start", disabled: "disabled" }, "Start run"),
    h("span", { class: "muted" }, " Preview first: a run starts from what its preview saw."),
  );

  const writeJson = () => {
    json.value = JSON.stringify(state.plan, null, 2);
    jsonError.textContent = "";
    state.preview = null;
    startForm.elements.namedItem("start").disabled = true;
    clear(previewBox);
  };
  const rerender = () => {
    renderForm(formBox, state.plan, () => writeJson(), rerender);
    writeJson();
  };
  json.addEventListener("change", () => {
    try {
      const parsed = JSON.parse(json.value);
      if (!parsed || !Array.isArray(parsed.segments)) throw new Error("a plan needs a list of segments");
      state.plan = parsed;
      renderForm(formBox, state.plan, () => writeJson(), rerender);
      jsonError.textContent = "";
      state.preview = null;
      startForm.elements.namedItem("start").disabled = true;
    } catch (exc) {
      jsonError.textContent = "Not a plan: " + exc.message;
      jsonError.className = "field-error";
    }
  });

  const previewButton = h("button", { type: "button", class: "primary", id: "preview-button" }, "Preview");
  previewButton.addEventListener("click", () => preview(previewBox, startForm));

  startForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showUserErrors(startForm, []);
    const input = { plan: state.plan, limit: limit.value ? Number(limit.value) : null, dryRun: dry.checked, asOf: state.preview?.previewedAt || null };
    let data;
    try {
      data = await gql(`mutation Start($input: StartBulkRunInput!) { startBulkRun(input: $input) { userErrors { field code message } run { id } } }`, { input });
    } catch (exc) {
      showUserErrors(startForm, [{ field: null, code: "ERROR", message: exc.message }]);
      return;
    }
    const payload = data.startBulkRun;
    if (payload.userErrors.length) {
      showUserErrors(startForm, payload.userErrors);
      return;
    }
    rememberRun(payload.run.id);
    navigate(`#/bulk/run/${encodeURIComponent(payload.run.id)}`);
  });

  clear(
    root,
    h("h1", {}, "Bulk editor"),
    h(
      "div",
      { class: "plan-editor" },
      h("section", { class: "card" }, h("h2", {}, "Plan"), formBox),
      h("section", { class: "card" }, h("h2", {}, "The plan as JSON"), h("p", { class: "muted" }, "The same shape as a rebill bulk plan file; edit either side."), json, jsonError),
    ),
    h("div", { class: "buttons" }, previewButton, h("button", { type: "button", onclick: () => { state.plan = structuredClone(EXAMPLE_PLAN); rerender(); } }, "Start over")),
    previewBox,
    h("section", { class: "card" }, h("h2", {}, "Run"), startForm),
    h("section", { class: "card" }, h("h2", {}, "Past runs"), runsBox),
  );
  rerender();
  pastRuns(runsBox, navigate);
}

function renderForm(box, plan, changed, rerender) {
  plan.filter = plan.filter || {};
  const f = plan.filter;
  const statuses = new Set(f.status || []);
  const filterBox = h(
    "fieldset",
    { class: "plan-filter" },
    h("legend", {}, "Which subscriptions (filter)"),
    h(
      "div",
      { class: "statuses" },
      STATUSES.map((s) =>
        h("label", {}, h("input", { type: "checkbox", checked: statuses.has(s), onchange: (e) => { e.target.checked ? statuses.add(s) : statuses.delete(s); f.status = [...statuses]; if (!f.status.length) delete f.status; changed(); } }), " ", s.toLowerCase()),
      ),
    ),
    h(
      "div",
      { class: "grid" },
      filterInput(f, "nextRenewalFrom", "Next renewal from", "date", changed),
      filterInput(f, "nextRenewalTo", "to", "date", changed),
      filterInput(f, "customerEmail", "Customer email", "text", changed),
      filterInput(f, "amountMin", "Amount from", "text", changed),
      filterInput(f, "amountMax", "to", "text", changed),
      filterInput(f, "currency", "Currency", "text", changed),
      filterSelect(f, "renewalType", "Renewal type", [["AUTOMATIC", "automatic"], ["MANUAL", "manual"]], (v) => v, changed),
      filterSelect(f, "inTrial", "In trial", [["yes", "yes"], ["no", "no"]], (v) => v === "yes", changed),
      filterSelect(f, "gatewayMode", "Gateway mode", [["FORCED", "forced"], ["PREFERRED", "preferred"]], (v) => [v], changed),
      filterSelect(f, "hasGateway", "Has gateway", [["yes", "yes"], ["no", "no"]], (v) => v === "yes", changed),
    ),
  );
  const segments = plan.segments.map((segment, index) => segmentBox(plan, segment, index, changed, rerender));
  clear(
    box,
    filterBox,
    segments,
    h("button", { type: "button", onclick: () => { plan.segments.push({ name: `segment ${plan.segments.length + 1}`, actions: [{ shiftNextRenewal: { unit: "DAY", count: 7 } }] }); rerender(); } }, "+ Segment"),
  );
}

// A select for a filter key; ``toValue`` turns the chosen option into the plan's value.
function filterSelect(obj, key, label, options, toValue, changed) {
  const current = obj[key];
  const selected = (v) => {
    if (current === undefined) return false;
    return JSON.stringify(toValue(v)) === JSON.stringify(current);
  };
  return h(
    "label",
    { class: "field" },
    h("span", {}, label),
    h(
      "select",
      { name: key, onchange: (e) => { if (e.target.value) obj[key] = toValue(e.target.value); else delete obj[key]; changed(); } },
      h("option", { value: "" }, "any"),
      options.map(([v, text]) => h("option", { value: v, selected: selected(v) ? "selected" : null }, text)),
    ),
  );
}

function filterInput(obj, key, label, type, changed) {
  return h(
    "label",
    { class: "field" },
    h("span", {}, label),
    h("input", { type, name: key, value: obj[key] ?? "", oninput: (e) => { setPath(obj, key, e.target.value.trim()); changed(); } }),
  );
}

function segmentBox(plan, segment, index, changed, rerender) {
  segment.actions = segment.actions || [];
  const when = segment.when || {};
  const trial = when.inTrial === true ? "yes" : when.inTrial === false ? "no" : "";
  const setWhen = (key, v) => {
    segment.when = segment.when || {};
    if (v === undefined) delete segment.when[key];
    else segment.when[key] = v;
    if (!Object.keys(segment.when).length) delete segment.when;
    changed();
  };
  return h(
    "fieldset",
    { class: "segment", dataset: { index } },
    h("legend", {}, `Segment ${index + 1}`),
    h(
      "div",
      { class: "grid" },
      h("label", { class: "field" }, h("span", {}, "Name"), h("input", { name: "segment-name", value: segment.name, oninput: (e) => { segment.name = e.target.value; changed(); } })),
      h(
        "label",
        { class: "field" },
        h("span", {}, "In trial"),
        h("select", { onchange: (e) => setWhen("inTrial", e.target.value === "" ? undefined : e.target.value === "yes") }, ["", "yes", "no"].map((v) => h("option", { value: v, selected: v === trial ? "selected" : null }, v || "any"))),
      ),
      h(
        "label",
        { class: "field" },
        h("span", {}, "Gateway mode"),
        h("select", { onchange: (e) => setWhen("gatewayMode", e.target.value ? [e.target.value] : undefined) }, ["", "FORCED", "PREFERRED"].map((v) => h("option", { value: v, selected: (when.gatewayMode || [""])[0] === v ? "selected" : null }, v.toLowerCase() || "any"))),
      ),
      h("button", { type: "button", onclick: () => { plan.segments.splice(index, 1); rerender(); } }, "Remove segment"),
    ),
    h("div", { class: "muted" }, index === plan.segments.length - 1 && !segment.when ? "Takes every subscription no earlier segment took." : ""),
    segment.actions.map((action, i) => actionRow(segment, action, i, changed, rerender)),
    h("button", { type: "button", onclick: () => { segment.actions.push({ shiftNextRenewal: { unit: "DAY", count: 7 } }); rerender(); } }, "+ Action"),
  );
}

function actionRow(segment, action, i, changed, rerender) {
  const kind = Object.keys(action)[0];
  const spec = ACTIONS[kind];
  const typeSelect = h(
    "select",
    { name: "action-type", onchange: (e) => { segment.actions[i] = { [e.target.value]: structuredClone(ACTIONS[e.target.value].start) }; rerender(); } },
    Object.entries(ACTIONS).map(([k, a]) => h("option", { value: k, selected: k === kind ? "selected" : null }, a.label)),
    spec ? null : h("option", { value: kind, selected: "selected" }, `${kind} (edit in JSON)`),
  );
  const params = (spec ? spec.params : []).map(([path, label, type, options]) => {
    const current = getPath(action[kind], path);
    const update = (v) => { setPath(action[kind], path, v); changed(); };
    let input;
    if (type === "select") input = h("select", { onchange: (e) => update(e.target.value) }, options.map((o) => h("option", { value: o, selected: o === current ? "selected" : null }, o.toLowerCase())));
    else if (type === "checkbox") input = h("input", { type: "checkbox", checked: Boolean(current), onchange: (e) => update(e.target.checked) });
    else if (type === "number") input = h("input", { type: "number", value: current ?? "", name: path, oninput: (e) => update(e.target.value === "" ? "" : Number(e.target.value)) });
    else input = h("input", { type, value: current ?? "", name: path, oninput: (e) => update(e.target.value.trim()) });
    return h("label", { class: "param" }, label ? h("span", {}, label) : null, input);
  });
  return h(
    "div",
    { class: "action-row" },
    typeSelect,
    params,
    h("button", { type: "button", title: "Remove this action", onclick: () => { segment.actions.splice(i, 1); rerender(); } }, "×"),
  );
}

// Whether this server's previews show the MRR change (BulkPreview.mrrBefore / mrrAfter): asked once.
let previewFields = null;

async function previewShowsMrr() {
  if (previewFields === null) {
    try {
      const data = await gql(`query PreviewFields { __type(name: "BulkPreview") { fields { name } } }`);
      previewFields = new Set(data.__type ? data.__type.fields.map((f) => f.name) : []);
    } catch {
      previewFields = new Set();
    }
  }
  return previewFields.has("mrrBefore") && previewFields.has("mrrAfter");
}

async function preview(box, startForm) {
  clear(box, spinner("Previewing…"));
  let data;
  let withMrr = false;
  try {
    withMrr = await previewShowsMrr();
    const mrr = withMrr ? "mrrBefore { amount currency } mrrAfter { amount currency }" : "";
    data = await gql(
      `query Preview($plan: BulkPlanInput!) { bulkPreview(plan: $plan, sample: 5) {
        previewedAt planHash matched unsegmented alreadyApplied
        billedBefore { amount currency } billedAfter { amount currency } ${mrr}
        segments { name matched billedBefore { amount currency } billedAfter { amount currency } ${mrr}
          refused { count reasons { code count message exampleSubscriptionId } }
          sample { subscriptionId refused code reason changes { field before after } } }
      } }`,
      { plan: state.plan },
    );
  } catch (exc) {
    clear(box, errorBox(exc.message));
    return;
  }
  const p = data.bulkPreview;
  state.preview = p;
  startForm.elements.namedItem("start").disabled = false;
  clear(
    box,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Preview ", h("span", { class: "muted" }, `as of ${when(p.previewedAt)}`)),
      h(
        "p",
        { class: "preview-summary" },
        h("strong", { id: "preview-matched" }, `${p.matched} subscriptions match`),
        ` · ${p.unsegmented} in no segment · ${p.alreadyApplied} already changed by this plan`,
        h("br"),
        `One renewal of each bills ${moneyList(p.billedBefore)} today, ${moneyList(p.billedAfter)} after.`,
        withMrr ? h("br") : null,
        withMrr ? h("span", { id: "preview-mrr" }, `MRR ${moneyList(p.mrrBefore)} → ${moneyList(p.mrrAfter)}`) : null,
      ),
      h(
        "table",
        { class: "list", id: "preview-segments" },
        h("thead", {}, h("tr", {}, ["Segment", "Matched", "Billed before", "Billed after", ...(withMrr ? ["MRR before → after"] : []), "Refused"].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          p.segments.map((s) =>
            h(
              "tr",
              {},
              h("td", {}, s.name),
              h("td", { class: "num" }, String(s.matched)),
              h("td", { class: "num" }, moneyList(s.billedBefore)),
              h("td", { class: "num" }, moneyList(s.billedAfter)),
              withMrr ? h("td", { class: "num mrr-change" }, `${moneyList(s.mrrBefore)} → ${moneyList(s.mrrAfter)}`) : null,
              h("td", {}, s.refused.count ? s.refused.reasons.map((r) => h("div", {}, `${r.count} × ${r.code}: ${r.message} (e.g. `, h("a", { href: `#/subscription/${encodeURIComponent(r.exampleSubscriptionId)}` }, r.exampleSubscriptionId), ")")) : "none"),
            ),
          ),
        ),
      ),
      p.segments.map((s) =>
        s.sample.length
          ? h(
              "details",
              { class: "sample" },
              h("summary", {}, `Sample of “${s.name}” (${s.sample.length})`),
              s.sample.map((row) =>
                h(
                  "div",
                  { class: "sample-row" },
                  h("a", { href: `#/subscription/${encodeURIComponent(row.subscriptionId)}`, class: "mono" }, row.subscriptionId),
                  row.refused ? h("span", { class: "field-error" }, ` refused: ${row.code} ${row.reason || ""}`) : null,
                  changesTable(row.changes),
                ),
              ),
            )
          : null,
      ),
    ),
  );
}

function changesTable(changes) {
  if (!changes || !changes.length) return null;
  return h(
    "table",
    { class: "changes" },
    h("tbody", {}, changes.map((c) => h("tr", {}, h("td", { class: "mono" }, c.field), h("td", { class: "before" }, value(c.before)), h("td", { class: "after" }, value(c.after))))),
  );
}

async function pastRuns(box, navigate) {
  const open = h("form", { class: "open-run" }, h("input", { name: "run", placeholder: "Run id", "aria-label": "Run id" }), h("button", { type: "submit" }, "Open run"));
  open.addEventListener("submit", (e) => {
    e.preventDefault();
    const id = open.elements.namedItem("run").value.trim();
    if (id) navigate(`#/bulk/run/${encodeURIComponent(id)}`);
  });
  const fields = "id status dryRun limit total applied failed createdBy createdAt finishedAt revertedAt";
  // A server with a bulkRuns list shows every run; otherwise the runs started from this browser.
  const features = await serverFeatures();
  const listed = Boolean(features.args.Query?.bulkRuns);
  const ids = JSON.parse(localStorage.getItem(RUNS_KEY) || "[]");
  if (!listed && !ids.length) {
    clear(box, h("p", { class: "muted" }, "No run started from this browser yet."), open);
    return;
  }
  clear(box, spinner("Loading runs…"));
  const query = listed
    ? `{ bulkRuns(first: 20) { edges { node { ${fields} } } } }`
    : `{ ${ids.map((id, i) => `r${i}: bulkRun(id: ${JSON.stringify(id)}) { ${fields} }`).join("\n")} }`;
  let data;
  try {
    data = await gql(query);
  } catch (exc) {
    clear(box, errorBox(exc.message), open);
    return;
  }
  const runs = listed ? data.bulkRuns.edges.map((e) => e.node) : Object.values(data).filter(Boolean);
  clear(
    box,
    h("p", { class: "muted" }, listed ? "The latest runs." : "Runs started from this browser, newest first."),
    h(
      "table",
      { class: "list", id: "runs-table" },
      h("thead", {}, h("tr", {}, ["Run", "Status", "Limit", "Applied", "Failed", "By", "Started", "Finished"].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        runs.map((r) =>
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/bulk/run/${encodeURIComponent(r.id)}`, class: "mono" }, r.id), r.dryRun ? " (dry run)" : ""),
            h("td", {}, statusBadge(r.status)),
            h("td", { class: "num" }, r.limit ?? "—"),
            h("td", { class: "num" }, `${r.applied} / ${r.total}`),
            h("td", { class: "num" }, String(r.failed)),
            h("td", {}, r.createdBy),
            h("td", {}, when(r.createdAt)),
            h("td", {}, when(r.finishedAt)),
          ),
        ),
      ),
    ),
    open,
  );
}

let polling = null;

export function stopPolling() {
  if (polling) clearTimeout(polling);
  polling = null;
}

export async function renderRun(root, id, navigate, outcomeFilter = "") {
  stopPolling();
  const head = h("div", { class: "run-head" });
  const itemsBox = h("div", { class: "run-items", id: "run-items" });
  const notice = h("div", { id: "run-notice" });
  clear(root, h("p", { class: "crumbs" }, h("a", { href: "#/bulk" }, "← Bulk editor")), h("h1", {}, "Bulk run ", h("span", { class: "mono" }, id)), notice, head, itemsBox);

  const features = await serverFeatures();
  const consent = has(features.types.BulkRunItem, "consentReference") ? "consentReference" : "";

  // While the run works, its counters are polled often (they cost next to nothing) and its items now and then;
  // every API key has a rate limit, and a page of items with their changes is what costs.
  let polls = 0;
  let items = null;
  async function refresh() {
    const withItems = items === null || polls % 6 === 0;
    polls += 1;
    let data;
    try {
      data = await gql(
        `query Run($id: ID!, $outcome: BulkItemOutcome, $withItems: Boolean!) { bulkRun(id: $id) { ${RUN_FIELDS}
          items(first: 50, outcome: $outcome) @include(if: $withItems) { totalCount edges { node {
            id subscriptionId segment outcome code reason ${consent} changes { field before after } } } } } }`,
        { id, outcome: outcomeFilter || null, withItems },
      );
    } catch (exc) {
      clear(head, errorBox(exc.message));
      return;
    }
    const run = data.bulkRun;
    if (!run) {
      clear(head, errorBox(`No bulk run ${id}.`));
      return;
    }
    const active = ["QUEUED", "RUNNING"].includes(run.status);
    if (run.items) items = run.items;
    else if (!active) {
      // Finished between two item fetches: fetch them once more, now complete.
      items = null;
      refresh();
      return;
    }
    showRun({ ...run, items });
    if (active && location.hash.startsWith(`#/bulk/run/`)) polling = setTimeout(refresh, 700);
  }

  function showRun(run) {
    const total = run.limit ? Math.min(run.total, run.limit) : run.total;
    const percent = total ? Math.round((100 * run.processed) / total) : run.status === "COMPLETED" ? 100 : 0;
    const active = ["QUEUED", "RUNNING"].includes(run.status);
    const cancel = h("button", { type: "button", class: "danger", name: "cancel-run", disabled: active && !run.cancelRequested ? null : "disabled" }, run.cancelRequested && active ? "Cancelling…" : "Cancel run");
    cancel.addEventListener("click", () => mutate(`mutation C($input: CancelBulkRunInput!) { result: cancelBulkRun(input: $input) { userErrors { field code message } run { id status } } }`, "Cancel requested: the run stops once the chunks in progress are committed."));
    const revert = h("button", { type: "button", name: "revert-run", disabled: !active && !run.revertedAt && !run.dryRun && run.applied > 0 ? null : "disabled" }, "Revert run");
    revert.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger", name: "confirm-revert" }, `Confirm: revert ${run.applied} changes`);
      yes.addEventListener("click", () => {
        yes.disabled = true;
        mutate(`mutation R($input: RevertBulkRunInput!) { result: revertBulkRun(input: $input) { userErrors { field code message } reverted notReverted { subscriptionId reason } run { id status } } }`, null);
      });
      clear(notice, h("div", { class: "notice warn" }, `Revert run ${run.id}? Each subscription it changed goes back to its state before the run; those changed since are left as they are. `, yes));
    });
    clear(
      head,
      h(
        "div",
        { class: "card" },
        h("div", { class: "run-status" }, statusBadge(run.status), run.dryRun ? h("span", { class: "chip" }, "dry run: nothing changed") : null, run.cancelRequested ? h("span", { class: "chip" }, "cancel requested") : null),
        h("div", { class: "progress", role: "progressbar", "aria-valuenow": percent, "aria-valuemin": 0, "aria-valuemax": 100 }, h("div", { class: "bar", style: `width: ${percent}%` })),
        h(
          "p",
          { id: "run-counts" },
          `${run.processed} of ${total} processed · ${run.applied} applied · ${run.skipped} skipped · ${run.failed} failed · ${run.conflicts} conflicts`,
        ),
        h("p", { class: "muted" }, `Limit ${run.limit ?? "none"} · by ${run.createdBy} · created ${when(run.createdAt)} · started ${when(run.startedAt)} · finished ${when(run.finishedAt)}${run.revertedAt ? ` · reverted ${when(run.revertedAt)}` : ""}`),
        run.error ? errorBox(run.error) : null,
        h("div", { class: "buttons" }, cancel, revert),
        h("details", {}, h("summary", {}, "Plan"), h("pre", {}, JSON.stringify(run.plan, null, 2))),
      ),
    );
    const filter = h(
      "select",
      { name: "outcome", onchange: (e) => renderRun(root, id, navigate, e.target.value) },
      ["", "APPLIED", "SKIPPED", "FAILED", "CONFLICT", "REVERTED"].map((o) => h("option", { value: o, selected: o === outcomeFilter ? "selected" : null }, o ? o.toLowerCase() : "every outcome")),
    );
    clear(
      itemsBox,
      h("h2", {}, `Items (${run.items.totalCount}) `, filter),
      h(
        "table",
        { class: "list", id: "run-items-table" },
        h("thead", {}, h("tr", {}, ["Subscription", "Segment", "Outcome", "Reason", "Changes"].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          run.items.edges.map(({ node: item }) =>
            h(
              "tr",
              {},
              h("td", {}, h("a", { href: `#/subscription/${encodeURIComponent(item.subscriptionId)}`, class: "mono" }, item.subscriptionId)),
              h("td", {}, item.segment || "—"),
              h("td", {}, statusBadge(item.outcome)),
              h("td", {}, [item.code, item.reason].filter(Boolean).join(": ") || "—", item.consentReference ? h("div", { class: "muted" }, `consent: ${item.consentReference}`) : null),
              h("td", {}, changesTable(item.changes)),
            ),
          ),
        ),
      ),
      run.items.totalCount > run.items.edges.length ? h("p", { class: "muted" }, `The first ${run.items.edges.length} of ${run.items.totalCount}.`) : null,
    );
  }

  async function mutate(query, message) {
    let data;
    try {
      data = await gql(query, { input: { runId: id } });
    } catch (exc) {
      clear(notice, errorBox(exc.message));
      return;
    }
    const payload = data.result;
    if (payload.userErrors.length) {
      clear(notice, errorBox(payload.userErrors.map((e) => `${e.message} (${e.code})`).join("; ")));
      return;
    }
    if (payload.reverted !== undefined) {
      const kept = payload.notReverted.length ? ` ${payload.notReverted.length} changed since were left as they are.` : "";
      clear(notice, h("div", { class: "notice", role: "status" }, `Reverted ${payload.reverted} subscriptions.${kept}`));
    } else if (message) clear(notice, h("div", { class: "notice", role: "status" }, message));
    stopPolling();
    refresh();
  }

  refresh();
}
