// dreamstyle studio: builds its forms from /api/info (the same settings the CLI is made from),
// uploads images, starts jobs and follows them through server-sent events, lists every job of the
// server in a panel that survives a reload. No framework, no CDN.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = { info: null, mode: "stylize", content: null, styles: [], model: null, job: null, source: null,
  live: null, submitting: false, cards: new Map(), panelTimer: null, paintings: {} };
const FINISHED = ["done", "cancelled", "failed"];
const PAINTED = ["stylize", "apply"];  // the modes that take paintings
const MODE_NAMES = { stylize: "Stylize", apply: "Fast apply", dream: "Dream", explore: "Explore", live: "Live" };

async function api(path, options = {}) {
  let res;
  try { res = await fetch(path, options); } catch {
    throw new Error("The studio's server does not answer: is `dreamstyle serve` still running?");
  }
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
function el(tag, props = {}, ...children) { const e = Object.assign(document.createElement(tag), props); e.append(...children); return e; }

// --- the form, from the settings definitions -------------------------------------------------------
// Human labels; the command line's flag is the tooltip (and shows small beside the label).
const LABELS = {
  model: "Network", preset: "Quality preset", size: "Size (long side, px)", content_weight: "Keep the photo",
  style_weight: "Style strength", iterations: "Steps", seed: "Seed", tv_weight: "Smoothing", lr: "Step size",
  ema: "Averaging of steps", style_blend: "Painting weights", style_layers: "Style layers",
  content_layers: "Photo layers", style_loss: "Style measure", smooth: "Smoothing kind", pooling: "Pooling",
  preserve_color: "Keep the photo's colours", optimizer: "Optimizer", init: "Start from", pyramid: "Coarse to fine",
  style_scale: "Painting scale", dream: "Dream while stylizing", force: "Run even if it is slow", device: "Device",
  precision: "Precision", targets: "What to dream of", objective: "Dream measure", octaves: "Octaves (scales)",
  octave_scale: "Octave scale", step_size: "Step size", jitter: "Jitter (px)", tile: "Tile (px)",
  laplacian: "Detail balance", tap: "Layer", channels: "Channels", count: "Cells", strength: "Style strength",
  style_steps: "Training steps for a new painting",
};
const MAIN_TOO = new Set(["seed"]);  // shown before "Advanced options" though the CLI lists it among the rest

function labelOf(f) {
  if (f.name === "model" && (state.mode === "apply" || state.mode === "live")) return "Style";
  return LABELS[f.name] || f.name.replaceAll("_", " ");
}

function option(value, text, disabled = false) { return el("option", { value, textContent: text, disabled }); }

// The choices of a select: networks (those that can't run here are marked and off), styles, taps by stage.
function fillChoices(input, f, styleModel, tap) {
  if (f.default === null && !tap) input.append(option("", f.default_text || "default"));
  if (tap) return fillTaps(input, state.info.default_network);
  if (styleModel) {
    for (const s of state.info.styles) input.append(option(s, s.replaceAll("_", " ")));
    for (const [k, painting] of Object.entries(state.info.fast_styles || {})) input.append(option(k, `${painting} (your painting's fast style)`));
    return;
  }
  if (f.kind === "model") {
    for (const n of state.info.networks) {
      const needs = (state.info.network_needs || {})[n];
      input.append(option(n, needs ? `${n}: ${needs}` : n, !!needs));
    }
    return;
  }
  for (const c of f.choices) input.append(option(c, c));
}

// Explore's taps, grouped by the network's stages in the network's order: a tap with parts under it
// (stem.0 is in stem, fire2.squeeze in fire2), the first two parts of a deeper name (blocks.3.dw is in
// blocks 3), else the number in the name (conv3_1 is in stage 3).
function stageOf(t, all) {
  const parts = t.split(".");
  const hasParts = (name) => [...all].some((x) => x.startsWith(name + "."));
  if (parts.length > 2 || (parts.length === 2 && hasParts(t))) return parts.slice(0, 2).join(" ");
  if (parts.length === 2) return parts[0];
  if (hasParts(t)) return t;
  const m = /^[A-Za-z]+(\d+)/.exec(t);
  return m ? `stage ${m[1]}` : t;
}

// A tap's part in words, with its name (what the command line takes) after it: blocks.3.dw.1 is
// "depthwise · norm (blocks.3.dw.1)". A convolution block's numbered parts are its convolution, its
// normalization and its activation, in that order (torchvision's and Lite0's Conv-BN-activation).
const PART_WORDS = { dw: "depthwise", expand: "expand", project: "project", squeeze: "squeeze",
  squeeze_activation: "squeeze activation", expand1x1: "expand 1x1", expand1x1_activation: "expand 1x1 activation",
  expand3x3: "expand 3x3", expand3x3_activation: "expand 3x3 activation", cat: "joined", se: "squeeze-excite",
  block: "block", conv: "convolution" };
const STEP_WORDS = ["conv", "norm", "activation"];
function tapLabel(t, stage) {
  const inner = t.split(".").slice(stage.split(" ").length);
  if (!inner.length) return t;
  const number = (p, last) => (last ? STEP_WORDS[Number(p)] ?? `part ${p}` : `part ${p}`);
  const words = inner.map((p, i) => PART_WORDS[p]
    ?? (/^\d+$/.test(p) ? number(p, i === inner.length - 1) : p.replaceAll("_", " ")));
  return `${words.join(" · ")} (${t})`;
}

function fillTaps(select, network) {
  const keep = select.value, taps = state.info.taps[network] || [], all = new Set(taps);
  const groups = new Map();
  for (const t of taps) {
    const stage = stageOf(t, all);
    if (!groups.has(stage)) groups.set(stage, []);
    groups.get(stage).push(t);
  }
  const whole = (t, stage) => stage === t || stage === t.replace(".", " ");  // the stage's own tap
  select.replaceChildren(...[...groups].map(([stage, members]) => el("optgroup", { label: stage },
    ...members.map((t) => option(t, whole(t, stage) ? `${t} (whole stage)` : tapLabel(t, stage))))));
  if (all.has(keep)) select.value = keep;
}

function inputFor(f) {
  const styleModel = f.name === "model" && (state.mode === "apply" || state.mode === "live");
  const tap = f.name === "tap" && state.mode === "explore";
  let input;
  if (f.kind === "choice" || f.kind === "model" || styleModel || tap) {
    input = el("select");
    fillChoices(input, f, styleModel, tap);
    if (f.default !== null && !tap) input.value = f.default;
  } else if (f.kind === "bool") {
    input = el("input", { type: "checkbox", checked: !!f.default });
  } else {
    input = el("input", { type: (f.kind === "int" || f.kind === "float") ? "number" : "text" });
    if (input.type === "number") {
      input.step = f.kind === "int" ? "1" : "any";
      if (f.minimum !== null) input.min = f.minimum;
      if (f.maximum !== null) input.max = f.maximum;
      input.inputMode = f.kind === "int" ? "numeric" : "decimal";
    }
    if (f.default !== null && f.default !== undefined) input.value = Array.isArray(f.default) ? f.default.join(" ") : f.default;
    else if (f.default_text) input.placeholder = f.default_text;
  }
  Object.assign(input, { id: `set-${f.name}`, name: f.name, title: f.flag || "" });
  input.dataset.kind = f.kind;
  return input;
}

function fieldFor(f) {
  const wrap = el("div", { className: "field" + (f.kind === "bool" ? " check" : "") });
  const input = inputFor(f);
  const label = el("label", { htmlFor: input.id, title: f.flag ? `command line: ${f.flag}` : "" });
  const flag = el("span", { className: "flag", textContent: f.flag || "" });
  const help = el("small", { textContent: f.help + (f.default_text ? ` (default: ${f.default_text})` : "") });
  if (f.kind === "bool") { label.append(input, " " + labelOf(f), flag); wrap.append(label, help); return wrap; }
  label.append(labelOf(f), flag);
  if (f.name === "seed") wrap.append(label, seedRow(input), help);
  else wrap.append(label, input, help);
  return wrap;
}

// A seed with "new" (a random one) and "reuse" (the seed of the picture on the stage).
function seedRow(input) {
  const fresh = el("button", { type: "button", textContent: "New", title: "A new random seed" });
  fresh.onclick = () => { input.value = String(Math.floor(Math.random() * 2 ** 31)); saveDraft(); };
  const reuse = el("button", { type: "button", id: "seed-reuse", textContent: "Reuse", title: "The seed of the picture shown" });
  reuse.onclick = () => {
    const seed = state.job && ((state.job.result_params || {}).seed ?? (state.job.params.settings || {}).seed);
    if (seed === undefined || seed === null) return say("The picture shown has no seed to reuse.");
    input.value = String(seed); saveDraft();
  };
  return el("div", { className: "row" }, input, fresh, reuse);
}

// files: not in the form (the painting of a fast style is the first style image)
const HIDDEN = new Set(["save_every", "masks", "guide", "init", "weights", "image", "style_image", "style_data"]);

function buildForm() {
  const form = $("#settings");
  form.replaceChildren();
  if (state.mode === "live") {
    form.append(fieldFor(state.info.modes.apply.find((x) => x.name === "model")));
    return;
  }
  const fields = state.info.modes[state.mode].filter((f) => f.cli && !HIDDEN.has(f.name));
  const inner = el("div", { className: "fields" });
  const advanced = el("details", {}, el("summary", { textContent: "Advanced options" }), inner);
  for (const f of fields) (f.main || MAIN_TOO.has(f.name) ? form : inner).append(fieldFor(f));
  if (inner.children.length) form.append(advanced);
  const model = $("#set-model"), tap = $("#set-tap");
  if (model && tap) model.addEventListener("change", () => fillTaps(tap, model.value));  // explore: taps follow the network
}

function formValues() {
  const values = {};
  for (const e of $("#settings").elements) {
    if (!e.name) continue;
    const def = state.info.modes[state.mode === "live" ? "apply" : state.mode].find((f) => f.name === e.name);
    const v = e.type === "checkbox" ? e.checked : e.value;
    if (e.type !== "checkbox" && v === "") continue;
    const shown = def && def.default !== null ? (Array.isArray(def.default) ? def.default.join(" ") : def.default) : null;
    if (shown !== null && String(v) === String(shown)) continue; // the default: leave it to the server
    values[e.name] = v;
  }
  if (state.mode === "apply" && state.model) values.model = state.model.id;
  if (state.mode === "apply" && state.styles.length) values.style_image = state.styles[0].ref;  // its fast style
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

function restore(mode, settings, quiet = false) {
  setMode(mode);
  const fields = state.info.modes[mode === "live" ? "apply" : mode];
  const skipped = [];
  // The network first: explore's tap list follows it.
  const entries = Object.entries(settings || {}).sort(([a], [b]) => (b === "model") - (a === "model"));
  for (const [name, value] of entries) {
    const input = $(`#set-${name}`), f = fields.find((x) => x.name === name);
    if (!input || !f) continue;
    if (input.type === "checkbox") { input.checked = value === true; continue; }
    const text = asText(f, value);
    const choices = input.tagName === "SELECT" ? [...input.options].map((o) => o.value) : null;
    if (text === null || (choices && !choices.includes(text))) {
      if (text !== "") skipped.push(labelOf(f));  // not a choice here: e.g. a model file of the server's
      continue;
    }
    input.value = text;
    if (choices) input.dispatchEvent(new Event("change"));
  }
  if (!quiet) say(`Settings restored (${mode})` + (skipped.length ? `; left at the default: ${skipped.join(", ")}.` : "."), true);
}

// --- modes -------------------------------------------------------------------------------------------
const PLACEHOLDERS = {
  stylize: "Pick a photo and a painting, then press Start.", apply: "Pick a photo and a style, then press Start.",
  dream: "Pick a photo, then press Start: the network dreams into it.",
  explore: "Press Start to see what the chosen layer's channels respond to (a photo is optional).",
  live: "Press Start camera: each camera frame goes through the chosen style.",
};

function setMode(mode) {
  const prev = state.mode;
  state.mode = mode;
  if (prev !== mode && (PAINTED.includes(prev) || PAINTED.includes(mode))) {  // each mode keeps its own paintings:
    state.paintings[prev] = state.styles;  // Stylize's would make Fast apply fine-tune a style (minutes)
    setStyles(state.paintings[mode] || []);
  }
  for (const b of document.querySelectorAll("#modes button")) {
    b.setAttribute("aria-selected", String(b.dataset.mode === mode));
    b.tabIndex = b.dataset.mode === mode ? 0 : -1;  // one tab stop; the arrow keys move between the tabs
  }
  $("#style-drop").hidden = mode !== "stylize" && mode !== "apply";
  $("#style-title").textContent = mode === "apply" ? "Your painting (optional)" : "Paintings";
  $("#style-note").hidden = mode !== "apply";
  $("#model-upload").hidden = mode !== "apply";
  $("#content-drop").hidden = mode === "live";
  $("#content-title").textContent = mode === "explore" ? "Photo (optional: heat maps over it)" : "Photo";
  $("#start").textContent = mode === "live" ? "Start camera" : "Start";
  $("#snapshot").hidden = mode !== "live";
  $("#live-note").hidden = mode !== "live" || !state.info.live;  // e.g. that all pages' frames share one line
  $("#live-note").textContent = state.info.live ? `Note: ${state.info.live}.` : "";
  $("#placeholder").textContent = PLACEHOLDERS[mode];
  $("#presets").hidden = mode === "live";
  document.body.classList.toggle("live-mode", mode === "live");  // the last job's picture and buttons step aside
  if (mode !== "live") stopLive();
  $("#placeholder").hidden = mode === "live" ? !!state.live : !!state.pictureUrl;
  buildForm();
  fillPresets();
  updateStart();
}

function tabKeys(e) {
  const tabs = [...document.querySelectorAll("#modes button")];
  const at = tabs.indexOf(document.activeElement);
  const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (at < 0 || to === undefined) return;
  e.preventDefault();
  const tab = tabs[(to + tabs.length) % tabs.length];
  setMode(tab.dataset.mode); saveDraft(); tab.focus();
}

// Start is off while this page submits a job (a double click sends one) and while the camera runs;
// while a job runs, Start queues another.
function updateStart() {
  const button = $("#start");
  const busy = state.submitting || (state.mode === "live" && !!state.live);
  button.disabled = busy;
  const running = state.job && !FINISHED.includes(state.job.state);
  if (state.mode !== "live") button.textContent = running ? "Queue another" : "Start";
}

// --- images ------------------------------------------------------------------------------------------
const GONE = "An image chosen before is no longer on the server (it was restarted): upload it again.";
function refUrl(ref) { return ref.startsWith("example:") ? `/api/examples/${ref.slice(8)}` : `/api/uploads/${ref}`; }

// An upload with its progress shown (a large photo takes seconds to send).
function upload(file) {
  return new Promise((resolve, reject) => {
    const bar = $("#upload-progress"), xhr = new XMLHttpRequest(), data = new FormData();
    data.append("file", file);
    xhr.open("POST", "/api/uploads");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) { bar.hidden = false; bar.max = e.total; bar.value = e.loaded; } };
    xhr.onloadend = () => {
      bar.hidden = true;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: said below */ }
      if (xhr.status === 200 && body) resolve(body);
      else reject(new Error((body && body.error) || (xhr.status ? `the upload failed (${xhr.status})` : "the upload did not reach the server")));
    };
    xhr.send(data);
  });
}

