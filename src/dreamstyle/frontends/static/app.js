// dreamstyle studio: builds its forms from /api/info (the same settings the CLI is made from),
// uploads images, starts jobs and follows them through server-sent events. No framework, no CDN.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = { info: null, mode: "stylize", content: null, styles: [], model: null, job: null, source: null, live: null };

async function api(path, options = {}) {
  const res = await fetch(path, options);
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error((body && body.error) || `the server answered ${res.status}`);
  return body;
}

function say(text, ok = false) { const m = $("#message"); m.textContent = text || ""; m.classList.toggle("ok", ok); }

// --- the form, from the settings definitions -------------------------------------------------------
function fieldFor(f) {
  const wrap = document.createElement("div");
  wrap.className = "field" + (f.kind === "bool" ? " check" : "");
  const id = `set-${f.name}`;
  let input;
  const styleModel = f.name === "model" && (state.mode === "apply" || state.mode === "live");
  const tap = f.name === "tap" && state.mode === "explore";
  if (f.kind === "choice" || f.kind === "model" || styleModel || tap) {
    input = document.createElement("select");
    let choices = f.kind === "model" ? state.info.networks : f.choices;
    if (styleModel) choices = state.info.styles;
    if (tap) choices = state.info.taps[state.info.default_network];
    if (f.default === null && !tap) {  // "per network" and the like: an empty choice leaves it to dreamstyle
      const o = document.createElement("option"); o.value = ""; o.textContent = f.default_text || "default"; input.append(o);
    }
    for (const c of choices) { const o = document.createElement("option"); o.value = o.textContent = c; input.append(o); }
    if (f.default !== null) input.value = f.default;
  } else if (f.kind === "bool") {
    input = document.createElement("input"); input.type = "checkbox"; input.checked = !!f.default;
  } else {
    input = document.createElement("input");
    input.type = (f.kind === "int" || f.kind === "float") ? "number" : "text";
    if (input.type === "number") {
      input.step = f.kind === "int" ? "1" : "any";
      if (f.minimum !== null) input.min = f.minimum;
      if (f.maximum !== null) input.max = f.maximum;
      input.inputMode = f.kind === "int" ? "numeric" : "decimal";
    }
    if (f.default !== null && f.default !== undefined) input.value = Array.isArray(f.default) ? f.default.join(" ") : f.default;
    else if (f.default_text) input.placeholder = f.default_text;
  }
  input.id = id; input.name = f.name; input.dataset.kind = f.kind;
  const label = document.createElement("label");
  label.htmlFor = id;
  const help = document.createElement("small");
  help.textContent = f.help + (f.default_text ? ` (default: ${f.default_text})` : "");
  if (f.kind === "bool") { label.append(input, " " + f.name.replaceAll("_", " ")); wrap.append(label, help); }
  else { label.textContent = f.name.replaceAll("_", " "); wrap.append(label, input, help); }
  return wrap;
}

const HIDDEN = new Set(["save_every", "masks", "guide", "init", "weights", "image"]); // files: not in the form yet

function buildForm() {
  const form = $("#settings");
  form.replaceChildren();
  if (state.mode === "live") {
    const f = state.info.modes.apply.find((x) => x.name === "model");
    form.append(fieldFor(f));
    return;
  }
  const fields = state.info.modes[state.mode].filter((f) => f.cli && !HIDDEN.has(f.name));
  const advanced = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Advanced options";
  const inner = document.createElement("div");
  inner.className = "fields";
  advanced.append(summary, inner);
  for (const f of fields) (f.main ? form : inner).append(fieldFor(f));
  if (inner.children.length) form.append(advanced);
  const model = $("#set-model"), tap = $("#set-tap");
  if (model && tap) {  // explore: the tap list follows the network
    const fill = () => {
      const keep = tap.value;
      tap.replaceChildren(...state.info.taps[model.value].map((t) => Object.assign(document.createElement("option"), { value: t, textContent: t })));
      if (state.info.taps[model.value].includes(keep)) tap.value = keep;
    };
    model.addEventListener("change", fill);
  }
}

function formValues() {
  const values = {};
  for (const el of $("#settings").elements) {
    if (!el.name) continue;
    const def = state.info.modes[state.mode === "live" ? "apply" : state.mode].find((f) => f.name === el.name);
    let v = el.type === "checkbox" ? el.checked : el.value;
    if (el.type !== "checkbox" && v === "") continue;
    const shown = def && def.default !== null ? (Array.isArray(def.default) ? def.default.join(" ") : def.default) : null;
    if (shown !== null && String(v) === String(shown)) continue; // the default: leave it to the server
    values[el.name] = v;
  }
  if (state.mode === "apply" && state.model) values.model = state.model.id;
  return values;
}

function restore(mode, settings) {
  setMode(mode);
  for (const [name, value] of Object.entries(settings || {})) {
    const el = $(`#set-${name}`);
    if (!el) continue;
    if (el.type === "checkbox") el.checked = !!value;
    else el.value = Array.isArray(value) ? value.join(" ") : value ?? "";
  }
  say(`Settings restored (${mode}).`, true);
}

