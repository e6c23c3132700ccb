// The admin console: one page, plain ES modules, and /graphql with the API key kept for this tab.
import { apiKey, ApiError, serverFeatures, setApiKey } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { renderList } from "./list.js";
import { renderSubscription } from "./subscription.js";
import { renderBulk, renderRun, stopPolling } from "./bulk.js";
import { renderInvoice, renderInvoices } from "./invoices.js";
import { renderTaxRates } from "./taxrates.js";
import { renderShippingProfiles } from "./shipping.js";
import { renderOverview } from "./overview.js";

const root = document.getElementById("console");
const keyInput = document.getElementById("apikey");
const keyStatus = document.getElementById("apikey-status");

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function markNav(section) {
  for (const link of document.querySelectorAll(".console-nav a")) link.classList.toggle("active", link.dataset.section === section);
}

async function route() {
  stopPolling();
  const hash = location.hash || "#/overview";
  const [path, query = ""] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (!apiKey()) {
    markNav("");
    clear(
      root,
      h(
        "div",
        { class: "card welcome" },
        h("h1", {}, "rebill admin console"),
        h("p", {}, "Enter an API key above to start. Create one in a terminal:"),
        h("pre", {}, "rebill apikey create --name me --scope admin"),
        h("p", { class: "muted" }, "The key is kept for this browser tab only (sessionStorage) and sent only to this server."),
      ),
    );
    return;
  }
  try {
    await serverFeatures();
    if (parts[0] === "overview" || !parts.length) {
      markNav("overview");
      await renderOverview(root, new URLSearchParams(query), navigate);
    } else if (parts[0] === "subscription" && parts[1]) {
      markNav("subscriptions");
      await renderSubscription(root, parts[1], parts[2] || "overview", navigate);
    } else if (parts[0] === "invoice" && parts[1]) {
      markNav("invoices");
      await renderInvoice(root, parts[1], navigate);
    } else if (parts[0] === "invoices") {
      markNav("invoices");
      await renderInvoices(root, new URLSearchParams(query), navigate);
    } else if (parts[0] === "tax-rates") {
      markNav("tax-rates");
      await renderTaxRates(root, navigate);
    } else if (parts[0] === "shipping-profiles") {
      markNav("shipping-profiles");
      await renderShippingProfiles(root, navigate);
    } else if (parts[0] === "bulk" && parts[1] === "run" && parts[2]) {
      markNav("bulk");
      await renderRun(root, parts[2], navigate);
    } else if (parts[0] === "bulk") {
      markNav("bulk");
      await renderBulk(root, navigate);
    } else {
      markNav("subscriptions");
      await renderList(root, new URLSearchParams(query), navigate);
    }
  } catch (exc) {
    const message = exc instanceof ApiError ? exc.message : `Something went wrong: ${exc.message}`;
    clear(root, errorBox(message));
    if (!(exc instanceof ApiError)) throw exc;
  }
}

function showKeyStatus() {
  keyStatus.textContent = apiKey() ? "key set for this tab" : "no key";
}

keyInput.value = apiKey();
document.getElementById("apikey-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(keyInput.value.trim());
  showKeyStatus();
  route();
});
window.addEventListener("hashchange", route);
showKeyStatus();
route();