function setContent(ref, name = "") {
  state.content = ref ? { ref, name } : null;
  const img = $("#content-thumb");
  $("#content-figure").hidden = !ref;
  img.onerror = () => { if (state.content && state.content.ref === ref) { setContent(null); say(GONE); } };
  if (ref) { img.src = refUrl(ref); img.alt = `The chosen photo${name ? ": " + name : ""}`; } else img.removeAttribute("src");
  saveDraft();
}

function addStyle(ref, name = "") {
  const item = { ref, name };
  state.styles.push(item);
  const remove = el("button", { type: "button", textContent: "×", title: "Remove this painting" });
  remove.setAttribute("aria-label", "Remove this style");
  const img = el("img", { src: refUrl(ref), alt: `A chosen painting${name ? ": " + name : ""}` });
  const fig = el("figure", {}, img, remove);
  remove.onclick = () => { state.styles = state.styles.filter((s) => s !== item); fig.remove(); saveDraft(); };
  img.onerror = () => { remove.onclick(); say(GONE); };
  $("#style-thumbs").append(fig);
  saveDraft();
}

function setStyles(items) {
  state.styles = []; $("#style-thumbs").replaceChildren();
  for (const s of items) addStyle(s.ref, s.name);
}

// An upload's error shows in the box it was dropped on too (on a phone the messages are far below).
function zoneError(target, text) {
  const box = $(`#${target === "style" || target === "model" ? target : "content"}-error`);
  box.textContent = text || ""; box.hidden = !text;
}