// --- modes -------------------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  for (const b of document.querySelectorAll("#modes button")) b.setAttribute("aria-selected", String(b.dataset.mode === mode));
  $("#style-drop").hidden = mode !== "stylize";
  $("#model-upload").hidden = mode !== "apply";
  $("#content-drop").hidden = mode === "live";
  $("#content-title").textContent = mode === "explore" ? "Photo (optional: heat maps over it)" : "Photo";
  $("#start").textContent = mode === "live" ? "Start camera" : "Start";
  if (mode !== "live") stopLive();
  buildForm();
}

// --- images ------------------------------------------------------------------------------------------
async function upload(file) {
  const data = new FormData();
  data.append("file", file);
  return api("/api/uploads", { method: "POST", body: data });
}

function setContent(ref, url) {
  state.content = ref;
  const img = $("#content-thumb");
  img.src = url; img.hidden = false; img.alt = "The chosen photo";
}

function addStyle(ref, url) {
  state.styles.push(ref);
  const fig = document.createElement("figure");
  const img = document.createElement("img"); img.src = url; img.alt = "A chosen style image";
  const remove = document.createElement("button"); remove.textContent = "×"; remove.setAttribute("aria-label", "Remove this style");
  remove.onclick = () => { state.styles = state.styles.filter((s) => s !== ref); fig.remove(); };
  fig.append(img, remove);
  $("#style-thumbs").append(fig);
}

async function takeFiles(files, target) {
  say("");
  for (const file of files) {
    if (file.type === "image/png" && target === "page") { await restoreFromPng(file); continue; }
    try {
      const up = await upload(file);
      if (up.kind === "model") { state.model = up; $("#model-name").textContent = up.name; continue; }
      const url = `/api/uploads/${up.id}`;
      if (target === "style") addStyle(up.id, url); else setContent(up.id, url);
    } catch (e) { say(e.message); }
  }
}

async function restoreFromPng(file) {
  const data = new FormData();
  data.append("file", file);
  try {
    const p = await api("/api/params", { method: "POST", body: data });
    const mode = p.command in state.info.modes ? p.command : "stylize";
    const names = new Set(state.info.modes[mode].map((f) => f.name));
    restore(mode, Object.fromEntries(Object.entries(p).filter(([k]) => names.has(k))));
  } catch (e) { say(e.message); }
}

function dropZone(el, target) {
  el.addEventListener("dragover", (e) => { e.preventDefault(); e.stopPropagation(); el.classList.add("over"); });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (e) => { e.preventDefault(); e.stopPropagation(); el.classList.remove("over"); takeFiles(e.dataTransfer.files, target); });
  el.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === el) el.querySelector("input[type=file]").click(); });
}

function examples() {
  for (const name of state.info.examples) {
    for (const [box, target] of [["#content-examples", "content"], ["#style-examples", "style"]]) {
      const b = document.createElement("button");
      b.type = "button"; b.title = name; b.setAttribute("aria-label", `example ${name}`);
      const img = document.createElement("img"); img.src = `/api/examples/${name}`; img.alt = "";
      b.append(img);
      b.onclick = () => target === "style" ? addStyle(`example:${name}`, img.src) : setContent(`example:${name}`, img.src);
      $(box).append(b);
    }
  }
}

