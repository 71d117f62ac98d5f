// The setretrieval page: picks a query set, calls POST /v1/complete, shows the results.
// It opens on a random test set, completed at once (its last item held out).
"use strict";

const state = {categories: [], items: [], heldOut: new Set(), source: "", setImage: null};

function $(id) { return document.getElementById(id); }

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) {
    const error = body.error || {};
    throw new Error((error.field ? error.field + ": " : "") + (error.message || response.status));
  }
  return body;
}

// One `id` parameter per item: ids are free text and may hold commas.
function itemsPath(ids) {
  return "/v1/items?" + ids.map(i => "id=" + encodeURIComponent(i)).join("&");
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function card(item, extra) {
  const picture = item.image_url
    ? element("img", {src: item.image_url, alt: item.item_id, loading: "lazy"})
    : element("div", {class: "noimage"}, item.category);
  return element("div", {class: "card", "data-item-id": item.item_id, ...extra}, picture,
                 element("div", {class: "item-id"}, item.item_id),
                 element("div", {class: "category"}, item.category));
}

function showQuery() {
  const box = $("query-items");
  box.replaceChildren();
  for (const item of state.items) {
    const node = card(item, {"data-testid": "query-item"});
    if (state.heldOut.has(item.item_id)) node.classList.add("held-out");
    node.title = "click to hold out / put back";
    node.addEventListener("click", () => {
      if (state.heldOut.has(item.item_id)) state.heldOut.delete(item.item_id);
      else state.heldOut.add(item.item_id);
      wantHeldOutCategories();
      showQuery();
    });
    box.append(node);
  }
  $("query-source").textContent = state.source;
  const photo = $("set-photo");
  photo.hidden = !state.setImage;
  if (state.setImage) photo.src = state.setImage;
  else photo.removeAttribute("src");
}

function wantHeldOutCategories() {
  const wanted = new Set(state.items.filter(i => state.heldOut.has(i.item_id)).map(i => i.category));
  for (const box of document.querySelectorAll("#categories input")) {
    if (wanted.has(box.value)) box.checked = true;
  }
}

function useItems(items, source, holdOutLast, setImage) {
  state.items = items;
  state.source = source;
  state.setImage = setImage || null;
  state.heldOut = new Set(holdOutLast && items.length > 1 ? [items[items.length - 1].item_id] : []);
  for (const box of document.querySelectorAll("#categories input")) box.checked = false;
  wantHeldOutCategories();
  showQuery();
  $("results").replaceChildren();
}

function useSet(detail) {
  useItems(detail.items, `set ${detail.set_id} (${detail.split})`, true, detail.image_url);
}

async function loadSet(split, setId) {
  useSet(await api(`/v1/sets/${encodeURIComponent(split)}/${encodeURIComponent(setId)}`));
}

async function findSets() {
  const split = $("split").value;
  const found = await api(`/v1/sets?split=${encodeURIComponent(split)}&query=${encodeURIComponent($("set-query").value)}`);
  const list = $("set-list");
  list.replaceChildren();
  if (!found.set_ids.length) list.append("no set matches");
  for (const setId of found.set_ids) {
    const button = element("button", {type: "button", "data-set-id": setId}, setId);
    button.addEventListener("click", () => loadSet(split, setId).catch(e => status(e.message, true)));
    list.append(button);
  }
}

async function complete() {
  const query = state.items.filter(i => !state.heldOut.has(i.item_id));
  const wanted = [...document.querySelectorAll("#categories input:checked")].map(b => b.value);
  if (!query.length) return status("the query needs at least one item that is not held out", true);
  if (!wanted.length) return status("choose at least one category", true);
  status("searching...");
  const answer = await api("/v1/complete", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({items: query.map(i => ({item_id: i.item_id})), categories: wanted,
                          k: Number($("k").value)})});
  const ids = [...new Set(answer.results.flatMap(r => r.item_ids))];
  const described = ids.length ? (await api(itemsPath(ids))).items : [];
  const byId = Object.fromEntries(described.map(i => [i.item_id, i]));
  const results = $("results");
  results.replaceChildren();
  for (const result of answer.results) {
    const row = element("div", {class: "cards", "data-testid": "result", "data-category": result.category});
    result.item_ids.forEach((itemId, rank) => {
      const node = card(byId[itemId], {"data-rank": rank + 1});
      node.append(element("div", {class: "score"}, `#${rank + 1}  ${result.similarities[rank].toFixed(4)}`));
      if (state.heldOut.has(itemId)) node.classList.add("true");
      row.append(node);
    });
    results.append(element("div", {class: "row"}, element("h3", {}, result.category), row));
  }
  status(`${answer.backend}: encode ${answer.encode_ms} ms, search ${answer.retrieval_ms} ms`);
}