async function takeFiles(files, target) {
  say(""); zoneError(target, "");
  for (const file of files) {
    if (file.type === "image/png" && target === "page") { await restoreFromPng(file); continue; }
    try {
      const up = await upload(file);
      if (up.kind === "model") { state.model = up; $("#model-name").textContent = up.name; continue; }
      if (target === "style") addStyle(up.id, up.name); else setContent(up.id, up.name);
    } catch (e) { say(e.message); zoneError(target, e.message); }
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
    restore(mode, Object.fromEntries(Object.entries(p).filter(([k]) => names.has(k))), true);
    const found = p.restore || { content: null, styles: [], missing: [] };
    if (found.content) setContent(found.content, p.content || p.image || "");
    if (mode === "stylize" && found.styles.length) setStyles(found.styles.map((ref) => ({ ref, name: "" })));
    say(`Settings restored (${mode})` + (found.missing.length
      ? `; upload again what this server no longer has: ${found.missing.join(", ")}.` : "."), true);
    saveDraft();
  } catch (e) { say(e.message); }
}

function dropZone(zone, target) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); e.stopPropagation(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); e.stopPropagation(); zone.classList.remove("over"); takeFiles(e.dataTransfer.files, target); });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === zone) zone.querySelector("input[type=file]").click(); });
}

