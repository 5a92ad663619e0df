// The web UI: one conversation about one image through the server's own API (docs/SERVER.md). The page keeps the
// conversation and sends it whole with every question — earlier answers with their locations, as the API returned
// them — so the server stays stateless and its prefix cache continues the previous turn.
"use strict";

const $ = (id) => document.getElementById(id);
const colors = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];

const state = {
  image: null, // HTMLImageElement of the chosen file
  dataURL: null, // the same file as sent to the server
  regions: [], // user boxes in image pixels [x1, y1, x2, y2], referred to as [i]
  history: [], // messages so far, assistant ones with their locations
  locations: [], // the last answer's, drawn on the image
  drag: null, // the region being drawn
  busy: false,
};

// A server started with --api-key answers 401 without it: the page then asks for the key and keeps it for the tab.
function authHeaders() {
  const key = sessionStorage.getItem("nextchat-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function askForKey() {
  $("key-row").hidden = false;
  $("api-key").focus();
}

$("api-key").addEventListener("change", (e) => {
  sessionStorage.setItem("nextchat-api-key", e.target.value);
  showModel();
});

function showModel() {
  fetch("/v1/models", { headers: authHeaders() }).then((r) => {
    if (r.status === 401) askForKey();
    return r.ok ? r.json() : null;
  }).then((m) => {
    if (m) $("model").textContent = m.data[0].id;
  }).catch(() => {});
}

showModel();
draw(); // no image yet: an empty canvas, not the browser's default 300 × 150

$("image").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    state.dataURL = await readAsDataURL(file);
    state.image = await loadImage(state.dataURL);
  } catch (err) {
    showError(err.message);
    return;
  }
  state.regions = [];
  resetConversation();
});

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot display this image"));
    img.src = src;
  });
}

// decodeRLE reads COCO's compressed RLE (the server's mask_rle): counts in 5-bit groups offset by 48, from the
// fourth on as a difference from the count two before, alternating background and object runs in column-major
// order. It returns the mask row-major and its area.
function decodeRLE(rle) {
  const [h, w] = rle.size;
  const s = rle.counts;
  const counts = [];
  for (let p = 0; p < s.length;) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = s.charCodeAt(p++) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const bits = new Uint8Array(w * h);
  let i = 0;
  let area = 0;
  counts.forEach((n, j) => {
    if (j % 2 === 1) {
      for (let t = i; t < i + n; t++) bits[(t % h) * w + Math.floor(t / h)] = 1;
      area += n;
    }
    i += n;
  });
  return { w, h, bits, area };
}

// draw paints the image, the last answer's masks and boxes, and the regions. The canvas holds the image at a whole
// multiple k of its size, at least the size it is shown at, so that boxes stay sharp on small images; everything is
// drawn in image pixels through the k× transform.
function draw() {
  const c = $("canvas");
  const g = c.getContext("2d");
  if (!state.image) {
    c.width = c.height = 0;
    return;
  }
  const w = state.image.naturalWidth;
  const k = Math.max(1, Math.ceil(c.parentElement.clientWidth / w));
  c.width = w * k;
  c.height = state.image.naturalHeight * k;
  g.imageSmoothingEnabled = false;
  g.setTransform(k, 0, 0, k, 0, 0);
  g.drawImage(state.image, 0, 0);
  state.locations.forEach((l, i) => {
    const color = colors[i % colors.length];
    if (l.mask) drawMask(g, l.mask, color);
    if (l.box_pixel) strokeBox(g, l.box_pixel, color, `[${i}]`, []);
  });
  state.regions.forEach((b, i) => strokeBox(g, b, "#ffffff", `region [${i}]`, [6, 4]));
  if (state.drag) strokeBox(g, state.drag, "#ffffff", "", [6, 4]);
}