async function completeRandomSet(split) {
  useSet(await api(`/v1/sets/random?split=${encodeURIComponent(split)}`));
  await complete();
}

async function showEvaluation() {
  const box = $("evaluation");
  const evaluation = await api("/v1/evaluation");
  box.replaceChildren();
  const splits = Object.entries(evaluation.splits);
  if (!splits.length) box.append(element("p", {}, `no eval outputs in ${evaluation.model_dir}/eval: run eval_main.py`));
  for (const [split, entry] of splits) {
    box.append(element("h2", {}, `split ${split}`));
    if (entry.summary) {
      const table = element("table", {"data-testid": "summary"});
      entry.summary.forEach((cells, row) => table.append(
        element("tr", {}, ...cells.map(c => element(row ? "td" : "th", {}, c)))));
      box.append(table);
    }
    if (entry.table) box.append(element("pre", {}, entry.table));
    const figures = element("div", {class: "figures"});
    for (const name of entry.figures) {
      figures.append(element("img", {src: `/eval-files/${encodeURIComponent(split)}/${encodeURIComponent(name)}`, alt: name}));
    }
    box.append(figures);
  }
}

function tab(name) {
  for (const view of ["explore", "evaluation"]) {
    $(`view-${view}`).hidden = view !== name;
    $(`tab-${view}`).classList.toggle("active", view === name);
  }
  if (name === "evaluation") showEvaluation().catch(e => $("evaluation").replaceChildren(e.message));
}

async function start() {
  const [info, splits] = await Promise.all([api("/v1/info"), api("/v1/splits")]);
  $("model-label").textContent = `${info.model.name} on ${info.dataset.label}, ${info.index.backend} index`;
  $("k").max = info.limits.max_k;
  for (const split of splits.splits) $("split").append(element("option", {value: split}, split));
  if (splits.splits.includes("test")) $("split").value = "test";
  for (const category of info.categories) {
    $("categories").append(element("label", {}, element("input", {type: "checkbox", value: category.name}),
                                   ` ${category.name} `));
  }
  const guard = action => () => action().catch(e => status(e.message, true));
  $("find-sets").addEventListener("click", guard(findSets));
  $("random-set").addEventListener("click", guard(async () => {
    useSet(await api(`/v1/sets/random?split=${encodeURIComponent($("split").value)}`));
  }));
  $("use-items").addEventListener("click", guard(async () => {
    const ids = $("item-ids").value.split(",").map(s => s.trim()).filter(Boolean);
    if (!ids.length) throw new Error("type at least one item id");
    const found = await api(itemsPath(ids));
    useItems(found.items, "typed item ids", false);
  }));
  $("complete").addEventListener("click", guard(complete));
  $("tab-explore").addEventListener("click", () => tab("explore"));
  $("tab-evaluation").addEventListener("click", () => tab("evaluation"));
  if (splits.splits.length) await completeRandomSet($("split").value).catch(e => status(e.message, true));
  document.body.dataset.ready = "true";
}

start().catch(e => status(e.message, true));
