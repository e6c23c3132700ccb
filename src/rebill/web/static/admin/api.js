// Talking to /graphql with the API key kept in sessionStorage (this tab only).
const KEY = "rebill.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
  features = null;
}

export class ApiError extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Shown while a request waits for the key's rate limit (HTTP 429 with Retry-After).
function waitNotice(text) {
  let el = document.getElementById("api-wait");
  if (!el) {
    el = document.createElement("div");
    el.id = "api-wait";
    el.className = "api-wait";
    el.setAttribute("role", "status");
    document.body.append(el);
  }
  el.textContent = text;
  el.hidden = !text;
}

// Run a query; top-level errors are thrown, userErrors are left to the caller.
// A throttled request is retried after the wait the server names (three times at most).
export async function gql(query, variables = {}) {
  const key = apiKey();
  if (!key) throw new ApiError("Enter an API key above (rebill apikey create --name me --scope admin).");
  let response;
  for (let attempt = 0; ; attempt++) {
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: "Bearer " + key },
        body: JSON.stringify({ query, variables }),
      });
    } catch (exc) {
      throw new ApiError("rebill cannot be reached: " + exc.message);
    }
    if (response.status !== 429 || attempt >= 3) break;
    const seconds = Math.max(1, Number(response.headers.get("Retry-After")) || 1);
    waitNotice(`This API key's rate limit is used up: retrying in ${seconds} s…`);
    await sleep(seconds * 1000);
    waitNotice("");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`rebill answered HTTP ${response.status} without JSON`);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const code = first.extensions && first.extensions.code ? ` (${first.extensions.code})` : "";
    throw new ApiError(first.message + code);
  }
  return body.data;
}

// Some fields arrive in newer rebill versions: ask the schema once which ones this server has.
let features = null;

export async function serverFeatures() {
  if (features) return features;
  const empty = { mutations: new Set(), inputs: {}, types: { HistoryEntry: new Set(), BulkRunItem: new Set() }, args: {} };
  try {
    const data = await gql(`{
      __schema { mutationType { fields { name } } }
      subs: __type(name: "Query") { fields { name args { name } } }
      history: __type(name: "HistoryEntry") { fields { name } }
      bulkItem: __type(name: "BulkRunItem") { fields { name } }
      forceBill: __type(name: "ForceBillInput") { inputFields { name } }
      subscription: __type(name: "Subscription") { fields { name args { name } } }
    }`);
    const queryArgs = {};
    for (const field of data.subs.fields) queryArgs[field.name] = new Set(field.args.map((a) => a.name));
    const subscriptionArgs = {};
    for (const field of data.subscription.fields) subscriptionArgs[field.name] = new Set(field.args.map((a) => a.name));
    features = {
      mutations: new Set(data.__schema.mutationType.fields.map((f) => f.name)),
      inputs: { ForceBillInput: new Set(data.forceBill ? data.forceBill.inputFields.map((f) => f.name) : []) },
      types: {
        HistoryEntry: new Set(data.history ? data.history.fields.map((f) => f.name) : []),
        BulkRunItem: new Set(data.bulkItem ? data.bulkItem.fields.map((f) => f.name) : []),
      },
      args: { Query: queryArgs, Subscription: subscriptionArgs },
    };
  } catch (exc) {
    if (exc instanceof ApiError && /introspection/i.test(exc.message)) features = empty;
    else throw exc;
  }
  return features;
}

export function has(featuresSet, name) {
  return Boolean(featuresSet && featuresSet.has(name));
}

// Invoice documents need the key as much as /graphql does: fetched with the Authorization header, so the
// key never appears in a URL. Only paths on this server are fetched, never an absolute URL of another host.
export async function fetchDocument(path) {
  const key = apiKey();
  if (!key) throw new ApiError("Enter an API key above (rebill apikey create --name me --scope admin).");
  if (!path.startsWith("/") || path.startsWith("//")) throw new ApiError(`Not a path on this server: ${path}`);
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: "Bearer " + key }, cache: "no-store", credentials: "omit" });
  } catch (exc) {
    throw new ApiError("rebill cannot be reached: " + exc.message);
  }
  if (response.status === 404) throw new ApiError("No such document, or this API key may not read it (it needs the read scope).");
  if (!response.ok) throw new ApiError(`rebill answered HTTP ${response.status} for ${path}`);
  return response.blob();
}

// Save a document under ``filename``: an <a download> on an object URL of what was fetched.
export async function downloadDocument(path, filename) {
  const blob = await fetchDocument(path);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function newIdempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2);
}
