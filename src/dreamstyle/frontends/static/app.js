// dreamstyle studio: builds its forms from /api/info (the same settings the CLI is made from),
// uploads images, starts jobs and follows them through server-sent events. No framework, no CDN.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = { info: null, mode: "stylize", content: null, styles: [], model: null, job: null, source: null,
  live: null, submitting: false };
const FINISHED = ["done", "cancelled", "failed"];

async function api(path, options = {}) {
  const res = await fetch(path, options);
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error((body && body.error) || `the server answered ${res.status}`);
  return body;
}

// Every JSON POST says so: the server refuses state-changing requests that don't.
function postJson(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
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
    if (styleModel) choices = [...state.info.styles, ...Object.keys(state.info.fast_styles || {})];
    if (tap) choices = state.info.taps[state.info.default_network];
    if (f.default === null && !tap) {  // "per network" and the like: an empty choice leaves it to dreamstyle
      const o = document.createElement("option"); o.value = ""; o.textContent = f.default_text || "default"; input.append(o);
    }
    for (const c of choices) {
      const o = document.createElement("option"); o.value = o.textContent = c;
      const painting = styleModel && (state.info.fast_styles || {})[c];
      if (painting) o.textContent = `${painting} (your painting's fast style)`;
      input.append(o);
    }
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

// files: not in the form (the painting of a fast style is the first style image)
const HIDDEN = new Set(["save_every", "masks", "guide", "init", "weights", "image", "style_image", "style_data"]);

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
  if (state.mode === "apply" && state.styles.length) values.style_image = state.styles[0];  // its fast style
  return values;
}

// A stored setting as the form (and the command line) writes it: taps TAP or TAP:W, channels C,C,...,
// other lists space-separated. null: nothing the form can show (the field keeps its default).
function asText(f, value) {
  if (value === null || value === undefined) return "";
  if (f.kind === "taps" && typeof value === "object" && !Array.isArray(value)) {  // {tap: weight}, as PNGs store it
    const items = Object.entries(value);
    if (items.some(([, w]) => typeof w !== "number")) return null;
    return items.map(([tap, w]) => (w === 1 ? tap : `${tap}:${w}`)).join(" ");
  }
  if (Array.isArray(value)) {
    if (value.some((v) => v === null || typeof v === "object")) return null;
    return value.map(String).join(f.kind === "channels" ? "," : " ");
  }
  if (typeof value === "object") return null;
  return String(value);
}

function restore(mode, settings) {
  setMode(mode);
  const fields = state.info.modes[mode === "live" ? "apply" : mode];
  const skipped = [];
  // The network first: explore's tap list follows it.
  const entries = Object.entries(settings || {}).sort(([a], [b]) => (b === "model") - (a === "model"));
  for (const [name, value] of entries) {
    const el = $(`#set-${name}`), f = fields.find((x) => x.name === name);
    if (!el || !f) continue;
    if (el.type === "checkbox") { el.checked = value === true; continue; }
    const text = asText(f, value);
    const choices = el.tagName === "SELECT" ? [...el.options].map((o) => o.value) : null;
    if (text === null || (choices && !choices.includes(text))) {
      if (text !== "") skipped.push(name.replaceAll("_", " "));  // not a choice here: e.g. a model file of the server's
      continue;
    }
    el.value = text;
    if (choices) el.dispatchEvent(new Event("change"));
  }
  say(`Settings restored (${mode})` + (skipped.length ? `; left at the default: ${skipped.join(", ")}.` : "."), true);
}

