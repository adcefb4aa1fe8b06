// The pixel operations of dan's Python side, on plain arrays, bit for bit where the integer arithmetic allows:
// OpenCV's INTER_AREA resize (frames scaled down for detection, large faces reduced before alignment),
// OpenCV's warpAffine (INTER_LINEAR, BORDER_REPLICATE: 5-bit sub-pixel table, 15-bit fixed-point weights),
// the five-landmark similarity transform (dan/inference/align.py), the box crop (dan/inference/crops.py),
// PIL's antialiased bilinear resize and the float32 normalisation (dan/preprocess.py).
// An image is {width, height, data: Uint8Array of RGB (3 bytes a pixel)}.

/** Round half to even, as Python's round() and OpenCV's cvRound do. */
export function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function makeImage(width, height) {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

/** RGBA pixels (ImageData) -> RGB image. */
export function fromRGBA(rgba, width, height) {
  const out = makeImage(width, height);
  for (let i = 0, j = 0; i < width * height; i++, j += 4) {
    out.data[i * 3] = rgba[j];
    out.data[i * 3 + 1] = rgba[j + 1];
    out.data[i * 3 + 2] = rgba[j + 2];
  }
  return out;
}

// OpenCV computeResizeAreaTab: [source index, destination index, weight] for one axis.
function areaTab(ssize, dsize, scale) {
  const tab = [];
  const f = Math.fround;
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale;
    const fsx2 = fsx1 + scale;
    const cell = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1);
    let sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) tab.push([sx1 - 1, dx, f((sx1 - fsx1) / cell)]);
    for (let sx = sx1; sx < sx2; sx++) tab.push([sx, dx, f(1 / cell)]);
    if (fsx2 - sx2 > 1e-3) tab.push([sx2, dx, f(Math.min(Math.min(fsx2 - sx2, 1), cell) / cell)]);
  }
  return tab;
}

/**
 * cv2.resize(img, (dw, dh), interpolation=INTER_AREA) for a reduction (or fx/fy given: scaleX = 1 / fx).
 * Integer factors use OpenCV's fast path (box mean); others its weighted cells, in float32 as OpenCV sums them.
 */
export function resizeArea(img, dw, dh, scaleX = img.width / dw, scaleY = img.height / dh) {
  const { width: sw, height: sh, data: src } = img;
  const out = makeImage(dw, dh);
  const f = Math.fround;
  const ix = rint(scaleX);
  const iy = rint(scaleY);
  if (Math.abs(scaleX - ix) < 2.220446049250313e-16 && Math.abs(scaleY - iy) < 2.220446049250313e-16) {
    const area = ix * iy;
    const k = f(1 / area);
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let v = 0; v < iy; v++) {
            const row = (y * iy + v) * sw;
            for (let u = 0; u < ix; u++) sum += src[(row + x * ix + u) * 3 + c];
          }
          out.data[(y * dw + x) * 3 + c] = area === 4 ? (sum + 2) >> 2 : Math.min(255, rint(f(sum * k)));
        }
      }
    }
    return out;
  }
  const xtab = areaTab(sw, dw, scaleX);
  const ytab = areaTab(sh, dh, scaleY);
  const buf = new Float32Array(dw * 3);
  const sum = new Float32Array(dw * 3);
  let prev = ytab.length ? ytab[0][1] : 0;
  const flush = (dy) => {
    for (let i = 0; i < dw * 3; i++) out.data[dy * dw * 3 + i] = Math.max(0, Math.min(255, rint(sum[i])));
  };
  for (const [sy, dy, beta] of ytab) {
    buf.fill(0);
    const row = sy * sw * 3;
    for (const [sx, dx, alpha] of xtab) {
      for (let c = 0; c < 3; c++) buf[dx * 3 + c] = f(buf[dx * 3 + c] + f(src[row + sx * 3 + c] * alpha));
    }
    if (dy !== prev) {
      flush(prev);
      for (let i = 0; i < dw * 3; i++) sum[i] = f(beta * buf[i]);
      prev = dy;
    } else {
      for (let i = 0; i < dw * 3; i++) sum[i] = f(sum[i] + f(beta * buf[i]));
    }
  }
  if (ytab.length) flush(prev);
  return out;
}

/** cv2.invertAffineTransform of a (2, 3) matrix given as [a, b, c, d, e, f]. */
export function invertAffine(m) {
  let det = m[0] * m[4] - m[1] * m[3];
  det = det !== 0 ? 1 / det : 0;
  const a = m[4] * det;
  const e = m[0] * det;
  const b = -m[1] * det;
  const d = -m[3] * det;
  const c = -a * m[2] - b * m[5];
  const f = -d * m[2] - e * m[5];
  return [a, b, c, d, e, f];
}