// The examples, photos and paintings apart, each with its title.
function examples() {
  const kinds = state.info.example_kinds || {};
  for (const name of state.info.examples) {
    const { kind, title } = kinds[name] || { kind: "both", title: name.replaceAll("_", " ") };
    for (const [box, target] of [["#content-examples", "photo"], ["#style-examples", "painting"]]) {
      if (kind !== "both" && kind !== target) continue;
      const b = el("button", { type: "button", title },
        el("img", { src: `/api/examples/${name}`, alt: "" }), el("span", { textContent: title.split(",")[0] }));
      b.setAttribute("aria-label", `example ${name}`);
      b.onclick = () => (target === "painting" ? addStyle(`example:${name}`, `${name}.jpg`) : setContent(`example:${name}`, `${name}.jpg`));
      $(box).append(b);
    }
  }
}

// --- what this tab had chosen, kept across a reload (sessionStorage) -------------------------------
function saveDraft() {
  if (!state.info || state.restoring) return;
  const draft = { mode: state.mode, content: state.content, styles: state.styles, settings: formValues(),
    job: state.job ? state.job.id : null };
  delete draft.settings.style_image;
  try { sessionStorage.setItem("dreamstyle-draft", JSON.stringify(draft)); } catch { /* private mode: no draft */ }
}

function restoreDraft() {
  let draft = null;
  try { draft = JSON.parse(sessionStorage.getItem("dreamstyle-draft") || "null"); } catch { draft = null; }
  if (!draft || !MODE_NAMES[draft.mode]) return null;
  state.restoring = true;
  try {
    restore(draft.mode, draft.settings, true);
    if (draft.content) setContent(draft.content.ref, draft.content.name);
    setStyles(draft.styles || []);
  } finally { state.restoring = false; }
  return draft;
}

