// The lookalike page: plain JS calling the gateway's JSON API. Product text only ever goes
// in with textContent; thumbnails are fetched with the API key and shown as blob: URLs.
"use strict";
const $ = (selector) => document.querySelector(selector);
const keyInput = $("#key");
keyInput.value = sessionStorage.getItem("lookalike-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("lookalike-key", keyInput.value));

async function api(path, options = {}) {
  const headers = keyInput.value ? { "x-api-key": keyInput.value } : {};
  const response = await fetch(path, { ...options, headers: { ...headers, ...options.headers } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || { code: response.status, message: response.statusText };
    throw new Error(`${error.code}: ${error.message}`);
  }
  return body;
}

function status(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function thumbnail(img, productSet, productId, imageId) {
  const path = [productSet || "-", productId, imageId].map(encodeURIComponent).join("/");
  const headers = keyInput.value ? { "x-api-key": keyInput.value } : {};
  const response = await fetch(`/v1/thumbnails/${path}`, { headers });
  if (response.ok) img.src = URL.createObjectURL(await response.blob());
}

function card(product, score, imageId) {
  const node = el("div", "card");
  node.dataset.productId = product.product_id;
  const img = el("img");
  img.alt = product.title || product.product_id;
  node.append(img);
  if (score !== undefined) node.append(el("span", "score", score.toFixed(3)));
  node.append(el("div", "title", product.title || product.product_id));
  node.append(el("div", "muted", `${product.product_id} · ${product.category || "no category"}`));
  if (imageId) thumbnail(img, product.product_set, product.product_id, imageId);
  return node;
}

// ---- Search
const photoInput = $("#photo"), drop = $("#drop"), preview = $("#preview");
let photo = null;

function showPhoto(file, objects = []) {
  const img = new Image();
  img.onload = () => {
    preview.width = img.naturalWidth;
    preview.height = img.naturalHeight;
    const ctx = preview.getContext("2d");
    ctx.drawImage(img, 0, 0);
    ctx.lineWidth = Math.max(3, img.naturalWidth / 120);
    ctx.strokeStyle = "#16a34a";
    for (const object of objects) {
      const points = object.bounding_poly;
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
      ctx.closePath();
      ctx.stroke();
    }
    preview.hidden = false;
    URL.revokeObjectURL(img.src);
  };
  img.src = URL.createObjectURL(file);
}

function choose(file) {
  photo = file;
  showPhoto(file);
  $("#search-form").requestSubmit();
}

photoInput.addEventListener("change", () => photoInput.files[0] && choose(photoInput.files[0]));
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) choose(event.dataTransfer.files[0]);
});

$("#search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  form.delete("image");
  if (photo) form.append("image", photo);
  if (!photo && !form.get("text")) return status($("#search-status"), "Choose a photo or type some words.", true);
  const results = $("#results");
  status($("#search-status"), "Searching…");
  try {
    const answer = await api("/v1/search", { method: "POST", body: form });
    results.replaceChildren(...answer.matches.map((m) => {
      const node = card({ ...m, product_set: form.get("product_set") || "" }, m.score, m.image_id);
      node.classList.toggle("verified", m.verified);
      return node;
    }));
    status($("#search-status"), `${answer.matches.length} results in ${answer.server_ms.toFixed(0)} ms` +
      (answer.objects.length ? `, ${answer.objects.length} outlined in the photo` : ""));
    if (photo && form.get("per_object")) showPhoto(photo, answer.objects);
  } catch (error) {
    results.replaceChildren();
    status($("#search-status"), error.message, true);
  }
});

// ---- Catalogue
let pages = [""], pageIndex = 0, browseCategory = "";

async function loadStats() {
  const stats = await api("/v1/stats");
  $("#stats").textContent = `${stats.products} products, ${stats.points} images · ${stats.model_name}`;
  const select = $("#category");
  select.replaceChildren(el("option", "", "any"));
  select.firstChild.value = "";
  const counts = $("#counts");
  counts.replaceChildren();
  for (const c of stats.categories) {
    const option = el("option", "", `${c.category} (${c.products})`);
    option.value = c.category;
    select.append(option);
    const button = el("button", "", `${c.category} (${c.products})`);
    button.addEventListener("click", () => { browseCategory = c.category; pages = [""]; pageIndex = 0; loadPage(); });
    counts.append(button);
  }
}

async function loadPage() {
  const query = new URLSearchParams({ page_size: "24", page_token: pages[pageIndex] });
  if (browseCategory) query.set("categories", browseCategory);
  try {
    const page = await api(`/v1/products?${query}`);
    $("#products").replaceChildren(...page.products.map((p) => card(p, undefined, p.images[0]?.image_id)));
    pages[pageIndex + 1] = page.next_page_token;
    $("#page").textContent = `page ${pageIndex + 1} of ${Math.max(1, Math.ceil(Number(page.total) / 24))}`;
    $("#next").disabled = !page.next_page_token;
    $("#prev").disabled = pageIndex === 0;
  } catch (error) {
    $("#page").textContent = error.message;
  }
}
$("#next").addEventListener("click", () => { pageIndex += 1; loadPage(); });
$("#prev").addEventListener("click", () => { pageIndex = Math.max(0, pageIndex - 1); loadPage(); });

// ---- Ingest
async function ingest(event) {
  event.preventDefault();
  const out = $("#ingest-status"), bar = $("#progress"), failures = $("#failures");
  failures.replaceChildren();
  try {
    const submitted = await api("/v1/ingest", { method: "POST", body: new FormData(event.target) });
    for (const problem of submitted.problems) failures.append(el("li", "", `not sent: ${problem}`));
    bar.hidden = false;
    for (;;) {
      const job = await api(`/v1/jobs/${encodeURIComponent(submitted.job_id)}`);
      bar.max = job.total || 1;
      bar.value = job.done + job.failed;
      status(out, `job ${job.job_id}: ${job.state}, ${job.done} of ${job.total} stored, ${job.failed} failed`);
      if (job.state === "DONE") {
        failures.append(...job.failures.map((f) => el("li", "", `${f.product_id}/${f.image_id}: ${f.reason}`)));
        loadStats().catch(() => {});
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } catch (error) {
    status(out, error.message, true);
  }
}
$("#csv-form").addEventListener("submit", ingest);
$("#files-form").addEventListener("submit", ingest);

// ---- Tabs
for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    for (const other of document.querySelectorAll("nav button")) other.classList.toggle("active", other === button);
    for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== button.dataset.tab;
    if (button.dataset.tab === "browse") loadPage();
  });
}
keyInput.addEventListener("change", () => loadStats()
  .then(() => status($("#search-status"), ""))
  .catch((e) => status($("#search-status"), e.message, true)));
loadStats().catch((error) => status($("#search-status"), error.message, true));
