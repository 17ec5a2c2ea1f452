// The Bosun console: one page, one view at a time (#/workspaces, #/plan/NAME,
// #/playground, #/metrics, #/tuning/NAME, #/create). It reads the console's JSON API
// (/api, console/app.py) and chats through the gateway's OpenAI routes (/v1), as any
// client would. No build step, no framework; charts are uPlot (static/vendor/uplot, MIT).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
const POLL_MS = 2000;

let apiKey = sessionStorage.getItem("bosun-api-key") || "";
let timers = [];
let charts = [];
let aborts = [];
let info = null;

// ------------------------------------------------------------------ plumbing

class ApiError extends Error {
  constructor(message, status, problems) {
    super(message);
    this.status = status;
    this.problems = problems || [];
  }
}

function headers(json) {
  const out = {};
  if (apiKey) out.Authorization = `Bearer ${apiKey}`;
  if (json) out["Content-Type"] = "application/json";
  return out;
}

async function api(path, body) {
  const options = body === undefined
    ? { headers: headers(false) }
    : { method: "POST", headers: headers(true), body: JSON.stringify(body) };
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (response.status === 401) askForKey("This gateway needs its API key.");
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(error.message || `${response.status} ${response.statusText}`,
      response.status, error.problems);
  }
  return data;
}

function askForKey(why) {
  $("#key-form").hidden = false;
  banner(why);
}

function banner(message) {
  const element = $("#banner");
  element.textContent = message || "";
  element.hidden = !message;
}

function every(ms, task) {
  const run = () => task().catch((error) => banner(error.message));
  run();
  timers.push(setInterval(run, ms));
}

function leaveView() {
  timers.forEach(clearInterval);
  charts.forEach((chart) => chart.destroy());
  aborts.forEach((controller) => controller.abort());
  timers = [];
  charts = [];
  aborts = [];
  banner("");
}

const bytes = (n) => {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
};

function stateBadge(state) {
  return `<span class="state ${esc(state)}" data-testid="state">${esc(state)}</span>`;
}

function chart(element, title, series, options = {}) {
  const width = Math.max(260, element.clientWidth || 380);
  const plot = new uPlot({
    width, height: options.height || 160,
    scales: { x: { time: options.time !== false }, y: options.y || {} },
    axes: [{}, { size: 50 }],
    legend: { show: series.length > 1 },
    series: [{}, ...series.map((s, i) => ({
      label: s, stroke: ["#2f6fed", "#e8710a", "#1e8e3e"][i % 3], width: 2, spanGaps: false,
    }))],
  }, [[], ...series.map(() => [])], element);
  charts.push(plot);
  return plot;
}

// ------------------------------------------------------------------ workspaces

function conditionList(conditions) {
  const items = conditions.map((c) =>
    `<li class="${esc(c.status)}"><b>${esc(c.type)}</b> ${esc(c.status)}` +
    (c.status === "True" ? "" : ` — ${esc(c.reason)}: ${esc(c.message)}`) + "</li>");
  return `<ul class="conditions">${items.join("")}</ul>`;
}

async function workspacesView(view) {
  view.innerHTML = `<h1>Workspaces</h1><div class="panel"><table data-testid="workspaces">
    <thead><tr><th>Name</th><th>State</th><th>Model</th><th>Endpoint</th><th>Replicas</th>
    <th>Devices</th><th>Conditions</th><th></th></tr></thead><tbody></tbody></table>
    <p class="muted" id="empty" hidden>No Workspaces yet: <a href="#/create">create one</a>,
    or <code>bosun up FILE</code>.</p></div>`;
  every(POLL_MS, async () => {
    const { items } = await api("api/workspaces");
    $("#empty", view).hidden = items.length > 0;
    $("tbody", view).innerHTML = items.map((w) => {
      const name = encodeURIComponent(w.name);
      const links = [`<a href="#/plan/${name}">Plan</a>`];
      if (w.kind === "tuning") links.push(`<a href="#/tuning/${name}">Tuning</a>`);
      else links.push(`<a href="#/playground/${encodeURIComponent(w.model)}">Chat</a>`);
      const adapters = w.adapters.length
        ? `<div class="muted">adapters: ${w.adapters.map(esc).join(", ")}</div>` : "";
      return `<tr data-testid="workspace-row" data-name="${esc(w.name)}">
        <td><b>${esc(w.name)}</b><div class="muted">${esc(w.kind)}</div></td>
        <td>${stateBadge(w.state)}</td>
        <td>${esc(w.model)}${adapters}</td>
        <td><code>${esc(w.endpoint || "–")}</code></td>
        <td>${esc(w.replicas)} / ${esc(w.wantedReplicas)}</td>
        <td>${esc(w.devices.join(", ") || "–")}</td>
        <td>${conditionList(w.conditions)}</td>
        <td>${links.join(" · ")}</td></tr>`;
    }).join("");
  });
}

