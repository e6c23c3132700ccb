// Shipping profiles: ordered rates, one or more per currency; a subscription that ships (it has a shipping
// address) pays the first rate listed in its currency at every renewal of a period. Listed, created, edited
// (rates in order) and archived here; a subscription's page changes the profile it ships with.
import { gql, newIdempotencyKey } from "./api.js";
import { clear, errorBox, h, money, showUserErrors, spinner } from "./dom.js";

const PROFILE = "id name active rates { name amount { amount currency } }";

export async function loadShippingProfiles() {
  const profiles = [];
  let after = null;
  for (;;) {
    const data = await gql(
      `query ShippingProfiles($after: String) { shippingProfiles(first: 100, after: $after) {
        pageInfo { hasNextPage endCursor } edges { node { ${PROFILE} } } } }`,
      { after },
    );
    profiles.push(...data.shippingProfiles.edges.map((e) => e.node));
    if (!data.shippingProfiles.pageInfo.hasNextPage) return profiles;
    after = data.shippingProfiles.pageInfo.endCursor;
  }
}

// "Standard 5.00 USD, Express 15.00 USD": the rates in their order.
export function ratesText(profile) {
  return profile.rates.map((r) => `${r.name} ${money(r.amount)}`).join(", ");
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

// One rate of the editor; its inputs are named after the API's (name, amount, currency) so that an error on
// rates[i].amount lands beside that row's amount.
function rateRow(rate = null) {
  const row = h(
    "div",
    { class: "rate-row" },
    h("span", { class: "rate-position muted" }),
    field("Rate name", h("input", { name: "name", required: "required", maxlength: 200, value: rate?.name ?? "", placeholder: "Standard" })),
    field("Amount", h("input", { name: "amount", required: "required", inputmode: "decimal", size: 9, value: rate?.amount.amount ?? "", placeholder: "5.00" })),
    field("Currency", h("input", { name: "currency", required: "required", size: 4, maxlength: 3, value: rate?.amount.currency ?? "", placeholder: "USD" })),
    h(
      "span",
      { class: "rate-buttons" },
      h("button", { type: "button", name: "up", title: "Move up", onclick: () => row.previousElementSibling?.before(row) }, "↑"),
      h("button", { type: "button", name: "down", title: "Move down", onclick: () => row.nextElementSibling?.after(row) }, "↓"),
      h("button", { type: "button", name: "remove-rate", title: "Remove this rate", onclick: () => row.remove() }, "Remove"),
    ),
  );
  return row;
}

// Errors on rates[i] go beside row i; the others beside the profile's name or at the top of the form.
function showErrors(form, list, errors) {
  const rest = [];
  const placed = [];
  for (const error of errors) {
    const path = (error.field || []).filter((p) => p !== "input");
    const at = path.indexOf("rates");
    const row = at >= 0 && path[at + 1] !== undefined ? list.children[Number(path[at + 1])] : null;
    const key = path[path.length - 1];
    const input = row?.querySelector(`[name="${CSS.escape(key)}"]`) || row?.querySelector("[name=amount]");
    if (input) placed.push([input, error]);
    else rest.push(path.join(".") === "rates.name" ? { ...error, field: [] } : error);
  }
  showUserErrors(form, rest); // first: it clears the errors shown before
  for (const [input, error] of placed) input.closest(".field").append(h("span", { class: "field-error", role: "alert" }, `${error.message} (${error.code})`));
}

// The form that creates a profile (``profile`` null) or edits one: its name and its rates in order.
function profileForm(profile, reload, close) {
  const list = h("div", { class: "rate-list", id: "rate-list" }, (profile ? profile.rates : [null]).map((r) => rateRow(r)));
  const form = h(
    "form",
    { class: "card action-form", id: "shipping-profile-form", autocomplete: "off", dataset: { profile: profile?.id ?? "" } },
    h("h2", {}, profile ? `Edit ${profile.name}` : "New shipping profile"),
    h("label", { class: "field" }, h("span", {}, "Profile name"), h("input", { name: "profileName", required: "required", maxlength: 200, value: profile?.name ?? "", placeholder: "Parcels" })),
    h("h3", {}, "Rates, in order"),
    h("p", { class: "muted" }, "A subscription pays the first rate listed in its currency."),
    list,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", name: "add-rate", onclick: () => list.append(rateRow()) }, "Add a rate"),
    ),
    profile ? h("p", { class: "muted" }, "Every subscription that ships with it must keep a rate in its currency.") : null,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit", class: "primary", name: "save" }, profile ? "Save shipping profile" : "Create shipping profile"),
      close ? h("button", { type: "button", onclick: close }, "Close") : null,
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const rates = [...list.children].map((row) => {
      const v = (name) => row.querySelector(`[name=${name}]`).value.trim();
      return { name: v("name"), amount: { amount: v("amount"), currency: v("currency").toUpperCase() } };
    });
    const name = form.elements.namedItem("profileName").value.trim();
    const mutation = profile ? "updateShippingProfile" : "createShippingProfile";
    const type = profile ? "UpdateShippingProfileInput" : "CreateShippingProfileInput";
    const input = profile ? { shippingProfileId: profile.id, name, rates } : { name, rates };
    const button = form.elements.namedItem("save");
    button.disabled = true;
    try {
      const data = await gql(
        `mutation Save($input: ${type}!) { result: ${mutation}(input: $input) {
          userErrors { field code message } shippingProfile { ${PROFILE} } } }`,
        { input: { ...input, idempotencyKey: newIdempotencyKey() } },
      );
      const payload = data.result;
      if (payload.userErrors.length) {
        // The profile's own "name" is profileName in this form.
        const errors = payload.userErrors.map((e) => {
          const path = (e.field || []).filter((p) => p !== "input");
          return path.length === 1 && path[0] === "name" ? { ...e, field: ["profileName"] } : e;
        });
        showErrors(form, list, errors);
      } else {
        const saved = payload.shippingProfile;
        reload(`Shipping profile ${saved.name} ${profile ? "saved" : "created"}: ${ratesText(saved)}.`);
      }
    } catch (exc) {
      showUserErrors(form, [{ field: [], code: "ERROR", message: exc.message }]);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function archive(profile, cell, reload) {
  clear(cell, spinner("Archiving…"));
  try {
    const data = await gql(
      `mutation Archive($input: ArchiveShippingProfileInput!) { result: archiveShippingProfile(input: $input) {
        userErrors { field code message } shippingProfile { id active } } }`,
      { input: { shippingProfileId: profile.id, idempotencyKey: newIdempotencyKey() } },
    );
    const errors = data.result.userErrors;
    if (errors.length) clear(cell, errorBox(errors.map((e) => `${e.message} (${e.code})`).join("; ")));
    else reload(`Shipping profile ${profile.name} archived: subscriptions that ship with it go on; it can be assigned to nothing new.`);
  } catch (exc) {
    clear(cell, errorBox(exc.message));
  }
}

function rowActions(profile, editor, reload) {
  const cell = h("td", { class: "row-actions wrap" });
  const edit = () => {
    clear(editor, profileForm(profile, reload, () => clear(editor)));
    editor.scrollIntoView({ block: "nearest" });
  };
  const idle = () =>
    clear(
      cell,
      profile.active ? h("button", { type: "button", name: "edit", onclick: edit }, "Edit…") : null,
      " ",
      profile.active ? h("button", { type: "button", name: "archive", onclick: ask }, "Archive…") : null,
    );
  const ask = () =>
    clear(
      cell,
      h("div", { class: "muted" }, "No new assignment; its subscriptions go on."),
      h("button", { type: "button", class: "danger", name: "confirm-archive", onclick: () => archive(profile, cell, reload) }, "Confirm archive"),
      " ",
      h("button", { type: "button", onclick: idle }, "Keep"),
    );
  idle();
  return cell;
}

export async function renderShippingProfiles(root, navigate, flash = null) {
  const reload = (message) => renderShippingProfiles(root, navigate, message);
  const results = h("div", { class: "results" }, spinner("Loading shipping profiles…"));
  const editor = h("div", { class: "profile-editor", id: "shipping-profile-editor" });
  const add = h("button", { type: "button", class: "primary", name: "new-shipping-profile", onclick: () => clear(editor, profileForm(null, reload, () => clear(editor))) }, "New shipping profile…");
  clear(
    root,
    h("h1", {}, "Shipping profiles"),
    flash ? h("div", { class: "notice", id: "flash", role: "status" }, flash) : null,
    h("p", { class: "muted" }, "A subscription profile names the shipping profile its subscriptions ship with; a subscription may have its own. Shipping is billed at each renewal of a period, only when the subscription has a shipping address."),
    h("div", { class: "buttons" }, add),
    editor,
    results,
  );
  let profiles;
  try {
    profiles = await loadShippingProfiles();
  } catch (exc) {
    clear(results, errorBox(exc.message));
    return;
  }
  if (!profiles.length) {
    clear(results, h("p", { class: "muted" }, "No shipping profile yet: nothing is billed for shipping."));
    return;
  }
  clear(
    results,
    h(
      "table",
      { class: "list", id: "shipping-profile-table" },
      h("thead", {}, h("tr", {}, ["Name", "Rates, in order", "Active", ""].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        profiles.map((p) =>
          h(
            "tr",
            { dataset: { id: p.id } },
            h("td", {}, p.name),
            h("td", {}, h("ol", { class: "rates" }, p.rates.map((r) => h("li", {}, `${r.name}: `, h("span", { class: "num" }, money(r.amount)))))),
            h("td", {}, p.active ? h("span", { class: "badge status-active" }, "active") : h("span", { class: "badge status-expired" }, "archived")),
            rowActions(p, editor, reload),
          ),
        ),
      ),
    ),
  );
}
