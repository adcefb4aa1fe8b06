// dan serve's page: the webcam's frames go to /v1/live over a WebSocket; every face comes back with a
// track id, label and probabilities and is drawn over the video. Photos go to POST /v1/predict.
// Plain browser JavaScript, no build step and no network but this server.
"use strict";

const LONG_SIDE = 640;  // frames are sent at most this large (the detector runs at 640 px anyway)
// Frames sent but not answered yet: 1 on a fast link (lowest latency); 2 when the network round trip
// is long next to the model's time, so the next frame travels while this one is processed.
const MAX_IN_FLIGHT = 2;
const STALL_MS = 3000;  // no reply for this long: stop waiting for the frames in flight
// one colour per class index, as dan demo draws them (dan/demo/overlay.py, here in RGB)
const PALETTE = ["rgb(0,191,255)", "rgb(255,105,180)", "rgb(0,128,0)", "rgb(255,215,0)",
  "rgb(0,0,255)", "rgb(255,0,0)", "rgb(200,200,200)", "rgb(128,0,128)"];

const $ = (id) => document.getElementById(id);
const video = $("video"), photo = $("photo"), overlay = $("overlay"), ctx = overlay.getContext("2d");
const token = new URLSearchParams(location.search).get("token");
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const grab = document.createElement("canvas");  // frames are drawn here, downscaled, then encoded

const state = {
  ws: null, stream: null, mode: "live", labels: [], maxBytes: 10 * 1024 * 1024,
  nextId: 1, lastReply: 0, lastReplyAt: 0, newFrame: false, encoding: false,
  fps: null, latency: null, serverMs: null, transit: null, lastResultAt: null, dropped: 0,
  result: null, photoResult: null, listAt: 0,
};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function ema(old, value, k = 0.15) { return old === null ? value : old + k * (value - old); }

