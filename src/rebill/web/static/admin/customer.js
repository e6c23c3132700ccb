// A customer's tax standing: exempt or not (with the reason invoices print), and their tax id. updateCustomer
// has no dry run and tax changes never need consent: the form saves at once, and the change reaches invoices
// issued after it, never an issued one.
import { gql, newIdempotencyKey } from "./api.js";
import { clear, h, showUserErrors } from "./dom.js";

export const CUSTOMER_TAX = "id taxExempt taxExemptReason taxId billingAddress { line1 line2 city region postalCode country }";

export function openTaxExemption(customer, panel, reload) {
  const reason = h("input", { name: "taxExemptReason", type: "text", maxlength: 200, value: customer.taxExemptReason || "", placeholder: "Reverse charge" });
  const exempt = h("input", { type: "checkbox", name: "taxExempt", checked: customer.taxExempt });
  const form = h(
    "form",
    { class: "action-form", dataset: { action: "tax-exemption" }, autocomplete: "off" },
    h("h2", {}, "Tax exemption"),
    h("label", { class: "field check" }, exempt, " Exempt from tax: their invoices show a zero rate with the reason"),
    h("label", { class: "field" }, h("span", {}, "Reason (printed on invoices; needed to exempt)"), reason),
    h("label", { class: "field" }, h("span", {}, "Tax id, such as a VAT number (printed on invoices; empty: none)"), h("input", { name: "taxId", type: "text", maxlength: 100, value: customer.taxId || "" })),
    h("p", { class: "muted" }, "Applies to invoices issued from now on; issued ones keep their tax. No consent is needed."),
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "submit", class: "primary", name: "save" }, "Save tax exemption"),
      h("button", { type: "button", onclick: () => clear(panel) }, "Close"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showUserErrors(form, []);
    const input = {
      customerId: customer.id,
      taxExempt: exempt.checked,
      taxExemptReason: reason.value.trim() || null,
      taxId: form.elements.namedItem("taxId").value.trim(),
      idempotencyKey: newIdempotencyKey(),
    };
    const button = form.elements.namedItem("save");
    button.disabled = true;
    try {
      const data = await gql(
        `mutation TaxExemption($input: UpdateCustomerInput!) { result: updateCustomer(input: $input) {
          userErrors { field code message } customer { ${CUSTOMER_TAX} } } }`,
        { input },
      );
      const payload = data.result;
      if (payload.userErrors.length) showUserErrors(form, payload.userErrors);
      else {
        const c = payload.customer;
        reload(`Tax exemption saved: ${c.taxExempt ? `exempt (${c.taxExemptReason})` : "taxed at the rate of their address"}${c.taxId ? `, tax id ${c.taxId}` : ""}.`);
      }
    } catch (exc) {
      showUserErrors(form, [{ field: [], code: "ERROR", message: exc.message }]);
    } finally {
      button.disabled = false;
    }
  });
  clear(panel, form);
  panel.scrollIntoView({ block: "nearest" });
}