// --- the stage: the shown job's picture, its photo to compare, what it was made from ----------------
function fmtTime(s) { return s === null || s === undefined ? "" : s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`; }

function statusText(job) {
  const parts = Object.entries(job.parts || {}).map(([k, v]) => `${k} ${Number(v).toPrecision(3)}`).join(", ");
  if (job.state === "queued") return job.position ? `waiting: number ${job.position} in line` : "starting";
  if (job.state === "running") return `${job.label || ""} step ${job.step} of ${job.total}${parts ? " · " + parts : ""}${job.eta !== null ? " · about " + fmtTime(job.eta) + " left" : ""}`;
  if (job.state === "done") return `done in ${fmtTime(job.seconds)}`;
  if (job.state === "cancelled") return job.has_result ? `cancelled at step ${job.step}; the best picture so far is kept` : "cancelled";
  return "failed";
}

function pictureUrl(job) {
  if (FINISHED.includes(job.state) && job.has_result) return `/api/jobs/${job.id}/result`;
  if (job.preview_step || job.has_result) return `/api/jobs/${job.id}/preview?s=${job.preview_step}-${job.state}`;
  return null;
}

function show(job) {
  // Answers can cross (a cancel's reply after the stream's last message): never go back to an older state.
  const last = state.shown;
  if (last && last.id === job.id && job.version !== undefined && job.version < last.version) return;
  state.shown = { id: job.id, version: job.version };
  const bar = $("#progress");
  bar.hidden = false; bar.max = job.total || 1; bar.value = job.step || 0;
  $("#status").textContent = statusText(job);
  if (job.error) say(job.error);
  const url = pictureUrl(job);
  if (url) picture(url);
  else { $("#view").hidden = true; $("#placeholder").hidden = false; }
  const finished = FINISHED.includes(job.state);
  $("#cancel").disabled = finished;
  updateStart();
  $("#result-actions").hidden = !(finished && job.has_result);
  if (finished && job.has_result) $("#download").href = `/api/jobs/${job.id}/result`;
  else { $("#download").removeAttribute("href"); $("#cli").hidden = true; }
  for (const li of $("#jobs").children) li.classList.toggle("shown", li.dataset.id === job.id);
  showParams(finished ? job.result_params : null);
}

// The settings embedded in the result (what "Download" saves), as a list to read.
function showParams(params) {
  $("#params").hidden = !params;
  const text = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v));
  $("#params-list").replaceChildren(...Object.entries(params || {}).filter(([, v]) => v !== null)
    .flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: text(v) })]));
}

// The stage's picture: fetched whole, then swapped in at once, one fetch at a time (the latest one
// wanted next), so fast previews never leave the stage blank while an image loads.
async function picture(url) {
  if (url === state.pictureUrl || url === state.pictureWanted) return;
  state.pictureWanted = url;
  if (state.pictureLoading) return;
  state.pictureLoading = true;
  try {
    while (state.pictureWanted && state.pictureWanted !== state.pictureUrl) {
      const want = state.pictureWanted;
      const res = await fetch(want);
      if (res.ok && state.pictureWanted === want) {
        const img = $("#preview"), old = img.src;
        img.src = URL.createObjectURL(await res.blob());
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        state.pictureUrl = want;
        $("#view").hidden = false; $("#placeholder").hidden = true;
      } else if (!res.ok) break;
    }
  } catch { /* the next update tries again */ } finally { state.pictureLoading = false; }
}

// The photo under the result, for the before/after slider, and the photo and paintings beside it.
function stageInputs(job) {
  const p = job.params || {}, names = p.names || {};
  const photo = ["stylize", "apply", "dream"].includes(job.mode) && typeof p.content === "string" ? p.content : null;
  const before = $("#before");
  if (photo) before.src = refUrl(photo); else before.removeAttribute("src");
  before.hidden = !photo;
  $("#compare-bar").hidden = !photo;
  $("#compare").value = "0"; compare();
  const used = [], files = names.files || {};
  if (typeof p.content === "string") used.push([p.content, "photo", names.content || ""]);
  (p.styles || []).forEach((ref, i) => used.push([ref, "painting", (names.styles || [])[i] || ""]));
  const own = job.mode === "apply" && (p.settings || {}).style_image;  // Fast apply's painting
  if (typeof own === "string") used.push([own, "painting", files[own] || ""]);
  $("#used").replaceChildren(...used.map(([ref, what, name]) => el("figure", { title: `${what}: ${name}` },
    el("img", { src: refUrl(ref), alt: `${what}: ${name}` }), el("figcaption", { textContent: name || what }))));
}

function compare() {
  const v = Number($("#compare").value);
  $("#view").style.setProperty("--split", `${v}%`);
  $("#view").classList.toggle("comparing", v > 0 && !$("#before").hidden);
}

// --- jobs --------------------------------------------------------------------------------------------
async function start(event) {
  if ($("#start").disabled || (event && event.detail > 1)) return;  // the second click of a double click: no second job
  say("");
  if (state.mode === "live") return startLive();
  if (state.mode === "apply" && state.styles.length > 1) return say("Fast apply takes one painting: remove the others, or use Stylize to blend them.");
  const body = { mode: state.mode, content: state.content && state.content.ref, styles: state.styles.map((s) => s.ref),
    settings: formValues() };
  state.submitting = true; updateStart();
  try {
    const job = await postJson("/api/jobs", body);
    state.submitting = false;
    follow(job);
    stageInView();
    refreshJobs();
  } catch (e) { say(e.message); } finally { state.submitting = false; updateStart(); }
}

// On a phone the stage is below the form: bring it into view (on a desktop it stays in view, sticky).
function stageInView() {
  const output = $("#output");
  if (getComputedStyle(output).position !== "sticky") output.scrollIntoView({ block: "start" });
  else output.scrollTop = 0;
}

function follow(job) {
  if (state.source) { state.source.close(); state.source = null; }
  const other = !state.job || state.job.id !== job.id;
  state.job = job;
  if (other) saveDraft();
  stageInputs(job);
  show(job);
  if (FINISHED.includes(job.state)) return;
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  state.source = source;
  const finish = (j) => {
    if (state.job && state.job.id === j.id) { state.job = j; show(j); }
    source.close(); refreshJobs(); if (j.mode === "apply") refreshStyles();
  };
  source.onmessage = (e) => {
    const j = JSON.parse(e.data);
    if (!state.job || state.job.id !== j.id) { source.close(); return; }  // another job is shown now
    if (FINISHED.includes(j.state)) finish(j); else { state.job = j; show(j); }
  };
  // The stream ends when the job does; the last message may come with the close, so ask once more.
  source.onerror = () => {
    source.close();
    if (!state.job || state.job.id !== job.id) return;
    api(`/api/jobs/${job.id}`).then((j) => (FINISHED.includes(j.state) ? finish(j) : follow(j)))
      .catch((e) => say(e.message));
  };
}

async function cancelJob(id) {
  try {
    const j = await postJson(`/api/jobs/${id}/cancel`, {});
    if (state.job && state.job.id === id) show(j);
    refreshJobs();
  } catch (e) { say(e.message); }
}

async function removeJob(id) {
  try {
    await postJson(`/api/jobs/${id}/remove`, {});
    if (state.job && state.job.id === id) clearStage();
    refreshJobs();
  } catch (e) { say(e.message); }
}

function clearStage() {
  state.job = null; state.shown = null; state.pictureWanted = state.pictureUrl = null;
  $("#view").hidden = true; $("#placeholder").hidden = false; $("#progress").hidden = true;
  $("#status").textContent = ""; $("#result-actions").hidden = true; $("#compare-bar").hidden = true;
  $("#used").replaceChildren(); $("#cancel").disabled = true; showParams(null); updateStart();
}

async function usePhoto(id) {
  try {
    const up = await postJson(`/api/jobs/${id}/as-photo`, {});
    if (state.mode === "live") setMode("stylize");
    setContent(up.id, up.name);
    say("The picture is now the photo: pick a painting or a mode and press Start.", true);
  } catch (e) { say(e.message); }
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
    for (const [k, v] of Object.entries(keep)) { const e = $(`#set-${k}`); if (e && e.type !== "checkbox") e.value = v; }
  } catch (e) { say(e.message); }
}