/** cv2.warpAffine(img, m, (size, size), INTER_LINEAR, BORDER_REPLICATE), OpenCV's fixed-point arithmetic. */
export function warpAffine(img, m, size) {
  const inv = invertAffine(m);
  const { width: sw, height: sh, data: src } = img;
  const out = makeImage(size, size);
  const AB = 1024;
  const adelta = new Int32Array(size);
  const bdelta = new Int32Array(size);
  for (let x = 0; x < size; x++) {
    adelta[x] = rint(inv[0] * x * AB);
    bdelta[x] = rint(inv[3] * x * AB);
  }
  const clampX = (v) => (v < 0 ? 0 : v >= sw ? sw - 1 : v);
  const clampY = (v) => (v < 0 ? 0 : v >= sh ? sh - 1 : v);
  for (let y = 0; y < size; y++) {
    const X0 = rint((inv[1] * y + inv[2]) * AB) + 16;
    const Y0 = rint((inv[4] * y + inv[5]) * AB) + 16;
    for (let x = 0; x < size; x++) {
      const X = (X0 + adelta[x]) >> 5;
      const Y = (Y0 + bdelta[x]) >> 5;
      const fx = X & 31;
      const fy = Y & 31;
      const sx = X >> 5;
      const sy = Y >> 5;
      const x0 = clampX(sx);
      const x1 = clampX(sx + 1);
      const y0 = clampY(sy);
      const y1 = clampY(sy + 1);
      const w00 = (32 - fx) * (32 - fy) * 32;
      const w01 = fx * (32 - fy) * 32;
      const w10 = (32 - fx) * fy * 32;
      const w11 = fx * fy * 32;
      const o = (y * size + x) * 3;
      const p00 = (y0 * sw + x0) * 3;
      const p01 = (y0 * sw + x1) * 3;
      const p10 = (y1 * sw + x0) * 3;
      const p11 = (y1 * sw + x1) * 3;
      for (let c = 0; c < 3; c++) {
        const v = src[p00 + c] * w00 + src[p01 + c] * w01 + src[p10 + c] * w10 + src[p11 + c] * w11;
        out.data[o + c] = Math.max(0, Math.min(255, (v + 16384) >> 15));
      }
    }
  }
  return out;
}

// dan.inference.align.FACE_TEMPLATE: five points on a 1 x 1 face (float32 values, as Python stores them)
const TEMPLATE = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
].map(([x, y]) => [Math.fround(Math.fround(x) / 112), Math.fround(Math.fround(y) / 112)]);

/** Least-squares similarity transform (rotation, uniform scale, shift) taking src onto dst: [a, b, c, d, e, f]. */
export function similarityMatrix(src, dst) {
  const n = src.length;
  let msx = 0, msy = 0, mdx = 0, mdy = 0;
  for (let i = 0; i < n; i++) {
    msx += src[i][0]; msy += src[i][1]; mdx += dst[i][0]; mdy += dst[i][1];
  }
  msx /= n; msy /= n; mdx /= n; mdy /= n;
  let p = 0, q = 0, v = 0;
  for (let i = 0; i < n; i++) {
    const sx = src[i][0] - msx, sy = src[i][1] - msy, dx = dst[i][0] - mdx, dy = dst[i][1] - mdy;
    p += sx * dx + sy * dy;
    q += sx * dy - sy * dx;
    v += sx * sx + sy * sy;
  }
  // Umeyama's closed form in 2D without reflection: scale * rotation = [[p, -q], [q, p]] / variance
  const a = v > 0 ? p / v : 1;
  const b = v > 0 ? q / v : 0;
  return [a, -b, mdx - (a * msx - b * msy), b, a, mdy - (b * msx + a * msy)];
}

/** dan.inference.align.align_face: the face with these five landmarks warped onto the template, size x size. */
export function alignFace(img, landmarks, size) {
  const dst = TEMPLATE.map(([x, y]) => [x * size, y * size]);
  let pts = landmarks.map(([x, y]) => [x, y]);
  let m = similarityMatrix(pts, dst);
  let image = img;
  const scale = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
  if (scale < 0.5) {
    const inv = invertAffine(m);
    const corners = [[0, 0], [size, 0], [0, size], [size, size]].map(([x, y]) => [
      inv[0] * x + inv[1] * y + inv[2],
      inv[3] * x + inv[4] * y + inv[5],
    ]);
    let x0 = Math.floor(Math.min(...corners.map((c) => c[0]))) - 2;
    let y0 = Math.floor(Math.min(...corners.map((c) => c[1]))) - 2;
    let x1 = Math.ceil(Math.max(...corners.map((c) => c[0]))) + 2;
    let y1 = Math.ceil(Math.max(...corners.map((c) => c[1]))) + 2;
    x0 = Math.max(x0, 0); y0 = Math.max(y0, 0); x1 = Math.min(x1, img.width); y1 = Math.min(y1, img.height);
    if (x1 - x0 >= 2 && y1 - y0 >= 2) {
      const f = scale * 2;
      const region = crop(img, x0, y0, x1, y1);
      const reduced = resizeArea(region, rint((x1 - x0) * f), rint((y1 - y0) * f), 1 / f, 1 / f);
      const kx = reduced.width / (x1 - x0), ky = reduced.height / (y1 - y0);
      pts = pts.map(([x, y]) => [(x - x0) * kx, (y - y0) * ky]);
      image = reduced;
      m = similarityMatrix(pts, dst);
    }
  }
  return warpAffine(image, m, size);
}