function drawMask(g, m, color) {
  const layer = document.createElement("canvas");
  layer.width = m.w;
  layer.height = m.h;
  const lg = layer.getContext("2d");
  const px = lg.createImageData(m.w, m.h);
  const [r, g2, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  const d = px.data;
  for (let i = 0; i < m.bits.length; i++) { // photos have millions of pixels: no allocation per pixel
    if (m.bits[i]) {
      d[4 * i] = r;
      d[4 * i + 1] = g2;
      d[4 * i + 2] = b;
      d[4 * i + 3] = 128;
    }
  }
  lg.putImageData(px, 0, 0);
  g.drawImage(layer, 0, 0);
}

// strokeBox draws a box in image pixels, its line 2 pixels of the screen wide, and its label in 14 screen pixels.
function strokeBox(g, b, color, label, dash) {
  const px = g.canvas.width / g.canvas.getBoundingClientRect().width; // canvas pixels per screen pixel
  const k = g.canvas.width / state.image.naturalWidth; // canvas pixels per image pixel
  g.save();
  g.setTransform(1, 0, 0, 1, 0, 0);
  g.setLineDash(dash.map((d) => d * px));
  g.lineWidth = 2 * px;
  g.strokeStyle = color;
  g.strokeRect(b[0] * k, b[1] * k, (b[2] - b[0]) * k, (b[3] - b[1]) * k);
  if (label) { // on a patch of the box's colour, above the box where there is room, else inside it
    const size = 14 * px;
    g.font = `${size}px sans-serif`;
    const w = g.measureText(label).width + 6 * px;
    const h = size + 4 * px;
    const x = b[0] * k;
    const y = b[1] * k >= h ? b[1] * k - h : b[1] * k;
    g.fillStyle = color;
    g.fillRect(x, y, w, h);
    g.fillStyle = color === "#ffffff" ? "#000000" : "#ffffff";
    g.textBaseline = "top";
    g.fillText(label, x + 3 * px, y + 2 * px);
  }
  g.restore();
}

// Regions: drag on the image. Pointer positions map to image pixels through the size the image is shown at.
function imagePoint(e) {
  const r = $("canvas").getBoundingClientRect();
  const w = state.image.naturalWidth;
  const h = state.image.naturalHeight;
  const x = ((e.clientX - r.left) * w) / r.width;
  const y = ((e.clientY - r.top) * h) / r.height;
  return [Math.min(Math.max(x, 0), w), Math.min(Math.max(y, 0), h)];
}

$("canvas").addEventListener("pointerdown", (e) => {
  if (!state.image || state.busy) return;
  const [x, y] = imagePoint(e);
  state.drag = [x, y, x, y];
  $("canvas").setPointerCapture(e.pointerId);
});

$("canvas").addEventListener("pointermove", (e) => {
  if (!state.drag) return;
  [state.drag[2], state.drag[3]] = imagePoint(e);
  draw();
});

$("canvas").addEventListener("pointerup", (e) => {
  const d = state.drag;
  state.drag = null;
  if (!d) return;
  [d[2], d[3]] = imagePoint(e); // where the button came up, moved or not
  const box = [Math.min(d[0], d[2]), Math.min(d[1], d[3]), Math.max(d[0], d[2]), Math.max(d[1], d[3])].map(Math.round);
  if (box[2] - box[0] >= 2 && box[3] - box[1] >= 2) state.regions.push(box);
  renderRegions();
  draw();
});

$("clear-regions").addEventListener("click", () => {
  state.regions = [];
  renderRegions();
  draw();
});

function renderRegions() {
  $("regions").replaceChildren(...state.regions.map((b) => {
    const li = document.createElement("li");
    li.textContent = b.join(", ");
    return li;
  }));
}

$("reset").addEventListener("click", resetConversation);

// Enter sends the question; Shift+Enter starts a new line.
$("question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("ask").requestSubmit();
  }
});

// While an answer streams, the conversation cannot change under it.
function setBusy(busy) {
  state.busy = busy;
  for (const id of ["send", "reset", "image", "clear-regions"]) $(id).disabled = busy;
}

function resetConversation() {
  state.history = [];
  state.locations = [];
  $("messages").replaceChildren();
  showError("");
  renderRegions();
  draw();
}

function showError(msg) {
  $("error").textContent = msg;
}

function addMessage(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

// request is the chat completion for the conversation so far and the new question: the image goes with the first
// user message, a location-first answer is the continuation of "Answer: <at>" (the grounding prompt).
function request(question) {
  const messages = [...state.history, { role: "user", content: question }].map((m, i) => {
    if (i !== 0 || !state.dataURL) return m;
    return { role: "user", content: [{ type: "text", text: m.content }, { type: "image_url", image_url: { url: state.dataURL } }] };
  });
  if ($("locate").checked) messages.push({ role: "assistant", content: "Answer: <at>" });
  const body = {
    messages,
    stream: true,
    max_tokens: Number($("max-tokens").value),
    temperature: Number($("temperature").value),
    masks: $("masks").checked,
    iou_threshold: Number($("iou-threshold").value),
    // The page shows photos upright, as browsers do (EXIF Orientation): the model reads them so too, and the boxes
    // come back in the pixels shown (the API's default is the reference's, pixels as stored).
    apply_exif_orientation: true,
  };
  if (state.regions.length) body.regions = state.regions;
  return body;
}

// ask streams one answer into li: text deltas as they come, then its locations.
async function ask(body, li) {
  const resp = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(body),
  });
  if (resp.status === 401) askForKey();
  if (!resp.ok) {
    const e = await resp.json().catch(() => ({ error: { message: resp.statusText } }));
    throw new Error(e.error.message);
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  let text = "";
  let locations = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) {
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const chunk = JSON.parse(line.slice(6));
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices.length ? chunk.choices[0].delta : {};
      if (delta.content) {
        text += delta.content;
        li.textContent = text;
      }
      if (delta.locations) locations = delta.locations;
    }
  }
  return { text, locations };
}

function showLocations(li, locations) {
  const ul = document.createElement("ul");
  locations.forEach((l, k) => {
    const item = document.createElement("li");
    item.style.color = colors[k % colors.length];
    const box = (l.box_pixel || l.box).map((v) => v.toFixed(1)).join(", ");
    let desc = `[${k}] box ${box}`;
    if (l.iou !== undefined) desc += ` · IoU ${l.iou.toFixed(3)}`;
    if (l.mask) desc += ` · mask ${l.mask.area} px`;
    item.textContent = desc;
    item.dataset.maskArea = l.mask ? l.mask.area : 0;
    ul.append(item);
  });
  li.append(ul);
}

$("ask").addEventListener("submit", async (e) => {
  e.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.busy) return;
  setBusy(true);
  showError("");
  const body = request(question);
  addMessage("user", question);
  const li = addMessage("assistant", "…");
  try {
    const answer = await ask(body, li);
    li.textContent = answer.text;
    state.locations = answer.locations.map((l) => ({ ...l, mask: l.mask_rle ? decodeRLE(l.mask_rle) : null }));
    showLocations(li, state.locations);
    state.history.push({ role: "user", content: question },
      { role: "assistant", content: answer.text, locations: answer.locations.map((l) => ({ box: l.box })) });
    li.classList.add("done");
    $("question").value = "";
    draw();
  } catch (err) {
    li.remove();
    $("messages").lastChild.remove(); // the question goes back to the box
    showError(err.message);
  } finally {
    setBusy(false);
  }
});