// ---- the live WebSocket ----------------------------------------------------------------------
function liveUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/live` + (token ? `?token=${encodeURIComponent(token)}` : "");
}

function connect() {
  const ws = new WebSocket(liveUrl());
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => { state.lastReply = state.nextId - 1; state.lastReplyAt = performance.now(); pump(); };
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = () => {
    if (state.ws === ws) {
      setStatus("Disconnected from the server; retrying…", true);
      setTimeout(connect, 1000);
    }
  };
}

function onMessage(msg) {
  if (msg.type === "ready") {
    state.labels = msg.labels;
    state.maxBytes = msg.max_bytes;
    $("attention").disabled = !msg.attention;
    if (state.mode === "live" && state.stream) setStatus("Live");
    return;
  }
  if (typeof msg.id === "number" && msg.id > state.lastReply) {
    state.lastReply = msg.id;  // frames the server skipped (newest wins) count as answered
    state.lastReplyAt = performance.now();
  }
  if (msg.type === "error") {
    setStatus(`Server: ${msg.message}`, true);
  } else if (msg.type === "result") {
    const now = performance.now();
    if (state.lastResultAt !== null) state.fps = ema(state.fps, 1000 / Math.max(1, now - state.lastResultAt));
    state.lastResultAt = now;
    if (typeof msg.t === "number") {
      state.latency = ema(state.latency, now - msg.t);
      state.transit = ema(state.transit, Math.max(0, now - msg.t - msg.server_ms - msg.queue_ms));
    }
    state.serverMs = ema(state.serverMs, msg.server_ms);
    state.dropped = msg.dropped;
    state.result = msg;
    if (state.mode === "live" && state.stream) {
      draw(msg, video.videoWidth, video.videoHeight, true);
      listFaces(msg.faces, true);
    }
  }
  pump();
}

// Send the newest camera frame when the server is ready for one (at most MAX_IN_FLIGHT unanswered).
function pump() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || state.mode !== "live" || !state.stream) return;
  if (state.encoding || !state.newFrame || video.videoWidth === 0) return;
  const now = performance.now();
  const limit = state.transit !== null && state.transit > state.serverMs / 2 ? MAX_IN_FLIGHT : 1;
  if (state.nextId - 1 - state.lastReply >= limit) {
    if (now - state.lastReplyAt < STALL_MS) return;
    state.lastReply = state.nextId - 1;  // replies were lost: start afresh
  }
  const scale = Math.min(1, LONG_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  state.newFrame = false;
  state.encoding = true;
  const header = { id: state.nextId++, t: now, attention: $("attention").checked };
  grab.toBlob((jpeg) => {
    state.encoding = false;
    if (!jpeg || ws.readyState !== WebSocket.OPEN) return;
    const head = new TextEncoder().encode(JSON.stringify(header));
    const size = new DataView(new ArrayBuffer(4));
    size.setUint32(0, head.length);  // big-endian, as the server reads it
    ws.send(new Blob([size.buffer, head, jpeg]));
  }, "image/jpeg", 0.8);
}

function watchFrames() {
  const onFrame = () => { state.newFrame = true; pump(); video.requestVideoFrameCallback(onFrame); };
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(onFrame);
  else setInterval(() => { state.newFrame = true; pump(); }, 33);
  setInterval(pump, 250);  // recovers from stalls even when no frame or reply arrives
}

// ---- the camera ----------------------------------------------------------------------------------
async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("No camera here: browsers allow one only on https:// or http://localhost " +
      "(reach this server through 'ssh -L 8000:localhost:8000 HOST'). Photos still work.", true);
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    setStatus(`Camera unavailable (${err.name}): ${err.message}. Photos still work.`, true);
    return;
  }
  video.srcObject = state.stream;
  $("camera").textContent = "Stop camera";
  setStatus("Live");
  showLive();
}

function stopCamera() {
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
  video.srcObject = null;
  $("camera").textContent = "Start camera";
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  listFaces([], true);
  setStatus("Camera stopped");
}

function showLive() {
  state.mode = "live";
  photo.hidden = true;
  video.hidden = false;
  $("back").hidden = true;
  pump();
}

// ---- photos ----------------------------------------------------------------------------------------
async function shrink(file) {
  if (file.size <= state.maxBytes) return file;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 2048 / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

async function labelPhoto(file) {
  setStatus(`Labelling ${file.name}…`);
  let reply;
  try {
    const body = new FormData();
    body.append("file", await shrink(file), file.name);
    const response = await fetch("/v1/predict", { method: "POST", body, headers: authHeaders });
    reply = await response.json();
    if (!response.ok) throw new Error(reply.detail || response.statusText);
  } catch (err) {
    setStatus(`Could not label ${file.name}: ${err.message}`, true);
    return;
  }
  state.mode = "photo";
  state.photoResult = reply;
  photo.onload = () => {
    draw(reply, photo.naturalWidth, photo.naturalHeight, false);
    URL.revokeObjectURL(photo.src);
  };
  photo.src = URL.createObjectURL(file);
  photo.hidden = false;
  video.hidden = true;
  $("back").hidden = false;
  listFaces(reply.faces, false);
  setStatus(`${file.name}: ${reply.faces.length} face${reply.faces.length === 1 ? "" : "s"}`);
}

// ---- drawing -------------------------------------------------------------------------------------
function classIndex(face) {
  return Object.keys(face.probabilities).indexOf(face.label);
}

function jet(v) {  // a blue-to-red heat colour for v in [0, 1]
  const c = (x) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - x))));
  return [c(3), c(2), c(1)];
}

function drawAttention(face, x, y, w, h, s) {
  const maps = face.attention, k = maps.length;
  const side = Math.max(24, Math.min(72, Math.floor(w / k)));
  const ty = y + h + 4 + side <= overlay.height ? y + h + 4 : Math.max(0, y - side - 4);
  const source = state.mode === "live" ? video : photo;
  const tile = document.createElement("canvas");
  maps.forEach((amap, i) => {
    const tx = x + i * (side + 3);
    if (tx + side > overlay.width) return;
    ctx.drawImage(source, face.box.x / s, face.box.y / s, face.box.w / s, face.box.h / s, tx, ty, side, side);
    tile.width = amap[0].length;
    tile.height = amap.length;
    const pixels = tile.getContext("2d").createImageData(tile.width, tile.height);
    amap.flat().forEach((v, j) => { pixels.data.set([...jet(v), 140], 4 * j); });
    tile.getContext("2d").putImageData(pixels, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(tile, tx, ty, side, side);
  });
}

function drawFace(face, s, withTrack) {
  const [x, y, w, h] = [face.box.x * s, face.box.y * s, face.box.w * s, face.box.h * s];
  const color = PALETTE[Math.max(0, classIndex(face)) % PALETTE.length];
  const unit = Math.max(12, overlay.width / 50);
  ctx.lineWidth = Math.max(3, overlay.width / 200);
  ctx.strokeStyle = color;
  ctx.strokeRect(x, y, w, h);
  const caption = `${face.label} ${Math.round(100 * face.confidence)}%` + (withTrack ? ` #${face.track}` : "");
  ctx.font = `${unit}px system-ui, sans-serif`;
  const tw = ctx.measureText(caption).width;
  const cy = y - unit - 6 >= 0 ? y - unit - 6 : y + h;
  ctx.fillStyle = color;
  ctx.fillRect(x, cy, tw + 8, unit + 6);
  ctx.fillStyle = "#000";
  ctx.fillText(caption, x + 4, cy + unit);
  const names = Object.keys(face.probabilities), row = Math.round(unit * 0.9), barW = unit * 5;
  ctx.font = `${Math.round(row * 0.75)}px system-ui, sans-serif`;
  const textW = ctx.measureText("happiness ").width;
  let px = x + w + 6;
  if (px + textW + barW > overlay.width) px = Math.max(0, x - textW - barW - 6);
  const py = Math.min(Math.max(0, y), Math.max(0, overlay.height - row * names.length));
  ctx.fillStyle = "rgba(0,0,0,0.55)";
  ctx.fillRect(px, py, textW + barW + 4, row * names.length);
  names.forEach((name, i) => {
    ctx.fillStyle = "#fff";
    ctx.fillText(name.slice(0, 10), px + 2, py + (i + 1) * row - row * 0.25);
    ctx.fillStyle = PALETTE[i % PALETTE.length];
    ctx.fillRect(px + textW, py + i * row + 2, barW * face.probabilities[name], row - 4);
  });
  if (face.attention) drawAttention(face, x, y, w, h, s);
  if (typeof face.valence === "number") drawValenceArousal(face, x, y, w, h, unit);
}