/** The region (x0, y0, x1, y1) of an image, border pixels replicated where it leaves the image. */
export function crop(img, x0, y0, x1, y1) {
  const w = Math.max(x1 - x0, 1), h = Math.max(y1 - y0, 1);
  const out = makeImage(w, h);
  const inside = Math.min(x1, img.width) > Math.max(x0, 0) && Math.min(y1, img.height) > Math.max(y0, 0);
  if (!inside) return out;
  for (let y = 0; y < h; y++) {
    const sy = Math.min(Math.max(y + y0, 0), img.height - 1);
    for (let x = 0; x < w; x++) {
      const sx = Math.min(Math.max(x + x0, 0), img.width - 1);
      for (let c = 0; c < 3; c++) out.data[(y * w + x) * 3 + c] = img.data[(sy * img.width + sx) * 3 + c];
    }
  }
  return out;
}

/** dan.inference.crops.expand_box: a face box squared, grown by margin: [x0, y0, x1, y1]. */
export function expandBox(box, margin) {
  let [x, y, w, h] = box;
  const cx = x + w / 2, cy = y + h / 2;
  w = h = Math.max(w, h);
  w = Math.max(w * (1 + 2 * margin), 2);
  h = Math.max(h * (1 + 2 * margin), 2);
  const x0 = rint(cx - w / 2), y0 = rint(cy - h / 2);
  return [x0, y0, x0 + rint(w), y0 + rint(h)];
}

/** dan.inference.crops.extract_face: the aligned face, or the box crop, as the model's record says. */
export function extractFace(img, det, pre) {
  if (pre.crop === "align" && det.landmarks) return alignFace(img, det.landmarks, pre.face_size);
  return crop(img, ...expandBox([det.x, det.y, det.w, det.h], pre.margin));
}

// PIL's precompute_coeffs (bilinear, support 1) and normalize_coeffs_8bpc (22 fractional bits)
function pilCoeffs(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1 ? 1 - t : 0;
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const ik = new Int32Array(outSize * ksize);
  for (let i = 0; i < kk.length; i++) ik[i] = kk[i] < 0 ? Math.trunc(-0.5 + kk[i] * 4194304) : Math.trunc(0.5 + kk[i] * 4194304);
  return { ksize, bounds, ik };
}

const clip8 = (v) => {
  const r = Math.floor(v / 4194304);
  return r < 0 ? 0 : r > 255 ? 255 : r;
};

/** PIL's Image.resize((size, size), BILINEAR) of an RGB image: horizontal pass, then vertical, 8-bit between. */
export function resizePIL(img, size) {
  if (img.width === size && img.height === size) return img;
  let cur = img;
  if (cur.width !== size) {
    const { ksize, bounds, ik } = pilCoeffs(cur.width, size);
    const out = makeImage(size, cur.height);
    for (let y = 0; y < cur.height; y++) {
      for (let xx = 0; xx < size; xx++) {
        const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
        for (let c = 0; c < 3; c++) {
          let ss = 2097152;
          for (let x = 0; x < xmax; x++) ss += cur.data[(y * cur.width + x + xmin) * 3 + c] * ik[xx * ksize + x];
          out.data[(y * size + xx) * 3 + c] = clip8(ss);
        }
      }
    }
    cur = out;
  }
  if (cur.height !== size) {
    const { ksize, bounds, ik } = pilCoeffs(cur.height, size);
    const out = makeImage(cur.width, size);
    for (let yy = 0; yy < size; yy++) {
      const ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
      for (let x = 0; x < cur.width; x++) {
        for (let c = 0; c < 3; c++) {
          let ss = 2097152;
          for (let y = 0; y < ymax; y++) ss += cur.data[((y + ymin) * cur.width + x) * 3 + c] * ik[yy * ksize + y];
          out.data[(yy * cur.width + x) * 3 + c] = clip8(ss);
        }
      }
    }
    cur = out;
  }
  return cur;
}

/** dan.preprocess.prepare_face into batch slot n of a float32 (N, 3, S, S) array: ((rgb / 255) - mean) / std. */
export function prepareFace(face, pre, batch, n) {
  const s = pre.input_size;
  const img = resizePIL(face, s);
  const f = Math.fround;
  const mean = pre.mean.map(f), std = pre.std.map(f);
  const base = n * 3 * s * s;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < s * s; i++) {
      batch[base + c * s * s + i] = f(f(f(img.data[i * 3 + c] / 255) - mean[c]) / std[c]);
    }
  }
}