// --- modes -------------------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  for (const b of document.querySelectorAll("#modes button")) b.setAttribute("aria-selected", String(b.dataset.mode === mode));
  $("#style-drop").hidden = mode !== "stylize" && mode !== "apply";
  $("#style-title").textContent = mode === "apply" ? "Your painting (optional)" : "Style images";
  $("#style-note").hidden = mode !== "apply";
  $("#model-upload").hidden = mode !== "apply";
  $("#content-drop").hidden = mode === "live";
  $("#content-title").textContent = mode === "explore" ? "Photo (optional: heat maps over it)" : "Photo";
  $("#start").textContent = mode === "live" ? "Start camera" : "Start";
  $("#live-note").hidden = mode !== "live" || !state.info.live;  // e.g. that all pages' frames share one line
  $("#live-note").textContent = state.info.live ? `Note: ${state.info.live}.` : "";
  $("#placeholder").textContent = mode === "live"
    ? "Press Start camera: each camera frame goes through the chosen style." : "Pick a photo and a style, then press Start.";
  if (mode !== "live") stopLive();
  buildForm();
  updateStart();
}

// Start is off while this page submits a job, while its job runs, and while the camera runs:
// a double-click queues one job, not two.
function jobRunning() { return !!state.job && !FINISHED.includes(state.job.state); }
function updateStart() {
  const button = $("#start");
  const busy = state.submitting || (state.mode === "live" ? !!state.live : jobRunning());
  button.disabled = busy;
  button.title = busy && state.mode !== "live" ? "A job is running: wait for it, or cancel it" : "";
}

// The result's buttons belong to one finished job: hidden (and Download pointing nowhere) otherwise.
function clearResult() {
  $("#result-actions").hidden = true; $("#cli").hidden = true;
  $("#download").removeAttribute("href");
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
    const command = String(p.command || "").split(" ")[0];  // "dream --zoom" is dream's settings
    const mode = command === "sheet" ? "stylize" : command;  // a sheet's cells share stylize's settings
    if (!Object.hasOwn(state.info.modes, mode)) {
      say(`That PNG was made by \`dreamstyle ${command || "?"}\`, which the studio has no mode for.`);
      return;
    }
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
  // Answers can cross (a cancel's reply after the stream's last message): never go back to an older state.
  const last = state.shown;
  if (last && last.id === job.id && job.version !== undefined && job.version < last.version) return;
  state.shown = { id: job.id, version: job.version };
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
  const finished = FINISHED.includes(job.state);
  $("#cancel").disabled = finished;
  updateStart();
  if (!finished || !job.has_result) clearResult();
  else {
    $("#result-actions").hidden = false;
    $("#download").href = `/api/jobs/${job.id}/result`;
    $("#preview").src = `/api/jobs/${job.id}/result`;
  }
}

async function start() {
  if ($("#start").disabled) return;
  say("");
  if (state.mode === "live") return startLive();
  if (state.mode === "apply" && state.styles.length > 1) return say("Fast apply takes one painting: remove the others, or use Stylize to blend them.");
  const body = { mode: state.mode, content: state.content, styles: state.styles, settings: formValues() };
  state.submitting = true; updateStart(); clearResult();
  try {
    const job = await postJson("/api/jobs", body);
    state.submitting = false;
    follow(job);
  } catch (e) { say(e.message); } finally { state.submitting = false; updateStart(); }
}

function follow(job) {
  state.job = job;
  clearResult();
  show(job);
  if (state.source) state.source.close();
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  state.source = source;
  const finish = (j) => { state.job = j; show(j); source.close(); gallery(); if (j.mode === "apply") refreshStyles(); };
  source.onmessage = (e) => {
    const j = JSON.parse(e.data);
    if (FINISHED.includes(j.state)) finish(j); else { state.job = j; show(j); }
  };
  // The stream ends when the job does; the last message may come with the close, so ask once more.
  source.onerror = () => {
    source.close();
    api(`/api/jobs/${job.id}`).then((j) => (FINISHED.includes(j.state) ? finish(j) : follow(j)))
      .catch((e) => say(e.message));
  };
}

async function cancel() {
  if (!state.job) return;
  try { show(await postJson(`/api/jobs/${state.job.id}/cancel`, {})); } catch (e) { say(e.message); }
}

