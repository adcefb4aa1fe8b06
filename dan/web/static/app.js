// The page: the camera (or a photo) in, boxes and per-class bars out. The model runs in worker.js; this
// thread only grabs frames, draws and says what is happening. URL options (for tests and benchmarks):
// ?backend=wasm|webgpu, ?threads=N, ?keep=1 (keep the frames the worker labelled), ?nosw=1 (no offline cache).
import { imageSize } from "./imagesize.js";

const PALETTE = ["rgb(0,191,255)", "rgb(255,105,180)", "rgb(0,128,0)", "rgb(255,215,0)",
  "rgb(0,0,255)", "rgb(255,0,0)", "rgb(200,200,200)", "rgb(160,82,45)"];
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const video = $("video"), photo = $("photo"), overlay = $("overlay");
const grab = document.createElement("canvas");

// what the page is doing, readable by tests: window.danState
const state = (window.danState = {
  ready: false, backend: null, error: null, meta: null, live: null, photos: [], frames: [],
  fps: null, msPerFace: null, firstLabelMs: null, cameraStart: null,
  timings: [], // per live frame: {at, faces, detect, classify, total} (ms), the last 2000
});
let worker = null;
let mode = "idle"; // idle | camera | photo
let nextId = 1;
let inFlight = false;
const pending = new Map();
const recent = [];

function say(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
  if (error) state.error = text;
}

function send(msg, transfer = []) {
  return new Promise((resolve, reject) => {
    msg.id = nextId++;
    pending.set(msg.id, { resolve, reject });
    worker.postMessage(msg, transfer);
  });
}

function startWorker() {
  worker = new Worker("worker.js", { type: "module" });
  worker.onmessage = ({ data }) => {
    const waiting = pending.get(data.id);
    if (waiting) pending.delete(data.id);
    if (data.type === "error") {
      const error = new Error(data.message);
      if (waiting) waiting.reject(error);
      else say(`Error: ${data.message}`, true);
    } else if (waiting) {
      waiting.resolve(data);
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    say(`The page's worker failed: ${event.message || "its script did not load"}`, true);
    for (const { reject } of pending.values()) reject(new Error("worker failed"));
    pending.clear();
  };
  const options = { backend: params.get("backend") || "auto", threads: Number(params.get("threads")) || 0 };
  return send({ type: "init", options });
}

function drawFaces(faces, width, height) {
  overlay.width = width;
  overlay.height = height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const unit = Math.max(12, Math.round(Math.max(width, height) / 40));
  ctx.font = `${unit}px system-ui, sans-serif`;
  ctx.lineWidth = Math.max(2, unit / 6);
  faces.forEach((face, i) => {
    const color = PALETTE[state.meta.labels.indexOf(face.label) % PALETTE.length];
    ctx.strokeStyle = color;
    ctx.strokeRect(face.x, face.y, face.w, face.h);
    const text = `${i + 1}: ${face.label} ${Math.round(100 * Math.max(...face.probabilities))}%`;
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect(face.x, Math.max(0, face.y - unit - 4), ctx.measureText(text).width + 8, unit + 4);
    ctx.fillStyle = color;
    ctx.fillText(text, face.x + 4, Math.max(unit, face.y - 4));
  });
}

function listFaces(faces, prefix) {
  const list = $("faces");
  list.replaceChildren();
  faces.forEach((face, i) => {
    const item = document.createElement("li");
    item.dataset.label = face.label;
    const head = document.createElement("div");
    head.textContent = `${prefix}${i + 1}: ${face.label} ${Math.round(100 * Math.max(...face.probabilities))}%`;
    const bars = document.createElement("div");
    bars.className = "bars";
    state.meta.labels.forEach((name, k) => {
      const p = face.probabilities[k];
      const label = document.createElement("span");
      label.textContent = name;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      bar.style.background = PALETTE[k % PALETTE.length];
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = `${Math.round(100 * p)}%`;
      bars.append(label, bar, pct);
    });
    item.append(head, bars);
    list.append(item);
  });
}

function showStats(result) {
  const now = performance.now();
  recent.push(now);
  while (recent.length && now - recent[0] > 2000) recent.shift();
  state.fps = recent.length > 1 ? (1000 * (recent.length - 1)) / (now - recent[0]) : null;
  if (result.faces.length) state.msPerFace = result.ms.classify / result.faces.length;
  const fps = state.fps === null ? "–" : state.fps.toFixed(1);
  const perFace = state.msPerFace === null ? "–" : state.msPerFace.toFixed(1);
  $("stats").textContent = `${fps} fps · ${perFace} ms per face · detection ${result.ms.detect.toFixed(0)} ms · ${state.backend}`;
}

async function liveLoop() {
  if (mode !== "camera" || inFlight) return;
  if (video.readyState < 2 || !video.videoWidth) {
    setTimeout(liveLoop, 30);
    return;
  }
  inFlight = true;
  try {
    // the frame's pixels, read here (a copy the size of the frame) and handed to the worker
    const width = video.videoWidth, height = video.videoHeight;
    if (grab.width !== width || grab.height !== height) [grab.width, grab.height] = [width, height];
    const ctx = grab.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, width, height);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const keep = params.get("keep") === "1";
    const result = await send({ type: "frame", rgba, width, height, keep }, [rgba.buffer]);
    if (mode === "camera") {
      if (state.firstLabelMs === null && result.faces.length) state.firstLabelMs = performance.now() - state.cameraStart;
      state.live = result;
      state.timings.push({ at: performance.now(), faces: result.faces.length, ...result.ms });
      if (state.timings.length > 2000) state.timings.shift();
      if (keep) state.frames.push({ width, height, rgba: result.rgba, faces: result.faces });
      drawFaces(result.faces, video.videoWidth, video.videoHeight);
      listFaces(result.faces, "#");
      showStats(result);
      say(`camera: ${result.faces.length} face${result.faces.length === 1 ? "" : "s"}`);
    }
  } catch (err) {
    say(`Error: ${err.message}`, true);
    mode = "idle";
  } finally {
    inFlight = false;
  }
  if (mode === "camera") setTimeout(liveLoop, 0);
}