// a model with the valence/arousal output: "V +0.62  A -0.31" inside the bottom of the box
function vaText(face) {
  const signed = (v) => `${v >= 0 ? "+" : ""}${v.toFixed(2)}`;
  return `V ${signed(face.valence)}  A ${signed(face.arousal)}`;
}

function drawValenceArousal(face, x, y, w, h, unit) {
  const text = vaText(face);
  ctx.font = `${Math.round(unit * 0.85)}px system-ui, sans-serif`;
  ctx.lineWidth = 3;
  ctx.strokeStyle = "#000";
  ctx.strokeText(text, x + 4, y + h - 6);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, x + 4, y + h - 6);
}

function draw(result, width, height, live) {
  if (!width || !height) return;
  if (overlay.width !== width || overlay.height !== height) { overlay.width = width; overlay.height = height; }
  ctx.clearRect(0, 0, width, height);
  const s = width / result.width;  // from the frame the server saw to the picture shown
  result.faces.forEach((face) => drawFace(face, s, live));
  if (live) {
    const text = `${(state.fps || 0).toFixed(1)} fps  ${Math.round(state.latency || 0)} ms`;
    ctx.font = `${Math.max(12, width / 45)}px system-ui, sans-serif`;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#000";
    ctx.strokeText(text, 8, Math.max(16, width / 30));
    ctx.fillStyle = "#fff";
    ctx.fillText(text, 8, Math.max(16, width / 30));
    $("stats").textContent = `${(state.fps || 0).toFixed(1)} results/s · round trip ${Math.round(state.latency || 0)} ms` +
      ` · model ${Math.round(state.serverMs || 0)} ms · ${state.dropped} frames skipped`;
  }
}

function listFaces(faces, live) {
  const now = performance.now();
  if (live && faces.length && now - state.listAt < 400) return;  // readable, not flickering
  state.listAt = now;
  const items = faces.map((face) => {
    const li = document.createElement("li");
    li.dataset.track = live ? face.track : face.face;
    li.dataset.label = face.label;
    li.dataset.confidence = face.confidence;
    li.textContent = `${live ? `#${face.track}` : `face ${face.face + 1}`}: ${face.label} ${Math.round(100 * face.confidence)}%`;
    if (typeof face.valence === "number") {
      li.dataset.valence = face.valence;
      li.dataset.arousal = face.arousal;
      li.textContent += ` · ${vaText(face)}`;
    }
    return li;
  });
  $("faces").replaceChildren(...items);
}

// ---- start -------------------------------------------------------------------------------------------
async function showModel() {
  try {
    const response = await fetch("/v1/model", { headers: authHeaders });
    const info = await response.json();
    if (!response.ok) throw new Error(info.detail || response.statusText);
    state.maxBytes = info.limits.max_upload_bytes;
    $("model").textContent = `${info.labels.length} classes · ${info.backend} · ${info.detector} detector · ` +
      `${info.preprocessing.input_size} px`;
  } catch (err) {
    setStatus(`Server: ${err.message}`, true);
  }
}

$("camera").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
$("choose").addEventListener("click", () => $("upload").click());
$("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) labelPhoto(file);
  event.target.value = "";
});
$("back").addEventListener("click", () => { ctx.clearRect(0, 0, overlay.width, overlay.height); showLive(); });
$("attention").addEventListener("change", () => {
  if (state.mode === "photo") setStatus("Attention maps are drawn on the live camera only");
});
showModel();
connect();
watchFrames();
startCamera();