// --- jobs --------------------------------------------------------------------------------------------
function fmtTime(s) { return s === null || s === undefined ? "" : s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`; }

function show(job) {
  const bar = $("#progress");
  bar.hidden = false; bar.max = job.total || 1; bar.value = job.step || 0;
  const parts = Object.entries(job.parts || {}).map(([k, v]) => `${k} ${Number(v).toPrecision(3)}`).join(", ");
  let text;
  if (job.state === "queued") text = job.position ? `waiting: number ${job.position} in line` : "starting";
  else if (job.state === "running") text = `${job.label || ""} step ${job.step} of ${job.total}${parts ? " · " + parts : ""}${job.eta !== null ? " · about " + fmtTime(job.eta) + " left" : ""}`;
  else if (job.state === "done") text = `done in ${fmtTime(job.seconds)}`;
  else if (job.state === "cancelled") text = job.has_result ? `cancelled at step ${job.step}; the best picture so far is kept` : "cancelled";
  else text = "failed";
  $("#status").textContent = text;
  if (job.error) say(job.error);
  if (job.preview_step || job.has_result) {
    const img = $("#preview");
    img.src = `/api/jobs/${job.id}/preview?s=${job.preview_step}-${job.state}`;
    img.hidden = false; $("#placeholder").hidden = true;
  }
  const finished = ["done", "cancelled", "failed"].includes(job.state);
  $("#cancel").disabled = finished;
  $("#start").disabled = false;
  if (finished && job.has_result) {
    $("#result-actions").hidden = false;
    $("#download").href = `/api/jobs/${job.id}/result`;
    $("#preview").src = `/api/jobs/${job.id}/result`;
  }
}

async function start() {
  say("");
  if (state.mode === "live") return startLive();
  const body = { mode: state.mode, content: state.content, styles: state.styles, settings: formValues() };
  try {
    const job = await api("/api/jobs", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    follow(job);
  } catch (e) { say(e.message); }
}

function follow(job) {
  state.job = job;
  $("#result-actions").hidden = true; $("#cli").hidden = true;
  show(job);
  if (state.source) state.source.close();
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  state.source = source;
  const finish = (j) => { state.job = j; show(j); source.close(); gallery(); };
  source.onmessage = (e) => {
    const j = JSON.parse(e.data);
    if (["done", "cancelled", "failed"].includes(j.state)) finish(j); else { state.job = j; show(j); }
  };
  // The stream ends when the job does; the last message may come with the close, so ask once more.
  source.onerror = () => {
    source.close();
    api(`/api/jobs/${job.id}`).then((j) => (["done", "cancelled", "failed"].includes(j.state) ? finish(j) : follow(j)))
      .catch((e) => say(e.message));
  };
}

async function cancel() {
  if (!state.job) return;
  try { show(await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" })); } catch (e) { say(e.message); }
}

async function copyCli() {
  if (!state.job) return;
  const { command } = await api(`/api/jobs/${state.job.id}/command`);
  const pre = $("#cli"); pre.textContent = command; pre.hidden = false;
  try { await navigator.clipboard.writeText(command); say("Command copied.", true); } catch { say("Copy the command below.", true); }
}

async function gallery() {
  const jobs = await api("/api/jobs");
  const box = $("#gallery");
  box.replaceChildren();
  for (const j of jobs.filter((x) => x.has_result).reverse()) {
    const b = document.createElement("button");
    const img = document.createElement("img"); img.src = `/api/jobs/${j.id}/result`; img.alt = `${j.mode} result`;
    const cap = document.createElement("span");
    cap.textContent = `${j.mode} · ${Object.entries(j.params.settings || {}).map(([k, v]) => `${k}=${v}`).join(" ") || "defaults"}`;
    b.append(img, cap);
    b.onclick = () => { restore(j.mode, j.params.settings); follow(j); };
    box.append(b);
  }
}

// --- live --------------------------------------------------------------------------------------------
async function startLive() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
    const video = $("#camera"); video.srcObject = stream;
    state.live = { stream, frames: 0, since: performance.now(), running: true };
    $("#placeholder").hidden = true; $("#preview").hidden = true; $("#live-out").hidden = false;
    $("#cancel").disabled = false;
    liveLoop();
  } catch (e) { say(`The camera could not start: ${e.message}`); }
}

async function liveLoop() {
  const video = $("#camera"), canvas = document.createElement("canvas");
  const model = $("#set-model").value;
  while (state.live && state.live.running) {
    if (!video.videoWidth) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const scale = 320 / Math.max(video.videoWidth, video.videoHeight);
    canvas.width = Math.round(video.videoWidth * scale); canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.85));
    try {
      const res = await fetch(`/api/live?model=${encodeURIComponent(model)}&size=320`, { method: "POST", body: blob });
      if (!res.ok) { say((await res.json()).error); break; }
      const url = URL.createObjectURL(await res.blob());
      const out = $("#live-out"); const old = out.src; out.src = url; if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      state.live.frames += 1;
      const secs = (performance.now() - state.live.since) / 1000;
      $("#status").textContent = `live: ${(state.live.frames / secs).toFixed(1)} frames/s`;
      document.body.dataset.liveFrames = String(state.live.frames);
    } catch (e) { say(e.message); break; }
  }
}

function stopLive() {
  if (!state.live) return;
  state.live.running = false;
  for (const t of state.live.stream.getTracks()) t.stop();
  state.live = null;
  $("#live-out").hidden = true;
}

// --- start up ----------------------------------------------------------------------------------------
async function main() {
  state.info = await api("/api/info");
  examples();
  for (const b of document.querySelectorAll("#modes button")) b.onclick = () => setMode(b.dataset.mode);
  dropZone($("#content-drop"), "content");
  dropZone($("#style-drop"), "style");
  $("#content-file").onchange = (e) => takeFiles(e.target.files, "content");
  $("#style-file").onchange = (e) => takeFiles(e.target.files, "style");
  $("#model-file").onchange = (e) => takeFiles(e.target.files, "model");
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => { e.preventDefault(); takeFiles(e.dataTransfer.files, "page"); });
  $("#start").onclick = start;
  $("#cancel").onclick = () => (state.live ? (stopLive(), ($("#cancel").disabled = true)) : cancel());
  $("#copy-cli").onclick = copyCli;
  setMode("stylize");
  document.body.dataset.ready = "1";
  gallery();
}
main().catch((e) => say(`The studio could not start: ${e.message}`));
