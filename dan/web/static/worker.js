// The page's inference, off the main thread: onnxruntime-web with the first backend that starts of
// WebGPU (when the browser offers an adapter), WASM SIMD with threads (when the page is cross-origin
// isolated) and WASM on one thread; YuNet finds the faces, each is cut out and prepared as dan does
// (vision.js), the model labels them all in one batch, softmax(logits / temperature) gives the bars.
// Messages in: {type: "init", options}, {type: "frame", bitmap | rgba, width, height, id}.
// Messages out: {type: "ready", backend, reason}, {type: "result", id, faces, ms}, {type: "error", message}.
import { fromRGBA, extractFace, prepareFace } from "./vision.js";
import { decode, detectionImage, toDetections, yunetInput } from "./yunet.js";

let ort = null;
let meta = null;
let yunet = null;
let model = null;

function describe(err) {
  const text = String((err && err.message) || err);
  return text.split("\n")[0].slice(0, 300);
}

async function fetchBytes(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`${what} (${url}) could not be fetched: ${describe(err)}`);
  }
  if (!response.ok) throw new Error(`${what} (${url}) could not be fetched: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function hasWebGPU() {
  if (!self.navigator.gpu) return false;
  try {
    return Boolean(await self.navigator.gpu.requestAdapter());
  } catch {
    return false;
  }
}

async function start(options) {
  meta = await (await fetch("model.json")).json();
  const [modelBytes, yunetBytes] = await Promise.all([
    fetchBytes("model.onnx", "the model file"),
    fetchBytes("yunet.onnx", "the face detector"),
  ]);
  const cores = self.navigator.hardwareConcurrency || 1;
  const wanted = options.backend || "auto";
  const plan = [];
  if ((wanted === "auto" || wanted === "webgpu") && (await hasWebGPU())) plan.push("webgpu");
  if (wanted !== "webgpu") plan.push(self.crossOriginIsolated ? "wasm" : "wasm-1");
  const notes = [];
  if (!self.crossOriginIsolated) notes.push("no WASM threads: the page is not cross-origin isolated (COOP/COEP headers)");
  for (const backend of plan) {
    try {
      ort = await import(backend === "webgpu" ? "./ort/ort.webgpu.min.mjs" : "./ort/ort.wasm.min.mjs");
      ort.env.wasm.wasmPaths = new URL("./ort/", self.location.href).href;
      const threads = backend === "wasm" ? Math.max(1, Math.min(options.threads || Math.min(4, cores), cores)) : 1;
      ort.env.wasm.numThreads = threads;
      ort.env.logLevel = "error";
      const eps = backend === "webgpu" ? ["webgpu"] : ["wasm"];
      const opts = { executionProviders: eps, graphOptimizationLevel: "all", logSeverityLevel: 3 };
      try {
        model = await ort.InferenceSession.create(modelBytes, opts);
      } catch (err) {
        throw new Error(`the model file (model.onnx) failed to load: ${describe(err)}`);
      }
      yunet = await ort.InferenceSession.create(yunetBytes, opts);
      const name = backend === "webgpu" ? "WebGPU" : `WASM SIMD, ${threads} thread${threads > 1 ? "s" : ""}`;
      return { backend: name, threads, notes };
    } catch (err) {
      if (String(err.message).startsWith("the model file")) throw err;
      notes.push(`${backend} did not start: ${describe(err)}`);
    }
  }
  throw new Error(`no backend started: ${notes.join("; ")}`);
}

async function detect(img) {
  const d = meta.detection;
  const { small, scale } = detectionImage(img, d.detect_size);
  const { data, padW, padH } = yunetInput(small);
  const out = await yunet.run({ [yunet.inputNames[0]]: new ort.Tensor("float32", data, [1, 3, padH, padW]) });
  const arrays = {};
  for (const name of yunet.outputNames) arrays[name] = out[name].data;
  const rows = decode(arrays, padW, padH, d.score_threshold, d.nms_threshold, d.top_k);
  return toDetections(rows, scale, img.width, img.height);
}

function softmax(logits, temperature) {
  const z = logits.map((v) => Math.fround(temperature !== 1 ? v / temperature : v));
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

async function label(img) {
  const t0 = performance.now();
  const found = await detect(img);
  const t1 = performance.now();
  const pre = meta.preprocessing;
  const s = pre.input_size;
  const faces = found.map((det) => ({ ...det }));
  if (found.length) {
    const batch = new Float32Array(found.length * 3 * s * s);
    found.forEach((det, n) => prepareFace(extractFace(img, det, pre), pre, batch, n));
    const out = await model.run({ [meta.input]: new ort.Tensor("float32", batch, [found.length, 3, s, s]) });
    const logits = out[meta.logits].data;
    const k = meta.labels.length;
    faces.forEach((face, n) => {
      face.probabilities = softmax(Array.from(logits.slice(n * k, (n + 1) * k)), meta.temperature);
      const best = face.probabilities.indexOf(Math.max(...face.probabilities));
      face.label = meta.labels[best];
    });
  }
  const t2 = performance.now();
  return { faces, ms: { detect: t1 - t0, classify: t2 - t1, total: t2 - t0 } };
}

function pixels(msg) {
  if (msg.bitmap) {
    const canvas = new OffscreenCanvas(msg.bitmap.width, msg.bitmap.height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(msg.bitmap, 0, 0);
    msg.bitmap.close();
    return ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  }
  return msg.rgba;
}

self.onmessage = async (event) => {
  const msg = event.data;
  try {
    if (msg.type === "init") {
      self.postMessage({ type: "ready", id: msg.id, ...(await start(msg.options || {})) });
    } else if (msg.type === "frame") {
      const rgba = pixels(msg);
      const img = fromRGBA(rgba, msg.width, msg.height);
      const result = await label(img);
      const reply = { type: "result", id: msg.id, ...result };
      if (msg.keep) reply.rgba = rgba;
      self.postMessage(reply);
    }
  } catch (err) {
    self.postMessage({ type: "error", id: msg.id, stage: msg.type, message: describe(err) });
  }
};