// --- the job panel: every job of the server, newest first, kept up to date while any is unfinished ---
function jobTitle(j) {
  const names = (j.params && j.params.names) || {};
  const what = [names.content, ...(names.styles || [])].filter(Boolean).join(" + ");
  return `${MODE_NAMES[j.mode] || j.mode}${what ? " · " + what : ""}`;
}

function jobState(j) {
  if (j.state === "queued") return j.position ? `waiting, number ${j.position} in line` : "starting";
  if (j.state === "running") return `running, step ${j.step} of ${j.total}`;
  if (j.state === "done") return `done in ${fmtTime(j.seconds)}`;
  if (j.state === "cancelled") return j.has_result ? "cancelled (picture kept)" : "cancelled";
  return "failed" + (j.error ? `: ${j.error}` : "");
}

// A job's card is made once and then updated in place (its buttons stay the same elements while its
// state keeps them, so a click is never lost to a refresh, and its thumbnail never goes blank).
function card(j) {
  const c = { thumb: el("button", { type: "button", className: "thumb", title: "Show it and restore its settings" }),
    what: el("span", { className: "what" }), state: el("span"), buttons: el("span", { className: "buttons" }) };
  c.thumb.onclick = () => restoreJob(c.job);
  c.li = el("li", {}, c.thumb, c.what, c.state, c.buttons);
  c.li.dataset.id = j.id;
  return c;
}

function updateCard(c, j) {
  c.job = j;
  const url = pictureUrl(j), title = jobTitle(j);
  if (url !== c.url) {
    c.url = url;
    const img = c.thumb.querySelector("img");
    if (url && img) img.src = url;
    else c.thumb.replaceChildren(url ? el("img", { src: url, alt: `${j.mode} result` })
      : el("span", { textContent: j.state === "queued" ? "waiting" : "…" }));
  }
  c.thumb.setAttribute("aria-label", `Show ${title} and restore its settings`);
  c.what.textContent = title;
  c.state.className = `state ${j.state}`; c.state.textContent = jobState(j);
  c.li.dataset.state = j.state;
  c.li.classList.toggle("shown", !!state.job && state.job.id === j.id);
  const kind = FINISHED.includes(j.state) ? `finished-${j.has_result}` : "unfinished";
  if (kind === c.kind) return;
  c.kind = kind;
  const add = (text, fn, label) => { const b = el("button", { type: "button", textContent: text }); b.onclick = fn; b.setAttribute("aria-label", label); return b; };
  c.buttons.replaceChildren(...(kind === "unfinished" ? [add("Cancel", () => cancelJob(j.id), `Cancel ${title}`)] : [
    ...(j.has_result ? [add("Use as photo", () => usePhoto(j.id), `Use the picture of ${title} as the photo`)] : []),
    add("Remove", () => removeJob(j.id), `Remove ${title}`)]));
}