async function copyCli() {
  if (!state.job) return;
  const { command } = await api(`/api/jobs/${state.job.id}/command`);
  const pre = $("#cli"); pre.textContent = command; pre.hidden = false;
  try { await navigator.clipboard.writeText(command); say("Command copied.", true); } catch { say("Copy the command below.", true); }
}

// A finished fast-style job adds the painting's style to the style lists (Fast apply, Live).
async function refreshStyles() {
  try {
    const info = await api("/api/info");
    if (JSON.stringify(info.fast_styles) === JSON.stringify(state.info.fast_styles)) return;
    const keep = formValues();
    state.info.fast_styles = info.fast_styles;
    buildForm();
    for (const [k, v] of Object.entries(keep)) { const el = $(`#set-${k}`); if (el && el.type !== "checkbox") el.value = v; }
  } catch (e) { say(e.message); }
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
// The camera's video must be playing before frames are taken: a paused <video> draws black, and the
// server would stylize black frames into a flat grey box.
async function startLive() {
  state.live = { stream: null, frames: 0, since: 0, running: true };
  updateStart();
  const video = $("#camera");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
    if (!state.live) { for (const t of stream.getTracks()) t.stop(); return; }  // stopped meanwhile
    state.live.stream = stream;
    video.srcObject = stream;
    await video.play();
    await cameraPicture(video);
    $("#stage").classList.add("live");
    $("#placeholder").hidden = true; $("#preview").hidden = true; video.hidden = false;
    $("#cancel").disabled = false;
    state.live.since = performance.now();
    liveLoop();
  } catch (e) {
    stopLive();
    say(`The camera could not start: ${e.message}`);
  }
}

// Resolves once the video has a real picture (its size known and a frame decoded).
async function cameraPicture(video, seconds = 10) {
  const until = performance.now() + seconds * 1000;
  while (!(video.videoWidth > 0 && video.readyState >= 2)) {
    if (performance.now() > until) throw new Error("it gave no picture");
    if (!state.live) throw new Error("stopped");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function liveLoop() {
  const video = $("#camera"), canvas = document.createElement("canvas");
  const model = $("#set-model").value;
  while (state.live && state.live.running) {
    if (video.paused) await video.play().catch(() => {});
    if (!(video.videoWidth > 0 && video.readyState >= 2)) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const scale = 320 / Math.max(video.videoWidth, video.videoHeight);
    canvas.width = Math.round(video.videoWidth * scale); canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.85));
    try {
      const res = await fetch(`/api/live?model=${encodeURIComponent(model)}&size=320`,
        { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: blob });
      if (!res.ok) { say((await res.json()).error); stopLive(); break; }
      const url = URL.createObjectURL(await res.blob());
      if (!state.live) { URL.revokeObjectURL(url); break; }
      const out = $("#live-out"); const old = out.src; out.src = url; out.hidden = false;
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      state.live.frames += 1;
      const secs = (performance.now() - state.live.since) / 1000;
      $("#status").textContent = `live: ${(state.live.frames / secs).toFixed(1)} frames/s`;
      document.body.dataset.liveFrames = String(state.live.frames);
    } catch (e) { say(e.message); stopLive(); break; }
  }
}

function stopLive() {
  if (!state.live) return;
  state.live.running = false;
  if (state.live.stream) for (const t of state.live.stream.getTracks()) t.stop();
  state.live = null;
  const video = $("#camera"); video.pause(); video.srcObject = null; video.hidden = true;
  $("#stage").classList.remove("live");
  $("#live-out").hidden = true;
  if ($("#preview").hidden) $("#placeholder").hidden = false;
  $("#cancel").disabled = !jobRunning();
  updateStart();
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
  $("#cancel").onclick = () => (state.live ? stopLive() : cancel());
  $("#copy-cli").onclick = copyCli;
  setMode("stylize");
  document.body.dataset.ready = "1";
  gallery();
}
main().catch((e) => say(`The studio could not start: ${e.message}`));
