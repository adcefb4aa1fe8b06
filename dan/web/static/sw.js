// The offline cache: the files of this folder (the page, the model, YuNet, the CPU runtime) are stored in
// Cache Storage under this export's build id when the service worker installs, and any other file the page
// fetches (the WebGPU runtime) when it is first fetched, so the page works offline once it has run. The
// page and model.json come from the network first (so a new export is seen: another build id starts a
// new cache and drops the old), everything else from the cache first.
const BUILD = new URL(self.location.href).searchParams.get("build") || "dev";
const CACHE = `dan-web-${BUILD}`;
const FILES = ["./", "index.html", "style.css", "app.js", "worker.js", "vision.js", "yunet.js", "imagesize.js",
  "model.json", "model.onnx", "yunet.onnx", "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.mjs",
  "ort/ort-wasm-simd-threaded.wasm"];

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(FILES.map((name) => new URL(name, self.registration.scope).href));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith("dan-web-") && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

async function networkFirst(cache, request, key) {
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(key);
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const key = url.origin + url.pathname;  // the query (?backend=...) does not make another copy
    if (request.mode === "navigate" || url.pathname.endsWith("/model.json")) return networkFirst(cache, request, key);
    const hit = await cache.match(key);
    if (hit) return hit;
    const response = await fetch(request);
    if (response.ok && response.type === "basic") await cache.put(key, response.clone());
    return response;
  })());
});