async function refreshJobs() {
  clearTimeout(state.panelTimer);
  let jobs;
  try { jobs = await api("/api/jobs"); } catch (e) { say(e.message); return; }
  const cards = new Map();
  for (const j of jobs.reverse()) {  // newest first
    const c = state.cards.get(j.id) || card(j);
    updateCard(c, j);
    cards.set(j.id, c);
  }
  state.cards = cards;
  const list = $("#jobs"), wanted = [...cards.values()].map((c) => c.li);
  if (wanted.length !== list.children.length || wanted.some((li, i) => list.children[i] !== li)) {
    list.replaceChildren(...wanted);
    if (!jobs.length) list.append(el("li", { className: "empty", textContent: "No jobs yet." }));
  }
  if (jobs.some((j) => !FINISHED.includes(j.state))) state.panelTimer = setTimeout(refreshJobs, 1000);
  return jobs;
}

// A job from the panel (or the gallery of results): its settings, photo and paintings come back, and
// the stage shows it (following it while it runs).
function restoreJob(j, quiet = false) {
  const p = j.params || {}, names = p.names || {};
  state.restoring = true;
  try {
    restore(j.mode, p.settings, quiet);
    if (typeof p.content === "string") setContent(p.content, names.content || "");
    if (j.mode === "stylize") setStyles((p.styles || []).map((ref, i) => ({ ref, name: (names.styles || [])[i] || "" })));
    if (j.mode === "apply" && p.settings && p.settings.style_image) setStyles([{ ref: p.settings.style_image, name: "" }]);
  } finally { state.restoring = false; }
  saveDraft();
  follow(j);
}

// --- the lightbox: the picture large, fitted or at 100% / 200% ------------------------------------
function openLightbox() {
  const src = $("#preview").getAttribute("src");
  if (!src) return;
  $("#lightbox-img").src = src;
  zoom("fit");
  $("#lightbox").showModal();
}

function zoom(how) {
  const img = $("#lightbox-img");
  img.classList.toggle("fit", how === "fit");
  img.style.width = how === "fit" ? "" : `${img.naturalWidth * how}px`;
  img.style.imageRendering = how === 2 ? "pixelated" : "";
}

// --- live --------------------------------------------------------------------------------------------
// The camera's video must be playing before frames are taken: a paused <video> draws black, and the
// server would stylize black frames into a flat grey box.
async function startLive() {
  state.live = { stream: null, frames: 0, times: [], running: true, frame: null, model: null };
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
    $("#placeholder").hidden = true; video.hidden = false;
    $("#cancel").disabled = false;
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

async function cameraFrame(video, canvas) {
  const scale = 320 / Math.max(video.videoWidth, video.videoHeight);
  canvas.width = Math.round(video.videoWidth * scale); canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.85));
}

function liveUrl(model, snapshot = false) { return `/api/live?model=${encodeURIComponent(model)}&size=320${snapshot ? "&snapshot=true" : ""}`; }

// Frames go one after another; the style is read for every frame, so switching it takes effect at once.
async function liveLoop() {
  const video = $("#camera"), canvas = document.createElement("canvas"), live = state.live;
  while (state.live === live && live.running) {  // a camera started again runs its own loop
    if (video.paused) await video.play().catch(() => {});
    if (!(video.videoWidth > 0 && video.readyState >= 2)) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const blob = await cameraFrame(video, canvas), model = $("#set-model").value;
    try {
      const res = await fetch(liveUrl(model), { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: blob });
      if (!res.ok) { say((await res.json()).error); stopLive(); break; }
      const url = URL.createObjectURL(await res.blob());
      if (state.live !== live) { URL.revokeObjectURL(url); break; }
      const out = $("#live-out"); const old = out.src; out.src = url; out.hidden = false;
      await out.decode().catch(() => {});  // shown before the next frame goes (or a fast loop shows none)
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      if (state.live !== live) break;  // stopped meanwhile
      Object.assign(live, { frame: blob, model });
      liveRate();
    } catch (e) { say(e.message); stopLive(); break; }
  }
}

// Frames per second over the last 3 seconds (not since the start).
function liveRate() {
  const now = performance.now(), live = state.live;
  live.frames += 1; live.times.push(now);
  while (live.times.length > 2 && now - live.times[0] > 3000) live.times.shift();
  const span = (now - live.times[0]) / 1000;
  const fps = live.times.length > 1 && span > 0 ? (live.times.length - 1) / span : 0;
  $("#status").textContent = `live: ${fps.toFixed(1)} frames/s (last 3 s) · ${live.model.replaceAll("_", " ")}`;
  document.body.dataset.liveFrames = String(live.frames);
  document.body.dataset.liveModel = live.model;
}