// ------------------------------------------------------------------ plan

const PARTS = [
  ["weightsBytes", "weights", "#2f6fed"],
  ["kvCacheBytes", "KV cache", "#1e8e3e"],
  ["activationBytes", "activations", "#e8710a"],
  ["overheadBytes", "overhead", "#9334e6"],
];

function planHtml(result) {
  const p = result.plan;
  const m = p.memory;
  const devices = Math.max(1, p.devicesPerReplica);
  const capacity = m.deviceCapacityBytes * devices;
  const used = PARTS.reduce((sum, [key]) => sum + (m[key] || 0), 0);
  const scale = Math.max(capacity, used, 1);
  const segments = PARTS.map(([key, label, color]) =>
    `<span title="${label}: ${bytes(m[key])}" style="width:${(100 * m[key] / scale).toFixed(2)}%;background:${color}"></span>`).join("");
  const usable = m.usableBytes * devices;
  const legend = PARTS.map(([key, label, color]) =>
    `<span><i style="background:${color}"></i>${label} ${bytes(m[key])}</span>`).join("");
  const cells = [];
  for (let stage = 0; stage < p.pipelineParallelSize; stage++) {
    const row = [];
    for (let rank = 0; rank < p.tensorParallelSize; rank++) {
      row.push(`<td class="device">stage ${stage} · shard ${rank}</td>`);
    }
    cells.push(`<tr>${row.join("")}</tr>`);
  }
  const waiting = result.unschedulable.length
    ? `<h2 class="error">Why it waits for devices</h2><ul data-testid="unschedulable">${
      result.unschedulable.map((m) => `<li>${esc(m)}</li>`).join("")}</ul>` : "";
  const warnings = p.warnings.length
    ? `<h2>Warnings</h2><ul>${p.warnings.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>` : "";
  return `<div data-testid="plan">
    <p class="${p.fits ? "" : "error"}"><b>${p.fits ? "Fits" : "Does not fit"}</b>: ${esc(p.reason)}</p>
    <dl class="kv">
      <dt>Model</dt><dd>${esc(p.model)} <span class="muted">(${esc(p.modelRef)})</span></dd>
      <dt>Workload</dt><dd>${esc(p.workload)} on ${esc(p.runtime)}</dd>
      <dt>Devices</dt><dd>${esc(result.devices)} per replica, ${esc(p.replicas)} replica(s)${
        p.instanceType ? `, ${esc(p.nodesToProvision)} × ${esc(p.instanceType)}` : ""}</dd>
      <dt>Precision</dt><dd>${esc(p.dtype)}${p.quantization !== "none" ? `, ${esc(p.quantization)}` : ""}</dd>
      <dt>Context</dt><dd>${esc(p.maxModelLen)} tokens, ${esc(p.concurrency)} concurrent; KV holds ${esc(m.kvCapacityTokens)} tokens</dd>
    </dl>
    <h2>Memory per replica against ${devices} device(s) of ${bytes(m.deviceCapacityBytes)}</h2>
    <div class="bar" data-testid="memory-bar">${segments}
      <div class="cap" style="left:${(100 * Math.min(usable, scale) / scale).toFixed(2)}%" title="usable ${bytes(usable)}"></div></div>
    <div class="legend">${legend}<span class="muted">dashed: usable ${bytes(usable)} of ${bytes(capacity)}</span></div>
    <h2>Layout: tensor parallel ${esc(p.tensorParallelSize)} × pipeline parallel ${esc(p.pipelineParallelSize)} over ${esc(p.nodesPerReplica)} node(s) a replica</h2>
    <table data-testid="layout">${cells.join("")}</table>
    ${waiting}${warnings}</div>`;
}

