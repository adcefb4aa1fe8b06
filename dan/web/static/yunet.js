// YuNet (OpenCV Zoo's face_detection_yunet_2023mar) as cv2.FaceDetectorYN runs it, and as dan's Detector
// wraps it (dan/inference/detectors.py): a frame whose longest side exceeds detect_size is scaled down with
// INTER_AREA, padded with zeros to a multiple of 32, fed as BGR float NCHW without scaling; each cell of the
// strides 8, 16 and 32 gives score = sqrt(clamp(cls) * clamp(obj)), a box and five landmarks, in float32 as
// OpenCV decodes them; non-maximum suppression on integer boxes; then boxes back in frame pixels (rounded
// half to even, clipped to the frame) and the faces sorted largest first.
import { resizeArea, rint } from "./vision.js";

const STRIDES = [8, 16, 32];
const f = Math.fround;

/** The detector's input tensor data for an RGB image: float32 (1, 3, padH, padW), BGR, zero padding. */
export function yunetInput(img) {
  const padW = (Math.floor((img.width - 1) / 32) + 1) * 32;
  const padH = (Math.floor((img.height - 1) / 32) + 1) * 32;
  const data = new Float32Array(3 * padH * padW);
  const plane = padH * padW;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const s = (y * img.width + x) * 3;
      const d = y * padW + x;
      data[d] = img.data[s + 2];
      data[plane + d] = img.data[s + 1];
      data[2 * plane + d] = img.data[s];
    }
  }
  return { data, padW, padH };
}

// OpenCV's jaccard overlap of two integer rectangles [x, y, w, h]
function overlap(a, b) {
  const x1 = Math.max(a[0], b[0]), y1 = Math.max(a[1], b[1]);
  const x2 = Math.min(a[0] + a[2], b[0] + b[2]), y2 = Math.min(a[1] + a[3], b[1] + b[3]);
  const inter = x2 > x1 && y2 > y1 ? (x2 - x1) * (y2 - y1) : 0;
  const union = a[2] * a[3] + b[2] * b[3] - inter;
  return union <= 0 ? 0 : f(inter / union);
}

/** FaceDetectorYN's post-processing: outputs (by name) -> [x, y, w, h, 10 landmark values, score] rows. */
export function decode(outputs, padW, padH, scoreThreshold, nmsThreshold, topK) {
  const faces = [];
  for (const stride of STRIDES) {
    const cols = Math.floor(padW / stride), rows = Math.floor(padH / stride);
    const cls = outputs[`cls_${stride}`], obj = outputs[`obj_${stride}`];
    const bbox = outputs[`bbox_${stride}`], kps = outputs[`kps_${stride}`];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const clsScore = Math.max(0, Math.min(1, cls[i]));
        const objScore = Math.max(0, Math.min(1, obj[i]));
        const score = f(Math.sqrt(f(clsScore * objScore)));
        if (score < scoreThreshold) continue;
        const cx = f(f(c + bbox[i * 4]) * stride), cy = f(f(r + bbox[i * 4 + 1]) * stride);
        const w = f(f(Math.exp(bbox[i * 4 + 2])) * stride), h = f(f(Math.exp(bbox[i * 4 + 3])) * stride);
        const face = [f(cx - f(w / 2)), f(cy - f(h / 2)), w, h];
        for (let n = 0; n < 5; n++) {
          face.push(f(f(kps[i * 10 + 2 * n] + c) * stride), f(f(kps[i * 10 + 2 * n + 1] + r) * stride));
        }
        face.push(score);
        faces.push(face);
      }
    }
  }
  if (faces.length <= 1) return faces;
  // cv::dnn::NMSBoxes on Rect2i(int(x), int(y), int(w), int(h)): scores above the threshold, stable by score
  const order = faces.map((face, i) => [face[14], i]).filter(([s]) => s > scoreThreshold);
  order.sort((a, b) => b[0] - a[0]);
  const rects = faces.map((face) => face.slice(0, 4).map(Math.trunc));
  const keep = [];
  for (const [, i] of order) {
    if (keep.every((k) => overlap(rects[i], rects[k]) <= nmsThreshold)) keep.push(i);
    if (keep.length >= topK) break;
  }
  return keep.map((i) => faces[i]);
}

/** The scaled-down frame dan's Detector runs YuNet on, and its scale (detection pixels per frame pixel). */
export function detectionImage(img, detectSize) {
  const longest = Math.max(img.width, img.height);
  if (!detectSize || longest <= detectSize) return { small: img, scale: 1 };
  const scale = detectSize / longest;
  const w = Math.max(1, rint(img.width * scale)), h = Math.max(1, rint(img.height * scale));
  return { small: resizeArea(img, w, h), scale };
}

/** Faces in frame pixels, as dan's Detector.detect returns them: {x, y, w, h, score, landmarks}, largest first. */
export function toDetections(rows, scale, width, height) {
  const s = f(scale);
  const found = [];
  for (const row of rows) {
    const [x, y, bw, bh] = row;
    const x0 = Math.max(0, rint(f(x / s))), y0 = Math.max(0, rint(f(y / s)));
    const x1 = Math.min(width, rint(f(f(x + bw) / s))), y1 = Math.min(height, rint(f(f(y + bh) / s)));
    const landmarks = [];
    for (let n = 0; n < 5; n++) landmarks.push([f(row[4 + 2 * n] / s), f(row[5 + 2 * n] / s)]);
    if (x1 - x0 >= 2 && y1 - y0 >= 2) found.push({ x: x0, y: y0, w: x1 - x0, h: y1 - y0, score: row[14], landmarks });
  }
  return found.sort((a, b) => b.w * b.h - a.w * a.h);
}
