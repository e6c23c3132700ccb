// rebill's GraphiQL: every request carries the API key typed above (kept in sessionStorage, so only for this tab).
"use strict";
(function () {
  const KEY = "rebill.apiKey";
  const input = document.getElementById("apikey");
  const status = document.getElementById("apikey-status");
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));

  const EXAMPLES = [
    {
      query: `# The first subscriptions, with what they bill next.
# Put your API key above (rebill apikey create --name me --scope admin), then press the run button.
query FirstSubscriptions {
  subscriptions(first: 5) {
    totalCount
    edges {
      node {
        id
        status
        nextRenewalDate
        amount { amount currency }
        customer { email }
      }
    }
  }
}
`,
    },
    {
      query: `# One subscription and its history, newest first.
query SubscriptionHistory($id: ID!) {
  subscription(id: $id) {
    id
    status
    version
    history(first: 10) {
      edges { node { occurredAt actor action reason changes { field before after } } }
    }
  }
}
`,
      variables: '{ "id": "paste a subscription id" }',
    },
    {
      query: `# What a force bill would charge: dryRun stores nothing.
mutation ForceBillDryRun($id: ID!) {
  forceBill(input: { subscriptionId: $id, dryRun: true, reason: "checking" }) {
    dryRun
    userErrors { field code message }
    renewal { amount { amount currency } periodStart periodEnd }
    subscription { nextRenewalDate }
  }
}
`,
      variables: '{ "id": "paste a subscription id" }',
    },
  ];

  function currentKey() {
    return sessionStorage.getItem(KEY) || "";
  }

  async function fetcher(params) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = "Bearer " + key;
    const response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify(params) });
    return response.json();
  }

  function show() {
    const key = currentKey();
    status.textContent = key ? "key set for this tab" : "no key yet: queries are refused (401)";
    // A new React key remounts GraphiQL, so the schema is fetched again with the new API key.
    root.render(
      React.createElement(GraphiQL, {
        key: key || "none",
        fetcher,
        defaultEditorToolsVisibility: true,
        defaultTabs: EXAMPLES,
        isHeadersEditorEnabled: false,
      }),
    );
  }

  input.value = currentKey();
  document.getElementById("apikey-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
    show();
  });
  show();
})();