async function planView(view, name) {
  view.innerHTML = `<h1>Plan: ${esc(name)}</h1><div class="panel" id="plan">loading…</div>`;
  const result = await api(`api/workspaces/${encodeURIComponent(name)}/plan`);
  $("#plan", view).innerHTML = planHtml(result);
}

// ------------------------------------------------------------------ playground

function paneHtml(id, title) {
  return `<div class="panel" data-testid="pane-${id}" id="pane-${id}">
    <div class="row"><b>${title}</b>
      <label>model <select class="model" data-testid="model-${id}"></select></label></div>
    <div class="row" style="margin-top:8px">
      <label>temperature <input class="temperature" type="number" min="0" max="2" step="0.1" placeholder="model's" style="width:80px"></label>
      <label>max tokens <input class="max-tokens" type="number" min="1" value="128" style="width:80px"></label></div>
    <textarea class="system" rows="2" placeholder="System prompt (optional)" style="margin-top:8px"></textarea>
    <div class="answer" data-testid="answer-${id}"></div>
    <div class="stats" data-testid="stats-${id}"></div></div>`;
}

async function streamAnswer(pane, prompt) {
  const answer = $(".answer", pane);
  const stats = $(".stats", pane);
  answer.textContent = "";
  answer.classList.remove("error");
  stats.textContent = "waiting for the first token…";
  const messages = [];
  const system = $(".system", pane).value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push({ role: "user", content: prompt });
  const body = {
    model: $(".model", pane).value, messages, stream: true,
    max_tokens: Number($(".max-tokens", pane).value),
    stream_options: { include_usage: true },
  };
  const temperature = $(".temperature", pane).value.trim();
  if (temperature !== "") body.temperature = Number(temperature);  // else the model's default
  const controller = new AbortController();
  aborts.push(controller);
  const began = performance.now();
  let first = null;
  let chunks = 0;
  let usage = null;
  try {
    const response = await fetch("v1/chat/completions", {
      method: "POST", headers: headers(true), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      if (response.status === 401) askForKey("This gateway needs its API key.");
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            if (first === null) first = performance.now();
            chunks += 1;
            answer.textContent += delta.content;
          }
        }
      }
    }
    const ended = performance.now();
    const tokens = usage ? usage.completion_tokens : chunks;
    const ttft = first === null ? null : first - began;
    const rate = first !== null && tokens > 1 && ended > first
      ? (tokens - 1) / ((ended - first) / 1000) : null;
    stats.textContent = `TTFT ${ttft === null ? "–" : ttft.toFixed(0) + " ms"} · ` +
      `${rate === null ? "–" : rate.toFixed(1)} tok/s · ${tokens} tokens`;
  } catch (error) {
    if (error.name === "AbortError") return;
    answer.classList.add("error");
    answer.textContent += `\n[error] ${error.message}`;
    stats.textContent = "";
  }
}

async function playgroundView(view, wanted) {
  view.innerHTML = `<h1>Playground</h1>
    <div class="row panel"><label><input type="checkbox" id="compare" data-testid="compare">
      Side by side (a base model against its adapter, say)</label></div>
    <div class="grid2" id="panes">${paneHtml("a", "A")}${paneHtml("b", "B")}</div>
    <div class="panel"><textarea id="prompt" rows="3" data-testid="prompt"
      placeholder="Ask something"></textarea>
      <div class="row" style="margin-top:8px"><button id="send" data-testid="send">Send</button>
      <span class="muted">Streams token by token through the gateway's /v1/chat/completions.</span></div></div>`;
  const paneB = $("#pane-b", view);
  const compare = $("#compare", view);
  const sideBySide = () => {
    paneB.hidden = !compare.checked;
    $("#panes", view).className = compare.checked ? "grid2" : "";
  };
  sideBySide();
  compare.addEventListener("change", sideBySide);
  const { data } = await api("v1/models");
  const options = data.map((m) => `<option value="${esc(m.id)}">${esc(m.id)}${
    m.parent ? ` (adapter of ${esc(m.parent)})` : ""} — ${esc(m.state)}</option>`).join("");
  for (const select of view.querySelectorAll(".model")) select.innerHTML = options;
  if (wanted) $(".model", $("#pane-a", view)).value = wanted;
  const adapter = data.find((m) => m.parent);
  if (adapter) $(".model", paneB).value = adapter.id;
  const send = $("#send", view);
  const go = async () => {
    const prompt = $("#prompt", view).value.trim();
    if (!prompt) return;
    send.disabled = true;
    const panes = [$("#pane-a", view)];
    if (compare.checked) panes.push(paneB);
    await Promise.all(panes.map((pane) => streamAnswer(pane, prompt)));
    send.disabled = false;
  };
  send.addEventListener("click", go);
  $("#prompt", view).addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) go();
  });
}

