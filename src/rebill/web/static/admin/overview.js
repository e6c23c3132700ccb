// Overview, the console's first page: MRR and its movements over the last 12 months, the next 90 days'
// forecast, collections and dunning recovery, in one currency at a time. The charts are SVG drawn here from
// the same figures the API returns, and each series downloads as CSV built from those figures as they came.
import { gql, serverFeatures } from "./api.js";
import { clear, errorBox, h, spinner } from "./dom.js";

// The SVG namespace, as the HTML parser gives it to an <svg> element (no host is named in this file).
const SVG = (() => {
  const probe = document.createElement("div");
  probe.innerHTML = "<svg></svg>";
  return probe.firstChild.namespaceURI;
})();
const FORECAST_DAYS = 90;
const MONTHS = 12;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// Calendar dates as the staff's browser sees them, written as ISO dates.
function iso(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function addDays(d, n) {
  const out = new Date(d);
  out.setDate(out.getDate() + n);
  return out;
}

// A decimal string of the API ("62.96", "-5.00") as minor units: money is never parsed as a float.
function minor(amount) {
  const negative = amount.startsWith("-");
  const [whole, fraction = ""] = amount.replace("-", "").split(".");
  const units = BigInt(whole + fraction.padEnd(2, "0").slice(0, 2));
  return negative ? -units : units;
}

// How tall a bar is drawn: a share of the chart, so a plain number is enough here.
const height = (units) => Number(units);

function formatMinor(units, currency) {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (abs % 100n).toString().padStart(2, "0");
  return `${negative ? "-" : ""}${whole}.${cents} ${currency}`;
}

// The currencies in use, most used first: what recent subscriptions and invoices bill in.
async function currenciesInUse() {
  const data = await gql(`query OverviewCurrencies {
    subscriptions(first: 100, orderBy: { field: UPDATED_AT, direction: DESC }) { edges { node { currency } } }
    invoices(first: 100) { edges { node { currency } } } }`);
  const counts = new Map();
  for (const edge of [...data.subscriptions.edges, ...data.invoices.edges]) {
    counts.set(edge.node.currency, (counts.get(edge.node.currency) || 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([c]) => c);
}

const METRICS = `periodStart periodEnd mrr { amount currency } arr { amount }
  newMrr { amount } expansionMrr { amount } contractionMrr { amount } churnedMrr { amount } reactivationMrr { amount }
  activeSubscriptions trialingSubscriptions newSubscriptions churnedSubscriptions
  billed { amount } collected { amount } refunded { amount } failedPayments recoveredPayments`;

async function load(currency, today, withMetrics) {
  const monthStart = new Date(today.getFullYear(), today.getMonth() - (MONTHS - 1), 1);
  const variables = {
    currency,
    forecastFrom: iso(today),
    forecastTo: iso(addDays(today, FORECAST_DAYS - 1)),
    metricsFrom: iso(monthStart),
    metricsTo: iso(today),
  };
  const metrics = withMetrics
    ? `metrics: revenueMetrics(currency: $currency, from: $metricsFrom, to: $metricsTo, interval: MONTH) { ${METRICS} }`
    : "";
  const data = await gql(
    `query Overview($currency: String!, $forecastFrom: Date!, $forecastTo: Date!${withMetrics ? ", $metricsFrom: Date!, $metricsTo: Date!" : ""}) {
      forecast: billingForecast(currency: $currency, from: $forecastFrom, to: $forecastTo, interval: DAY) {
        date subscriptions expected { amount currency } expectedAfterDeclines { amount } }
      ${metrics} }`,
    withMetrics ? variables : { currency, forecastFrom: variables.forecastFrom, forecastTo: variables.forecastTo },
  );
  return { forecast: data.forecast, metrics: data.metrics || null };
}

// -- charts ----------------------------------------------------------------------------------------------

const W = 640;
const H = 220;
const PAD = { left: 64, right: 10, top: 10, bottom: 26 };

// Bars per period, side by side (grouped) or on top of each other (stacked, negatives below zero), with an
// optional line. ``series``: [{ name, cls, values: [units] }]; ``labels``: one per period.
function chart({ id, title, labels, series, stacked = false, line = null, format, every = 1 }) {
  const n = labels.length;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  let top = 0n;
  let bottom = 0n;
  for (let i = 0; i < n; i++) {
    if (stacked) {
      let up = 0n;
      let down = 0n;
      for (const s of series) (s.values[i] >= 0n ? (up += s.values[i]) : (down += s.values[i]));
      top = up > top ? up : top;
      bottom = down < bottom ? down : bottom;
    } else {
      for (const s of series) {
        top = s.values[i] > top ? s.values[i] : top;
        bottom = s.values[i] < bottom ? s.values[i] : bottom;
      }
    }
    if (line) top = line.values[i] > top ? line.values[i] : top;
  }
  if (top === 0n && bottom === 0n) top = 1n;
  const span = height(top - bottom);
  const y = (units) => PAD.top + plotH - ((height(units) - height(bottom)) / span) * plotH;
  const slot = plotW / Math.max(n, 1);
  const groups = stacked ? 1 : series.length;
  const barW = Math.max(1, (slot * 0.8) / groups);
  const shapes = [];
  let previous = null;
  for (let t = 0; t <= 4; t++) {
    const value = bottom + ((top - bottom) * BigInt(t)) / 4n;
    if (value === previous) continue; // small counts: one tick per whole number
    previous = value;
    const yy = y(value);
    shapes.push(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy, class: "grid-line" }));
    shapes.push(svg("text", { x: PAD.left - 6, y: yy + 4, class: "axis", "text-anchor": "end" }, format(value)));
  }
  for (let i = 0; i < n; i++) {
    const x0 = PAD.left + i * slot + slot * 0.1;
    let up = 0n;
    let down = 0n;
    series.forEach((s, k) => {
      const v = s.values[i];
      if (v === 0n) return;
      let from;
      let to;
      if (stacked) {
        if (v >= 0n) [from, to, up] = [up, up + v, up + v];
        else [from, to, down] = [down + v, down, down + v];
      } else [from, to] = v >= 0n ? [0n, v] : [v, 0n];
      const x = stacked ? x0 : x0 + k * barW;
      const rect = svg("rect", { x, y: y(to), width: barW, height: Math.max(0.5, y(from) - y(to)), class: `bar ${s.cls}` });
      rect.append(svg("title", {}, `${labels[i]} · ${s.name}: ${format(v, true)}`));
      shapes.push(rect);
    });
    if (i % every === 0) {
      shapes.push(svg("text", { x: x0 + (slot * 0.8) / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, labels[i]));
    }
  }
  if (line && line.dots) {
    // Sparse days: a mark on each day that has something, rather than a line down to zero between them.
    line.values.forEach((v, i) => {
      if (v === 0n) return;
      const dot = svg("circle", { cx: PAD.left + i * slot + slot / 2, cy: y(v), r: 3, class: `dot ${line.cls}` });
      dot.append(svg("title", {}, `${labels[i]} · ${line.name}: ${format(v, true)}`));
      shapes.push(dot);
    });
  } else if (line) {
    const points = line.values.map((v, i) => `${PAD.left + i * slot + slot / 2},${y(v)}`).join(" ");
    shapes.push(svg("polyline", { points, class: `line ${line.cls}` }));
  }
  shapes.push(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(0n), y2: y(0n), class: "zero-line" }));
  const legend = h(
    "div",
    { class: "legend" },
    [...series, ...(line ? [line] : [])].map((s) => h("span", { class: "key" }, h("i", { class: `swatch ${s.cls}` }), s.name)),
  );
  return h(
    "figure",
    { class: "chart", id },
    svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart-svg" }, shapes),
    legend,
  );
}

