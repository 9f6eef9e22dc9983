// The built-in page of dinov3-server (server/webui/web_page.h): PCA and patch similarity of an
// image's DINOv3 patch features, computed here from the server's Open Inference Protocol REST
// answer (POST /v2/models/{name}/infer, IMAGE in the binary tensor extension, PATCH_TOKENS as
// FP32 in binary). No library, no external fetch: the page's Content-Security-Policy allows
// connections to this origin only.
//
// What the page exposes for tests and curious users: window.dinov3WebPage, with `result`
// ({model, gridHeight, gridWidth, dim, features (Float32Array, P x D row-major), scores
// (3 Float64Array of P: the principal component scores), roundTripMs}) once an image is
// analysed, `selected` ({row, col}) and `similarity` (Float64Array of P) after a click, and
// `pickPatch(row, col)`. document.body.dataset.state is "starting", "idle", "working",
// "ready" or "error".
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORAGE = "dinov3.apiKey";  // sessionStorage: this tab only
  const MAX_VIEW = 512;                 // longer side of a picture on the page, CSS pixels
  const page = { result: null, selected: null, similarity: null, pickPatch };
  window.dinov3WebPage = page;
  let currentFile = null;
  let photo = null;  // ImageBitmap of currentFile

  function setState(state, message, isError) {
    document.body.dataset.state = state;
    if (message !== undefined) {
      $("status").textContent = message;
      $("status").classList.toggle("error", Boolean(isError));
    }
  }

  function authHeaders() {
    const key = sessionStorage.getItem(KEY_STORAGE);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  // The message of an error answer: OIP {"error": "..."}, OpenAI {"error": {"message": ...}}.
  async function errorText(response) {
    const text = await response.text();
    try {
      const error = JSON.parse(text).error;
      return typeof error === "string" ? error : (error && error.message) || text;
    } catch (e) {
      return text || response.statusText;
    }
  }

  async function loadModels() {
    setState("starting", "Loading the model list…");
    const response = await fetch("/v1/models", { headers: authHeaders() });
    if (response.status === 401) {
      setState("error", "This server needs an API key: paste it above and press Use key.", true);
      $("api-key").focus();
      return;
    }
    if (!response.ok) {
      setState("error", `GET /v1/models: ${response.status} ${await errorText(response)}`, true);
      return;
    }
    const models = (await response.json()).data.map((m) => m.id);
    const select = $("model");
    const previous = select.value;
    select.replaceChildren(...models.map((id) => new Option(id, id)));
    if (models.includes(previous)) select.value = previous;
    if (models.length === 0) {
      setState("error", "The server has no ready model.", true);
      return;
    }
    setState("idle", currentFile ? undefined : "Choose or drop an image.");
    if (currentFile) analyse(currentFile);
  }

  // The request of the binary tensor extension: JSON header, then the IMAGE element (4-byte
  // little-endian length and the file's bytes).
  function inferBody(bytes, size, maxPatches) {
    const header = JSON.stringify({
      inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1],
                 parameters: { binary_data_size: 4 + bytes.byteLength } }],
      outputs: [{ name: "PATCH_TOKENS", parameters: { binary_data: true } }],
      parameters: { resize: "keep_aspect", height: size, max_patches: maxPatches,
                  datatype: "FP32" },
    });
    const headerBytes = new TextEncoder().encode(header);
    const body = new Uint8Array(headerBytes.length + 4 + bytes.byteLength);
    body.set(headerBytes, 0);
    new DataView(body.buffer).setUint32(headerBytes.length, bytes.byteLength, true);
    body.set(new Uint8Array(bytes), headerBytes.length + 4);
    return { body, headerLength: headerBytes.length };
  }

  // {features, gridHeight, gridWidth, dim, serverTimings} of an infer answer (binary or JSON).
  function parseInferAnswer(buffer, headerLengthText) {
    const headerLength = headerLengthText === null ? buffer.byteLength : Number(headerLengthText);
    const json = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 0, headerLength)));
    let offset = headerLength;
    let tokens = null;
    let data = null;
    for (const output of json.outputs || []) {
      const size = output.parameters && output.parameters.binary_data_size;
      if (output.name === "PATCH_TOKENS") {
        tokens = output;
        if (size !== undefined) {
          // Little-endian FP32; a copy, so that the view is aligned.
          if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
            throw new Error("this browser's machine is big-endian: FP32 data cannot be read");
          }
          data = new Float32Array(buffer.slice(offset, offset + size));
        } else {
          data = Float32Array.from(output.data);
        }
      }
      if (size !== undefined) offset += size;
    }
    if (tokens === null) throw new Error("the answer has no PATCH_TOKENS output");
    const [, patches, dim] = tokens.shape;
    const gridHeight = Number(tokens.parameters.grid_height);
    const gridWidth = Number(tokens.parameters.grid_width);
    if (gridHeight * gridWidth !== patches || data.length !== patches * dim) {
      throw new Error(`PATCH_TOKENS ${tokens.shape} does not match its grid ` +
                      `${gridHeight}x${gridWidth}`);
    }
    return { features: data, gridHeight, gridWidth, dim,
             serverTimings: serverTimings(json) };
  }

  // Timings the answer carries, if any: numeric parameters named *_seconds or *_ms (answer or
  // output parameters), as [name, milliseconds].
  function serverTimings(json) {
    const found = [];
    const scan = (parameters) => {
      for (const [name, value] of Object.entries(parameters || {})) {
        if (typeof value !== "number") continue;
        if (name.endsWith("_seconds")) found.push([name.slice(0, -8), value * 1000]);
        else if (name.endsWith("_ms")) found.push([name.slice(0, -3), value]);
      }
    };
    scan(json.parameters);
    for (const output of json.outputs || []) scan(output.parameters);
    return found;
  }

  function showTimings(roundTripMs, fromBody, serverTiming) {
    const parts = [`round trip ${roundTripMs.toFixed(1)} ms`];
    const server = fromBody.map(([name, ms]) => `${name.replace(/_/g, " ")} ${ms.toFixed(1)} ms`);
    if (serverTiming) server.push(serverTiming);
    parts.push(server.length ? `server: ${server.join(", ")}`
                             : "the answer carries no server timings");
    $("timings").textContent = parts.join("; ");
  }

  function analyse(file) {
    analyseOrThrow(file).catch((e) => setState("error", `Failed: ${e.message}`, true));
  }

  async function analyseOrThrow(file) {
    currentFile = file;
    const model = $("model").value;
    if (!model) return;
    setState("working", `Computing the patch features of ${file.name} with ${model}…`);
    try {
      photo = await createImageBitmap(file);
    } catch (e) {
      setState("error", `${file.name} is not an image this browser can show: ${e.message}`, true);
      return;
    }
    const { body, headerLength } = inferBody(await file.arrayBuffer(),
                                             Number($("size").value),
                                             Number($("max-patches").value));
    const started = performance.now();
    let response;
    try {
      response = await fetch(`/v2/models/${encodeURIComponent(model)}/infer`, {
        method: "POST",
        headers: { ...authHeaders(), "Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": String(headerLength) },
        body,
      });
    } catch (e) {
      setState("error", `The server did not answer: ${e.message}`, true);
      return;
    }
    const buffer = response.ok ? await response.arrayBuffer() : null;
    const roundTripMs = performance.now() - started;
    if (!response.ok) {
      const hint = response.status === 401 ? " (paste the API key above)" : "";
      setState("error", `${model}: ${response.status} ${await errorText(response)}${hint}`, true);
      return;
    }
    try {
      const answer = parseInferAnswer(buffer,
                                      response.headers.get("Inference-Header-Content-Length"));
      const scores = principalComponents(answer.features, answer.gridHeight * answer.gridWidth,
                                         answer.dim, 3);
      page.result = { model, ...answer, scores, roundTripMs };
      page.selected = null;
      page.similarity = null;
      drawViews();
      showTimings(roundTripMs, answer.serverTimings, response.headers.get("Server-Timing"));
      setState("ready", `${model}: ${answer.gridHeight}x${answer.gridWidth} patches of ` +
                        `${answer.dim} features. Click a patch.`);
    } catch (e) {
      setState("error", `Could not read the answer: ${e.message}`, true);
    }
  }

  // The first `count` principal component scores (Float64Array of n each) of the n x d rows of
  // `x`: centre the columns, then power iteration with deflation on the d x d covariance, or on
  // the n x n Gram matrix when n < d (its eigenvectors scaled by sqrt(eigenvalue) are the same
  // scores). Each direction's sign makes its largest-magnitude loading positive (the rule of
  // dinov3_client's pictures, so colours are deterministic). A component whose eigenvalue is ~0
  // (e.g. a flat image) scores 0 everywhere.
  function principalComponents(x, n, d, count) {
    const centred = new Float64Array(n * d);
    const mean = new Float64Array(d);
    for (let i = 0; i < n; ++i) for (let j = 0; j < d; ++j) mean[j] += x[i * d + j] / n;
    for (let i = 0; i < n; ++i) {
      for (let j = 0; j < d; ++j) centred[i * d + j] = x[i * d + j] - mean[j];
    }
    const useGram = n < d;
    const m = useGram ? n : d;
    const matrix = new Float64Array(m * m);  // symmetric: X^T X or X X^T
    for (let a = 0; a < m; ++a) {
      for (let b = a; b < m; ++b) {
        let sum = 0;
        if (useGram) {
          for (let k = 0; k < d; ++k) sum += centred[a * d + k] * centred[b * d + k];
        } else {
          for (let k = 0; k < n; ++k) sum += centred[k * d + a] * centred[k * d + b];
        }
        matrix[a * m + b] = sum;
        matrix[b * m + a] = sum;
      }
    }
    const scores = [];
    for (let c = 0; c < count; ++c) {
      const { vector, value } = topEigenvector(matrix, m, c);
      for (let a = 0; a < m; ++a) {  // deflate: matrix -= value * v v^T
        for (let b = 0; b < m; ++b) matrix[a * m + b] -= value * vector[a] * vector[b];
      }
      const score = new Float64Array(n);
      if (value > 0) {
        let loading = vector;  // the direction in feature space (up to a positive scale)
        if (useGram) {
          loading = new Float64Array(d);
          for (let i = 0; i < n; ++i) {
            for (let j = 0; j < d; ++j) loading[j] += centred[i * d + j] * vector[i];
          }
        }
        let largest = 0;
        for (let j = 1; j < d; ++j) {
          if (Math.abs(loading[j]) > Math.abs(loading[largest])) largest = j;
        }
        const sign = loading[largest] < 0 ? -1 : 1;
        if (useGram) {
          const scale = sign * Math.sqrt(value);
          for (let i = 0; i < n; ++i) score[i] = vector[i] * scale;
        } else {
          for (let i = 0; i < n; ++i) {
            let sum = 0;
            for (let j = 0; j < d; ++j) sum += centred[i * d + j] * vector[j];
            score[i] = sign * sum;
          }
        }
      }
      scores.push(score);
    }
    return scores;
  }

  // Power iteration on the m x m symmetric positive semi-definite `matrix` from a fixed
  // pseudo-random start (seeded by `seed`): {vector (unit), value (its Rayleigh quotient)}.
  function topEigenvector(matrix, m, seed) {
    let vector = new Float64Array(m);
    let state = 12345 + 7919 * seed;
    for (let a = 0; a < m; ++a) {
      state = (state * 1103515245 + 12345) % 2147483648;
      vector[a] = state / 2147483648 - 0.5;
    }
    normalise(vector);
    let value = 0;
    for (let iteration = 0; iteration < 500; ++iteration) {
      const next = new Float64Array(m);
      for (let a = 0; a < m; ++a) {
        let sum = 0;
        for (let b = 0; b < m; ++b) sum += matrix[a * m + b] * vector[b];
        next[a] = sum;
      }
      let rayleigh = 0;
      for (let a = 0; a < m; ++a) rayleigh += vector[a] * next[a];
      if (normalise(next) === 0) return { vector: next, value: 0 };
      let change = 0;
      for (let a = 0; a < m; ++a) change = Math.max(change, Math.abs(next[a] - vector[a]));
      vector = next;
      value = rayleigh;
      if (change < 1e-9) break;
    }
    return { vector, value: Math.max(value, 0) };
  }

  function normalise(v) {
    let norm = 0;
    for (const e of v) norm += e * e;
    norm = Math.sqrt(norm);
    if (norm > 0) for (let a = 0; a < v.length; ++a) v[a] /= norm;
    return norm;
  }

  // The views' size in canvas pixels: the photo's aspect, MAX_VIEW on its longer side.
  function viewSize() {
    const scale = MAX_VIEW / Math.max(photo.width, photo.height);
    return [Math.max(1, Math.round(photo.width * scale)),
            Math.max(1, Math.round(photo.height * scale))];
  }

  // Paints `rgba` (gridWidth x gridHeight pixels) over the whole of `canvas`, one flat block
  // per patch (nearest neighbour, as dinov3_client's pictures).
  function paintGrid(canvas, rgba, gridWidth, gridHeight) {
    const small = document.createElement("canvas");
    small.width = gridWidth;
    small.height = gridHeight;
    small.getContext("2d").putImageData(new ImageData(rgba, gridWidth, gridHeight), 0, 0);
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.drawImage(small, 0, 0, canvas.width, canvas.height);
  }

  function drawViews() {
    const { gridHeight, gridWidth, scores } = page.result;
    const [width, height] = viewSize();
    for (const id of ["pca", "photo", "sim"]) {
      $(id).width = width;
      $(id).height = height;
    }
    const photoContext = $("photo").getContext("2d");
    photoContext.filter = "grayscale(1)";  // under the heat map, colour would mislead
    photoContext.drawImage(photo, 0, 0, width, height);
    $("sim").getContext("2d").clearRect(0, 0, width, height);
    $("marker").hidden = true;
    $("legend-low").textContent = "";
    $("legend-high").textContent = "";
    const patches = gridHeight * gridWidth;
    const rgba = new Uint8ClampedArray(patches * 4);
    scores.forEach((score, channel) => {  // min-max each component to 0..255
      let low = Infinity;
      let high = -Infinity;
      for (const s of score) {
        low = Math.min(low, s);
        high = Math.max(high, s);
      }
      const range = high - low;
      for (let p = 0; p < patches; ++p) {
        rgba[p * 4 + channel] = range > 0 ? Math.round((255 * (score[p] - low)) / range) : 0;
      }
    });
    for (let p = 0; p < patches; ++p) rgba[p * 4 + 3] = 255;
    paintGrid($("pca"), rgba, gridWidth, gridHeight);
  }

  // The "hot" colour map of t in [0, 1] (dinov3_client's hot_colors): black (0), red (1/3),
  // yellow (2/3), white (1), linear in between. [r, g, b] in 0..255.
  function colour(t) {
    const clamped = Math.min(1, Math.max(0, t));
    return [0, 1 / 3, 2 / 3].map(
        (start) => Math.round(255 * Math.min(1, Math.max(0, 3 * (clamped - start)))));
  }

  // Cosine similarity of patch (row, col) to every patch, shown as a heat map over the photo.
  function pickPatch(row, col) {
    const { features, gridHeight, gridWidth, dim } = page.result;
    const patches = gridHeight * gridWidth;
    const norms = new Float64Array(patches);
    for (let p = 0; p < patches; ++p) {
      let sum = 0;
      for (let k = 0; k < dim; ++k) sum += features[p * dim + k] ** 2;
      norms[p] = Math.sqrt(sum);
    }
    const q = row * gridWidth + col;
    const similarity = new Float64Array(patches);
    let low = 1;
    for (let p = 0; p < patches; ++p) {
      let dot = 0;
      for (let k = 0; k < dim; ++k) dot += features[p * dim + k] * features[q * dim + k];
      const denominator = norms[p] * norms[q];
      similarity[p] = denominator > 0 ? dot / denominator : 0;
      low = Math.min(low, similarity[p]);
    }
    // As dinov3_client's pictures: the image's lowest cosine is black, 1 (the patch) white.
    const rgba = new Uint8ClampedArray(patches * 4);
    for (let p = 0; p < patches; ++p) {
      const [r, g, b] = colour(low < 1 ? (similarity[p] - low) / (1 - low) : 1);
      rgba.set([r, g, b, 255], p * 4);
    }
    paintGrid($("sim"), rgba, gridWidth, gridHeight);
    page.selected = { row, col };
    page.similarity = similarity;
    $("legend-low").textContent = low.toFixed(3);
    $("legend-high").textContent = "1";
    $("sim-caption").textContent =
        `Cosine similarity of patch (row ${row}, column ${col}) to every patch`;
    const canvas = $("sim");
    const marker = $("marker");
    const cellWidth = canvas.clientWidth / gridWidth;
    const cellHeight = canvas.clientHeight / gridHeight;
    marker.style.left = `${col * cellWidth}px`;
    marker.style.top = `${row * cellHeight}px`;
    marker.style.width = `${cellWidth}px`;
    marker.style.height = `${cellHeight}px`;
    marker.hidden = false;
  }

  function onPictureClick(event) {
    if (!page.result) return;
    const rect = event.currentTarget.getBoundingClientRect();
    const { gridHeight, gridWidth } = page.result;
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * gridWidth);
    const row = Math.floor(((event.clientY - rect.top) / rect.height) * gridHeight);
    pickPatch(Math.min(gridHeight - 1, Math.max(0, row)),
              Math.min(gridWidth - 1, Math.max(0, col)));
  }

  function start() {
    $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
    $("use-key").addEventListener("click", () => {
      const key = $("api-key").value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
      loadModels();
    });
    $("model").addEventListener("change", () => currentFile && analyse(currentFile));
    $("file").addEventListener("change", (event) => {
      if (event.target.files.length) analyse(event.target.files[0]);
    });
    const drop = $("drop");
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      if (event.dataTransfer.files.length) analyse(event.dataTransfer.files[0]);
    });
    for (const stage of document.querySelectorAll(".stage")) {
      stage.addEventListener("click", onPictureClick);
    }
    loadModels().catch((e) => setState("error", `GET /v1/models failed: ${e.message}`, true));
  }

  start();
})();