// ------------------------------------------------------------------ metrics

const METRICS = [
  ["requests_per_s", "Requests/s", (v) => v, ""],
  ["tokens_per_s", "Tokens/s", (v) => v, ""],
  ["ttft_s", "TTFT (ms)", (v) => v == null ? null : v * 1000, " ms"],
  ["kv_usage", "KV cache usage (%)", (v) => v == null ? null : v * 100, "%"],
  ["queue", "Queue: waiting, running", null, ""],
];

async function metricsView(view) {
  view.innerHTML = `<h1>Metrics</h1><p class="muted">Per model, read every few seconds from
    its replicas' <code>/metrics</code> (the names vLLM exports), the last minutes kept.</p>
    <div id="models"></div><p class="muted" id="none" hidden>No model serves yet.</p>`;
  const plots = {};
  every(POLL_MS, async () => {
    const { models } = await api("api/metrics");
    const names = Object.keys(models);
    $("#none", view).hidden = names.length > 0;
    for (const name of names) {
      const series = models[name];
      if (!plots[name]) {
        const panel = document.createElement("div");
        panel.className = "panel";
        panel.dataset.testid = "model-metrics";
        panel.dataset.model = name;
        panel.innerHTML = `<h2>${esc(name)}</h2><div class="grid3">${METRICS.map(([key, title]) =>
          `<div class="chart" data-testid="chart-${key}" data-points="0"><h3>${title}
            <span class="latest"></span></h3><div class="plot"></div></div>`).join("")}</div>`;
        $("#models", view).appendChild(panel);
        plots[name] = {};
        for (const [key, title] of METRICS) {
          const element = $(`[data-testid="chart-${key}"]`, panel);
          const lines = key === "queue" ? ["waiting", "running"] : [title];
          plots[name][key] = { element, plot: chart($(".plot", element), title, lines) };
        }
      }
      for (const [key, , scale, unit] of METRICS) {
        const { element, plot } = plots[name][key];
        let columns;
        let latest;
        if (key === "queue") {
          columns = [series.t, series.waiting, series.running];
          latest = series.t.length
            ? `${series.waiting[series.waiting.length - 1]} waiting, ${series.running[series.running.length - 1]} running` : "";
        } else {
          const values = series[key].map(scale);
          columns = [series.t, values];
          const last = values.length ? values[values.length - 1] : null;
          latest = last == null ? "–" : `${Number(last).toFixed(key === "kv_usage" ? 1 : 2)}${unit}`;
        }
        plot.setData(columns);
        element.dataset.points = String(series.t.length);
        const seen = columns.slice(1).flat().filter((v) => v != null);
        element.dataset.max = String(seen.length ? Math.max(...seen) : 0);
        $(".latest", element).textContent = latest;
      }
    }
  });
}

// ------------------------------------------------------------------ tuning

async function tuningView(view, name) {
  view.innerHTML = `<h1>Tuning: ${esc(name)}</h1>
    <div class="panel"><div class="row"><span id="state"></span>
      <span id="steps" data-testid="steps"></span><span id="last-loss" data-testid="last-loss"></span></div>
      <div class="progress" style="margin-top:8px"><div id="bar" style="width:0"></div></div></div>
    <div class="panel chart" data-testid="loss-chart" data-points="0"><h3>Loss per step</h3><div class="plot"></div></div>
    <div class="panel"><h2>Log</h2><pre data-testid="log"></pre></div>`;
  const element = $('[data-testid="loss-chart"]', view);
  const plot = chart($(".plot", element), "loss", ["loss"], { time: false, height: 220 });
  const path = `api/workspaces/${encodeURIComponent(name)}`;
  every(POLL_MS, async () => {
    const [progress, logs, list] = await Promise.all([
      api(`${path}/progress`), api(`${path}/logs?lines=200`), api("api/workspaces"),
    ]);
    const workspace = list.items.find((w) => w.name === name);
    $("#state", view).innerHTML = workspace ? stateBadge(workspace.state) : "";
    const done = progress.steps.length ? progress.steps[progress.steps.length - 1] : 0;
    $("#steps", view).textContent = progress.total
      ? `step ${done} of ${progress.total}` : "no step logged yet";
    $("#last-loss", view).textContent = progress.losses.length
      ? `loss ${progress.losses[progress.losses.length - 1].toFixed(4)}` : "";
    $("#bar", view).style.width = progress.total ? `${(100 * done / progress.total).toFixed(1)}%` : "0";
    plot.setData([progress.steps, progress.losses]);
    element.dataset.points = String(progress.steps.length);
    const log = $("pre", view);
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = logs.lines.join("\n");
    if (atEnd) log.scrollTop = log.scrollHeight;
  });
}