// -- CSV -------------------------------------------------------------------------------------------------

function csvCell(value) {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

function downloadButton(name, filename, csv) {
  return h(
    "button",
    {
      type: "button",
      class: "csv",
      "data-series": name,
      "data-csv": csv,
      onclick: () => {
        const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
        const a = h("a", { href: url, download: filename });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      },
    },
    "Download CSV",
  );
}

function card(title, summary, body, csvButton) {
  return h(
    "section",
    { class: "card overview-card" },
    h("div", { class: "overview-card-head" }, h("h2", {}, title), csvButton),
    h("p", { class: "muted summary" }, summary),
    body,
  );
}

// -- the page --------------------------------------------------------------------------------------------

function forecastCard(points, currency) {
  const expected = points.map((p) => minor(p.expected.amount));
  const after = points.map((p) => minor(p.expectedAfterDeclines.amount));
  const total = expected.reduce((a, b) => a + b, 0n);
  const totalAfter = after.reduce((a, b) => a + b, 0n);
  const charges = points.reduce((a, p) => a + p.subscriptions, 0);
  const csv = toCsv(
    ["date", "subscriptions", "expected", "expectedAfterDeclines", "currency"],
    points.map((p) => [p.date, p.subscriptions, p.expected.amount, p.expectedAfterDeclines.amount, currency]),
  );
  const first = points.length ? points[0].date : "";
  return card(
    `Forecast, next ${FORECAST_DAYS} days`,
    `${formatMinor(total, currency)} expected from ${charges} charges; ${formatMinor(totalAfter, currency)} after the usual declines.`,
    chart({
      id: "forecast-chart",
      title: "Expected charges per day",
      labels: points.map((p) => p.date.slice(5)),
      series: [{ name: "Expected", cls: "s-expected", values: expected }],
      line: { name: "After declines", cls: "s-after", values: after, dots: true },
      format: (v, full) => (full ? formatMinor(v, currency) : formatMinor(v, "").trim().replace(/\.00$/, "")),
      every: 15,
    }),
    downloadButton("forecast", `forecast-${currency}-${first}.csv`, csv),
  );
}

function metricsCards(metrics, currency) {
  const labels = metrics.map((p) => p.periodStart.slice(0, 7));
  const fmt = (v, full) => (full ? formatMinor(v, currency) : formatMinor(v, "").trim().replace(/\.00$/, ""));
  const count = (v) => String(v);
  const m = (key) => metrics.map((p) => minor(p[key].amount));
  const neg = (values) => values.map((v) => -v);
  const last = metrics[metrics.length - 1];
  const range = metrics.length ? `${metrics[0].periodStart}` : "";
  const mrrCsv = toCsv(
    ["periodStart", "periodEnd", "mrr", "newMrr", "expansionMrr", "contractionMrr", "churnedMrr", "reactivationMrr", "activeSubscriptions", "currency"],
    metrics.map((p) => [
      p.periodStart, p.periodEnd, p.mrr.amount, p.newMrr.amount, p.expansionMrr.amount, p.contractionMrr.amount,
      p.churnedMrr.amount, p.reactivationMrr.amount, p.activeSubscriptions, currency,
    ]),
  );
  const mrr = card(
    `MRR, last ${MONTHS} months`,
    last ? `MRR ${formatMinor(minor(last.mrr.amount), currency)} (ARR ${formatMinor(minor(last.arr.amount), currency)}), ${last.activeSubscriptions} active subscriptions.` : "",
    chart({
      id: "mrr-chart",
      title: "MRR movements per month, and MRR at each month's end",
      labels,
      stacked: true,
      series: [
        { name: "New", cls: "s-new", values: m("newMrr") },
        { name: "Reactivation", cls: "s-reactivation", values: m("reactivationMrr") },
        { name: "Expansion", cls: "s-expansion", values: m("expansionMrr") },
        { name: "Contraction", cls: "s-contraction", values: neg(m("contractionMrr")) },
        { name: "Churned", cls: "s-churned", values: neg(m("churnedMrr")) },
      ],
      line: { name: "MRR", cls: "s-mrr", values: m("mrr") },
      format: fmt,
    }),
    downloadButton("mrr", `mrr-${currency}-${range}.csv`, mrrCsv),
  );
  const sum = (values) => values.reduce((a, b) => a + b, 0n);
  const collectionsCsv = toCsv(
    ["periodStart", "periodEnd", "billed", "collected", "refunded", "currency"],
    metrics.map((p) => [p.periodStart, p.periodEnd, p.billed.amount, p.collected.amount, p.refunded.amount, currency]),
  );
  const collections = card(
    "Collections",
    `Over ${MONTHS} months: billed ${formatMinor(sum(m("billed")), currency)}, collected ${formatMinor(sum(m("collected")), currency)}, refunded ${formatMinor(sum(m("refunded")), currency)}.`,
    chart({
      id: "collections-chart",
      title: "Billed, collected and refunded per month",
      labels,
      series: [
        { name: "Billed", cls: "s-billed", values: m("billed") },
        { name: "Collected", cls: "s-collected", values: m("collected") },
        { name: "Refunded", cls: "s-refunded", values: m("refunded") },
      ],
      format: fmt,
    }),
    downloadButton("collections", `collections-${currency}-${range}.csv`, collectionsCsv),
  );
  const failed = metrics.map((p) => BigInt(p.failedPayments));
  const recovered = metrics.map((p) => BigInt(p.recoveredPayments));
  const dunningCsv = toCsv(
    ["periodStart", "periodEnd", "failedPayments", "recoveredPayments"],
    metrics.map((p) => [p.periodStart, p.periodEnd, p.failedPayments, p.recoveredPayments]),
  );
  const totalFailed = sum(failed);
  const totalRecovered = sum(recovered);
  const dunning = card(
    "Dunning recovery",
    `Over ${MONTHS} months: ${totalFailed} renewals failed at first, ${totalRecovered} recovered.`,
    chart({
      id: "dunning-chart",
      title: "Failed and recovered payments per month",
      labels,
      series: [
        { name: "Failed", cls: "s-failed", values: failed },
        { name: "Recovered", cls: "s-recovered", values: recovered },
      ],
      format: count,
    }),
    downloadButton("dunning", `dunning-${currency}-${range}.csv`, dunningCsv),
  );
  return [mrr, collections, dunning];
}

export async function renderOverview(root, params, navigate) {
  clear(root, h("h1", {}, "Overview"), spinner("Loading the figures…"));
  const features = await serverFeatures();
  const queryFields = (features.args && features.args.Query) || {};
  const withMetrics = "revenueMetrics" in queryFields;
  const currencies = await currenciesInUse();
  const currency = (params.get("currency") || currencies[0] || "USD").toUpperCase();
  if (!currencies.includes(currency)) currencies.push(currency);
  const today = new Date();
  let data;
  try {
    data = await load(currency, today, withMetrics);
  } catch (exc) {
    clear(root, h("h1", {}, "Overview"), errorBox(exc.message));
    return;
  }
  const picker = h(
    "select",
    {
      id: "overview-currency",
      "aria-label": "Currency",
      onchange: (event) => navigate(`#/overview?currency=${encodeURIComponent(event.target.value)}`),
    },
    currencies.map((c) => h("option", { value: c, selected: c === currency ? "selected" : null }, c)),
  );
  if (picker.value !== currency) picker.value = currency;
  const cards = [];
  if (data.metrics) {
    const [mrr, collections, dunning] = metricsCards(data.metrics, currency);
    cards.push(mrr, forecastCard(data.forecast, currency), collections, dunning);
  } else {
    cards.push(
      forecastCard(data.forecast, currency),
      h("p", { class: "notice warn" }, "MRR, collections and dunning need revenueMetrics, which this rebill does not have yet."),
    );
  }
  clear(
    root,
    h("h1", {}, "Overview", h("label", { class: "currency-switch" }, "Currency ", picker)),
    h("p", { class: "muted" }, `Figures in ${currency}; dates in the seller's time zone. Today is ${iso(today)}.`),
    h("div", { class: "overview-grid", "data-currency": currency }, cards),
  );
}