function cameraMessage(err) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "No camera here: the browser allows cameras only on https:// pages (or localhost). You can still label a photo.";
  }
  if (err.name === "NotAllowedError" || err.name === "SecurityError") {
    return "The camera was refused: allow it in the browser's site settings and press Start camera again, or label a photo.";
  }
  if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
    return "No camera found: connect one and press Start camera again, or label a photo.";
  }
  if (err.name === "NotReadableError") return "The camera is in use by another program: close it and try again.";
  return `The camera could not start (${err.name || "error"}: ${err.message}).`;
}

async function startCamera() {
  if (!state.ready) return;
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("no mediaDevices");
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    video.srcObject = stream;
    video.hidden = false;
    photo.hidden = true;
    $("back").hidden = true;
    mode = "camera";
    state.cameraStart = performance.now();
    say("camera: starting…");
    liveLoop();
  } catch (err) {
    say(cameraMessage(err), true);
  }
}

async function labelPhoto(file) {
  if (!state.ready) return;
  const name = file.name;
  const header = new Uint8Array(await file.slice(0, 65536).arrayBuffer());
  const size = imageSize(header);
  if (!size) {
    say(`${name}: not an image this page reads (PNG, JPEG, GIF, BMP or WebP)`, true);
    return;
  }
  const limit = state.meta.max_pixels;
  if (size.width * size.height > limit) {
    say(`${name}: image is ${size.width}x${size.height} pixels (${Math.round((size.width * size.height) / 1e6)} megapixels), ` +
      `more than the limit of ${limit / 1e6} megapixels`, true);
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    say(`${name}: not a decodable image (the browser could not read it)`, true);
    return;
  }
  mode = "photo";
  video.hidden = true;
  photo.hidden = false;
  $("back").hidden = false;
  photo.width = bitmap.width;
  photo.height = bitmap.height;
  photo.getContext("2d").drawImage(bitmap, 0, 0);
  say(`${name}: finding faces…`);
  try {
    const result = await send({ type: "frame", bitmap, width: bitmap.width, height: bitmap.height }, [bitmap]);
    state.photos.push({ name, faces: result.faces, ms: result.ms });
    drawFaces(result.faces, photo.width, photo.height);
    listFaces(result.faces, "face ");
    showStats(result);
    say(`${name}: ${result.faces.length} face${result.faces.length === 1 ? "" : "s"}`);
  } catch (err) {
    say(`${name}: ${err.message}`, true);
  }
}

function registerOfflineCache(build) {
  if (!("serviceWorker" in navigator) || params.get("nosw") === "1") return;
  navigator.serviceWorker.register(`sw.js?build=${build}`).catch(() => {});
}

async function main() {
  $("camera").onclick = startCamera;
  $("choose").onclick = () => $("upload").click();
  $("upload").onchange = () => {
    const file = $("upload").files[0];
    $("upload").value = "";
    if (file) labelPhoto(file);
  };
  $("back").onclick = startCamera;
  try {
    const response = await fetch("model.json");
    if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
    state.meta = await response.json();
  } catch (err) {
    say(`The model's record could not be loaded (${err.message}): is this the folder dan export --web wrote?`, true);
    return;
  }
  const meta = state.meta;
  $("title").textContent = `${meta.title}: facial expressions, in your browser`;
  registerOfflineCache(meta.build);
  try {
    const ready = await startWorker();
    state.backend = ready.backend;
    state.notes = ready.notes;
    state.ready = true;
  } catch (err) {
    say(`The model could not start: ${err.message}`, true);
    return;
  }
  const notes = state.notes.length ? ` (${state.notes.join("; ")})` : "";
  $("model").textContent = `${meta.labels.length} classes · ${meta.int8 ? "int8" : "float32"} · ` +
    `${meta.preprocessing.input_size} px · ${state.backend}${notes} · onnxruntime-web ${meta.ort_web}`;
  say("Ready: start the camera or label a photo.");
  if (params.get("autostart") === "1") startCamera();
}

main();