// ------------------------------------------------------------------ create

const EXAMPLE = `apiVersion: bosun.dev/v1alpha1
kind: Workspace
metadata:
  name: smollm2
spec:
  resource:
    cpu: "2"
    memory: 4Gi
  inference:
    preset:
      name: smollm2-135m-instruct
    maxModelLen: 8192
`;

function errorHtml(error) {
  const problems = error.problems && error.problems.length
    ? `<ul class="problems">${error.problems.map((p) =>
      `<li><code>${esc(p.path || "(document)")}</code>: ${esc(p.message)}</li>`).join("")}</ul>` : "";
  // With each problem listed, the heading is what failed ("invalid Workspace"), once.
  const head = problems ? error.message.split(":")[0] : error.message;
  return `<div class="error" data-testid="create-error"><b>${esc(head)}</b>${problems}</div>`;
}

async function createView(view) {
  const draft = sessionStorage.getItem("bosun-draft") || EXAMPLE;
  view.innerHTML = `<h1>Create a Workspace</h1><div class="grid2">
    <div class="panel"><textarea id="yaml" rows="22" spellcheck="false" data-testid="yaml">${esc(draft)}</textarea>
      <div class="row" style="margin-top:8px"><button id="plan" data-testid="plan-button">Plan</button>
      <button id="apply" class="secondary" data-testid="apply-button">Apply</button>
      <span class="muted" id="where"></span></div></div>
    <div class="panel" id="result" data-testid="create-result"><p class="muted">Plan a Workspace to see
      what it needs before you apply it.</p></div></div>`;
  const text = $("#yaml", view);
  const result = $("#result", view);
  const apply = $("#apply", view);
  apply.disabled = !info.canApply;
  $("#where", view).textContent = info.mode === "local"
    ? "Apply runs bosun up on this machine." : "Apply creates it in the cluster (as RBAC allows).";
  text.addEventListener("input", () => sessionStorage.setItem("bosun-draft", text.value));
  const run = async (button, path, render) => {
    button.disabled = true;
    result.innerHTML = `<p class="muted">${path === "api/apply" ? "applying (the model loads)…" : "planning…"}</p>`;
    try {
      result.innerHTML = render(await api(path, { yaml: text.value }));
    } catch (error) {
      result.innerHTML = errorHtml(error);
    } finally {
      button.disabled = path === "api/apply" ? !info.canApply : false;
    }
  };
  $("#plan", view).addEventListener("click", (e) => run(e.target, "api/plan", planHtml));
  apply.addEventListener("click", (e) => run(e.target, "api/apply", (done) =>
    `<p data-testid="applied"><b>${esc(done.name)}</b> applied: <a href="#/workspaces">see it</a></p><pre>${esc(done.output)}</pre>`));
}

// ------------------------------------------------------------------ router

const VIEWS = {
  workspaces: workspacesView, plan: planView, playground: playgroundView,
  metrics: metricsView, tuning: tuningView, create: createView,
};

async function route() {
  leaveView();
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "workspaces").split("/");
  const view = VIEWS[name] ? name : "workspaces";
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
  const element = $("#view");
  element.dataset.view = view;
  try {
    if (!info) {
      info = await api("api/info");
      $("#mode").textContent = info.mode === "local" ? "this machine" : "cluster";
    }
    await VIEWS[view](element, rest.length ? decodeURIComponent(rest.join("/")) : undefined);
  } catch (error) {
    banner(error.message);
  }
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("#key").value.trim();
  sessionStorage.setItem("bosun-api-key", apiKey);
  $("#key-form").hidden = true;
  info = null;
  route();
});
window.addEventListener("hashchange", route);
route();