// The last frame again, as a PNG with its settings embedded (dropping it on the page restores them).
async function snapshot() {
  const live = state.live;
  if (!live || !live.frame) return say("Start the camera first: a snapshot saves the styled picture.");
  try {
    const res = await fetch(liveUrl(live.model, true), { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: live.frame });
    if (!res.ok) throw new Error((await res.json()).error);
    const a = el("a", { href: URL.createObjectURL(await res.blob()), download: `dreamstyle-live-${live.model}.png` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    say("Snapshot saved.", true);
  } catch (e) { say(e.message); }
}

function stopLive() {
  if (!state.live) return;
  state.live.running = false;
  if (state.live.stream) for (const t of state.live.stream.getTracks()) t.stop();
  state.live = null;
  const video = $("#camera"); video.pause(); video.srcObject = null; video.hidden = true;
  $("#stage").classList.remove("live");
  $("#live-out").hidden = true;
  $("#placeholder").hidden = state.mode === "live" ? false : !!state.pictureUrl;
  $("#cancel").disabled = !state.job || FINISHED.includes(state.job.state);
  updateStart();
}

// --- saved settings (presets), per mode, in this browser ---------------------------------------------
function presets() {
  try { return JSON.parse(localStorage.getItem("dreamstyle-presets") || "{}"); } catch { return {}; }
}

function fillPresets() {
  const pick = $("#preset-pick"), mine = presets()[state.mode] || {};
  pick.replaceChildren(option("", "choose…"), ...Object.keys(mine).sort().map((n) => option(n, n)));
  $("#preset-delete").disabled = true;
}

function savePreset() {
  const name = (prompt("A name for these settings:") || "").trim();
  if (!name) return;
  const all = presets();
  all[state.mode] = { ...(all[state.mode] || {}), [name]: formValues() };
  delete all[state.mode][name].style_image;
  localStorage.setItem("dreamstyle-presets", JSON.stringify(all));
  fillPresets(); $("#preset-pick").value = name; $("#preset-delete").disabled = false;
  say(`Saved as “${name}”.`, true);
}

function usePreset() {
  const name = $("#preset-pick").value;
  $("#preset-delete").disabled = !name;
  if (!name) return;
  const settings = (presets()[state.mode] || {})[name];
  buildForm();  // the defaults first: a preset holds only what differs from them
  restore(state.mode, settings, true);
  $("#preset-pick").value = name; $("#preset-delete").disabled = false;
  say(`Settings “${name}” restored.`, true);
  saveDraft();
}

function deletePreset() {
  const name = $("#preset-pick").value, all = presets();
  if (!name || !all[state.mode]) return;
  delete all[state.mode][name];
  localStorage.setItem("dreamstyle-presets", JSON.stringify(all));
  fillPresets();
}

// --- start up ----------------------------------------------------------------------------------------
function wire() {
  for (const b of document.querySelectorAll("#modes button")) b.onclick = () => { setMode(b.dataset.mode); saveDraft(); };
  $("#modes").addEventListener("keydown", tabKeys);
  dropZone($("#content-drop"), "content");
  dropZone($("#style-drop"), "style");
  dropZone($("#model-upload"), "model");
  $("#content-file").onchange = (e) => takeFiles(e.target.files, "content");
  $("#style-file").onchange = (e) => takeFiles(e.target.files, "style");
  $("#model-file").onchange = (e) => takeFiles(e.target.files, "model");
  $("#content-remove").onclick = () => setContent(null);
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => { e.preventDefault(); takeFiles(e.dataTransfer.files, "page"); });
  document.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); start(); } });
  $("#settings").addEventListener("change", saveDraft);
  $("#settings").addEventListener("submit", (e) => e.preventDefault());
  $("#start").onclick = start;
  $("#cancel").onclick = () => (state.live ? stopLive() : state.job && cancelJob(state.job.id));
  $("#snapshot").onclick = snapshot;
  $("#copy-cli").onclick = copyCli;
  $("#use-photo").onclick = () => state.job && usePhoto(state.job.id);
  $("#compare").oninput = compare;
  $("#preview").onclick = openLightbox;
  $("#preview").onkeydown = (e) => { if (e.key === "Enter") openLightbox(); };
  $("#lightbox-close").onclick = () => $("#lightbox").close();
  $("#zoom-fit").onclick = () => zoom("fit");
  $("#zoom-1").onclick = () => zoom(1);
  $("#zoom-2").onclick = () => zoom(2);
  $("#preset-save").onclick = savePreset;
  $("#preset-pick").onchange = usePreset;
  $("#preset-delete").onclick = deletePreset;
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshJobs(); });
}

// After a reload: what this tab had chosen comes back, and the newest unfinished job is shown again
// (from the server's list of jobs; a new tab takes that job's photo, paintings and settings).
async function main() {
  state.info = await api("/api/info");
  examples();
  wire();
  setMode("stylize");
  const draft = restoreDraft();
  const jobs = (await refreshJobs()) || [];
  const running = jobs.find((j) => !FINISHED.includes(j.state));  // newest first
  const shown = draft && jobs.find((j) => j.id === draft.job);  // the job this tab showed, if still there
  if (draft && (shown || running)) follow(shown || running);
  else if (running) restoreJob(running, true);
  document.body.dataset.ready = "1";
}
main().catch((e) => say(`The studio could not start: ${e.message}`));
