// The seglab serve page: one card per served model; an image dropped or picked is sent to each
// model in turn (so each latency is its own, not shared with the others), and each card shows
// the image with the model's mask over it, the latency, a legend with the class shares and a
// link to download the mask. Everything the server says is shown as text, never as HTML.
"use strict";

const state = { models: [], maxUpload: 0, urls: [], run: 0 };

function byId(id) {
  return document.getElementById(id);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, isError) {
  const status = byId("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

async function loadModels() {
  const response = await fetch("models");
  if (!response.ok) throw new Error(`GET /models answered ${response.status}`);
  const body = await response.json();
  state.models = body.models;
  state.maxUpload = body.max_upload_bytes;
  const names = state.models.map((m) => `${m.name} (${m.kind})`).join(", ");
  byId("served").textContent = `Serving ${names}`;
  const megabytes = (state.maxUpload / 1048576).toFixed(0);
  byId("limits").textContent =
    `PNG, JPEG, BMP, TIFF, WebP or GIF, up to ${megabytes} MB. ` +
    "The image goes to this server only.";
  const results = byId("results");
  results.replaceChildren(...state.models.map(modelCard));
}

function modelCard(model) {
  const card = element("article", "model");
  card.dataset.model = model.name;
  const title = element("h2", null, model.name);
  title.append(" ", element("span", "kind", model.kind));
  const stage = element("div", "stage");
  const photo = element("img", "photo");
  photo.alt = "";
  const mask = element("img", "mask");
  mask.alt = `mask predicted by ${model.name}`;
  stage.append(photo, mask);
  const timing = element("p", "timing");
  const latency = element("span", "latency", "–");
  latency.title = "on the server, from the upload received to the mask ready";
  const inference = element("span", "inference", "–");
  inference.title = "the model's own time for the batch this image ran in";
  timing.append("latency ", latency, " ms", element("span", "sep", " · "), "model ");
  timing.append(inference, " ms");
  const legend = element("ul", "legend");
  model.classes.forEach((name, k) => {
    const item = element("li");
    const swatch = element("span", "swatch");
    swatch.style.backgroundColor = `rgb(${model.colors[k].join(",")})`;
    item.append(swatch, element("span", "name", name), element("span", "share", ""));
    legend.append(item);
  });
  const download = element("a", "download", "Download mask (PNG)");
  download.hidden = true;
  const message = element("p", "message");
  card.append(title, stage, ...remarks(model), timing, legend, download, message);
  if (model.card) {
    const details = element("details", "card");
    details.append(element("summary", null, "Deployment card"));
    details.append(element("pre", null, JSON.stringify(model.card, null, 2)));
    card.append(details);
  }
  return card;
}

// Beside the overlay, what makes its mask worth nothing (a useless or undertrained model), so
// nobody takes a mask that merely looks like a result for one.
function remarks(model) {
  return (model.warnings || []).map((text) => {
    const remark = element("p", "remark", `⚠ ${text}`);
    remark.setAttribute("role", "note");
    return remark;
  });
}

function forget() {
  state.urls.forEach((url) => URL.revokeObjectURL(url));
  state.urls = [];
}

function keep(url) {
  state.urls.push(url);
  return url;
}

async function segment(file) {
  if (!file) return;
  if (state.maxUpload && file.size > state.maxUpload) {
    setStatus(`${file.name} is over the upload limit`, true);
    return;
  }
  const run = ++state.run;
  forget();
  const photoUrl = keep(URL.createObjectURL(file));
  const stem = file.name.replace(/\.[^.]*$/, "") || "image";
  for (const card of document.querySelectorAll("article.model")) {
    card.classList.remove("done", "failed");
    card.querySelector("img.photo").src = photoUrl;
    const mask = card.querySelector("img.mask");
    mask.removeAttribute("src");
    card.querySelector(".latency").textContent = "…";
    card.querySelector(".inference").textContent = "…";
    card.querySelector("a.download").hidden = true;
    card.querySelector(".message").textContent = "";
  }
  setStatus(`Segmenting ${file.name}…`);
  let failures = 0;
  for (const model of state.models) {
    if (run !== state.run) return; // another image was chosen meanwhile
    const card = document.querySelector(`article.model[data-model="${CSS.escape(model.name)}"]`);
    try {
      await predictInto(card, model, file, stem);
    } catch (error) {
      failures += 1;
      card.classList.add("failed");
      card.querySelector(".latency").textContent = "–";
      card.querySelector(".inference").textContent = "–";
      card.querySelector(".message").textContent = error.message;
    }
  }
  if (run === state.run) {
    setStatus(failures ? `${failures} model(s) failed on ${file.name}` : file.name, failures > 0);
  }
}

async function predictInto(card, model, file, stem) {
  const form = new FormData();
  form.append("image", file);
  const response = await fetch(`predict?model=${encodeURIComponent(model.name)}`, {
    method: "POST",
    body: form,
    headers: { Accept: "image/png" },
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (ignored) {
      // a body that is not JSON: the status says enough
    }
    throw new Error(detail);
  }
  const maskUrl = keep(URL.createObjectURL(await response.blob()));
  const mask = card.querySelector("img.mask");
  await new Promise((resolve, reject) => {
    mask.onload = resolve;
    mask.onerror = () => reject(new Error("the mask could not be shown"));
    mask.src = maskUrl;
  });
  card.querySelector(".latency").textContent = response.headers.get("X-Latency-Ms");
  card.querySelector(".inference").textContent = response.headers.get("X-Inference-Ms");
  const shares = (response.headers.get("X-Class-Shares") || "").split(",").map(Number);
  card.querySelectorAll(".legend li").forEach((item, k) => {
    const share = shares[k] || 0;
    item.querySelector(".share").textContent = `${(100 * share).toFixed(1)}%`;
    item.classList.toggle("absent", share === 0);
  });
  const download = card.querySelector("a.download");
  download.href = maskUrl;
  download.download = `${stem}_${model.name}.png`;
  download.hidden = false;
  card.classList.add("done");
}

function setOpacity(value) {
  document.documentElement.style.setProperty("--mask-opacity", String(value / 100));
  byId("opacity-value").textContent = `${value}%`;
}

function start() {
  const drop = byId("drop");
  const input = byId("file");
  input.addEventListener("change", () => segment(input.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    segment(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
  const opacity = byId("opacity");
  opacity.addEventListener("input", () => setOpacity(opacity.value));
  setOpacity(opacity.value);
  loadModels().catch((error) => setStatus(error.message, true));
}

start();
