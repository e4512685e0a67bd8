// The /live page: camera and microphone -> the /stream WebSocket -> the running estimate.
// Protocol: app/stream/protocol.py (docs/stream-protocol.json). Nothing is stored: the key,
// the media and the answers live in this page's memory until it is closed.
"use strict";

const AUDIO_FRAME = 0x01;
const VIDEO_FRAME = 0x02;
const JPEG_QUALITY = 0.8;
// video frames wait while this much is still unsent: a slow link drops pictures, never sound
const MAX_BUFFERED_BYTES = 4 << 20;
const MODALITIES = ["visual", "audio", "text"];
const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 600, height: 200, left: 30, right: 10, top: 10, bottom: 22, maxTotal: 24 };

const $ = (id) => document.getElementById(id);

class LiveSession {
  constructor() {
    this.socket = null;
    this.media = null;
    this.audioContext = null;
    this.videoTimer = null;
    this.clockTimer = null;
    this.startedAt = 0;
    this.lastVideoTime = -1;
    this.encoding = false;
    this.framesSent = 0;
    this.audioSamples = 0;
    this.estimates = []; // {t, total, low, high}
    this.windows = []; // {t, total}
    this.ended = false;
  }

  async start() {
    const withVideo = $("use-video").checked;
    setStatus("Asking for the microphone" + (withVideo ? " and the camera" : "") + "...");
    this.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false },
      video: withVideo ? { width: 640, height: 480 } : false,
    });
    if (withVideo) {
      $("camera").srcObject = this.media;
      await $("camera").play();
    }
    const config = { type: "config", audio: {}, captions: false };
    if (withVideo) config.video = {};
    const key = $("api-key").value.trim();
    if (key) config.api_key = key; // browsers cannot set headers on a WebSocket
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.socket = new WebSocket(`${scheme}//${location.host}/stream`);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => this.socket.send(JSON.stringify(config));
    this.socket.onmessage = (event) => this.receive(JSON.parse(event.data));
    this.socket.onclose = (event) => this.closed(event);
    this.socket.onerror = () => setStatus("The connection to the service failed.");
    setStatus("Connecting...");
  }

  async capture(limits) {
    this.startedAt = performance.now();
    await this.startAudio();
    if (this.media.getVideoTracks().length) {
      const fps = Math.min(Number($("fps").value), limits.max_fps || 30);
      this.videoTimer = setInterval(() => this.sendPicture(), 1000 / fps);
    }
    this.clockTimer = setInterval(() => {
      $("stream-time").textContent = this.streamTime().toFixed(1);
      $("frames-sent").textContent = String(this.framesSent);
      $("audio-sent").textContent = (this.audioSamples / 16000).toFixed(1);
    }, 250);
    $("stop").disabled = false;
    setStatus("Live: the estimate updates every 10 s of stream time.");
  }

  async startAudio() {
    try {
      this.audioContext = new AudioContext({ sampleRate: 16000 });
    } catch (error) {
      this.audioContext = new AudioContext(); // the worklet resamples
    }
    await this.audioContext.audioWorklet.addModule("/live-assets/pcm-worklet.js");
    const source = this.audioContext.createMediaStreamSource(this.media);
    const blocks = new AudioWorkletNode(this.audioContext, "pcm-blocks");
    const mute = this.audioContext.createGain();
    mute.gain.value = 0; // pulled by the destination so it runs, but never heard
    source.connect(blocks).connect(mute).connect(this.audioContext.destination);
    blocks.port.onmessage = (event) => {
      if (!this.open()) return;
      const pcm = new Uint8Array(event.data);
      const frame = new Uint8Array(1 + pcm.length);
      frame[0] = AUDIO_FRAME;
      frame.set(pcm, 1);
      this.socket.send(frame);
      this.audioSamples += pcm.length / 2;
    };
    await this.audioContext.resume();
  }

  sendPicture() {
    const video = $("camera");
    if (!this.open() || this.encoding || !video.videoWidth) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) return;
    const time = this.streamTime();
    if (time <= this.lastVideoTime) return;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    this.encoding = true; // one picture at a time keeps the timestamps in order
    canvas.toBlob(
      async (blob) => {
        try {
          if (!blob || !this.open()) return;
          const jpeg = new Uint8Array(await blob.arrayBuffer());
          const frame = new Uint8Array(9 + jpeg.length);
          frame[0] = VIDEO_FRAME;
          new DataView(frame.buffer).setFloat64(1, time, true);
          frame.set(jpeg, 9);
          this.socket.send(frame);
          this.lastVideoTime = time;
          this.framesSent += 1;
        } finally {
          this.encoding = false;
        }
      },
      "image/jpeg",
      JPEG_QUALITY,
    );
  }

  stop() {
    $("stop").disabled = true;
    this.release();
    if (this.open()) {
      this.socket.send(JSON.stringify({ type: "end" }));
      setStatus("Analysing the whole session for the final answer...");
    }
  }

  release() {
    clearInterval(this.videoTimer);
    clearInterval(this.clockTimer);
    if (this.media) this.media.getTracks().forEach((track) => track.stop());
    if (this.audioContext) this.audioContext.close();
    this.media = null;
    this.audioContext = null;
  }

  open() {
    return this.socket && this.socket.readyState === WebSocket.OPEN && !this.ended;
  }

  streamTime() {
    return (performance.now() - this.startedAt) / 1000;
  }

  receive(message) {
    switch (message.type) {
      case "ready":
        $("status").dataset.session = message.session;
        this.capture(message.limits).catch((error) => this.fail(error));
        break;
      case "estimate":
        showEstimate(message);
        if (message.total !== null && message.total !== undefined) {
          this.estimates.push({
            t: message.stream_s,
            total: message.total,
            low: message.interval.low,
            high: message.interval.high,
          });
        }
        drawTimeline(this.estimates, this.windows, this.streamTime());
        break;
      case "window":
        this.windows.push({ t: message.end_s, total: message.total });
        drawTimeline(this.estimates, this.windows, this.streamTime());
        break;
      case "warning":
        addItem($("warnings"), `${this.streamTime().toFixed(0)} s: ${message.message}`);
        break;
      case "final":
        this.ended = true;
        showFinal(message.answer);
        setStatus("Done: the final answer is below.");
        break;
      case "error":
        this.ended = true;
        showProblem(message.problem);
        break;
    }
  }

  closed(event) {
    this.release();
    $("start").disabled = false;
    $("stop").disabled = true;
    $("status").dataset.closeCode = String(event.code);
    if (!this.ended) setStatus(`The session closed (code ${event.code}) before its final answer.`);
  }

  fail(error) {
    this.release();
    if (this.socket) this.socket.close();
    $("start").disabled = false;
    $("stop").disabled = true;
    setStatus(`Could not start: ${error.name || "error"}. Camera and microphone must be allowed.`);
  }
}

function setStatus(text) {
  $("status").textContent = text;
}

function addItem(list, text) {
  const item = document.createElement("li");
  item.textContent = text; // answers are text, never markup
  list.appendChild(item);
}

function fixed(value, digits) {
  return value === null || value === undefined ? "\u2013" : Number(value).toFixed(digits);
}

function levelLabel(interval) {
  return `${Math.round(100 * interval.level)} % interval`;
}

function showEstimate(message) {
  $("estimate-time").textContent = fixed(message.stream_s, 0);
  $("estimate-reason").textContent = message.reason || "";
  const states = $("modality-states");
  states.replaceChildren();
  for (const name of MODALITIES) {
    const state = message.modalities[name];
    if (state) addItem(states, `${name}: ${state.used ? "used" : state.reason || "not used"}`);
  }
  if (message.total === null || message.total === undefined) return;
  $("estimate-total").textContent = fixed(message.total, 1);
  $("estimate-severity").textContent = message.severity;
  $("estimate-level").textContent = levelLabel(message.interval);
  $("estimate-interval").textContent = `${fixed(message.interval.low, 1)} to ${fixed(message.interval.high, 1)}`;
  $("estimate-cutoff").textContent = fixed(message.probability_at_or_above_cutoff, 2);
  showWeights(message.weights);
}

function showWeights(weights) {
  const box = $("weights");
  box.replaceChildren();
  for (const name of MODALITIES) {
    const weight = weights[name] || 0;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.dataset.modality = name;
    bar.dataset.weight = String(weight);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = `${(100 * weight).toFixed(1)}%`;
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = weight.toFixed(2);
    bar.append(label, track, value);
    box.appendChild(bar);
  }
}

function svg(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function drawTimeline(estimates, windows, now) {
  const chart = $("timeline");
  chart.replaceChildren();
  const span = Math.max(60, now, ...estimates.map((e) => e.t));
  const x = (t) => CHART.left + ((CHART.width - CHART.left - CHART.right) * t) / span;
  const y = (total) =>
    CHART.top + (CHART.height - CHART.top - CHART.bottom) * (1 - Math.min(total, CHART.maxTotal) / CHART.maxTotal);
  for (const total of [0, 5, 10, 15, 20, 24]) {
    chart.appendChild(svg("line", { class: "grid", x1: CHART.left, x2: CHART.width - CHART.right, y1: y(total), y2: y(total) }));
    const label = svg("text", { class: "label", x: 4, y: y(total) + 3 });
    label.textContent = String(total);
    chart.appendChild(label);
  }
  const axis = svg("text", { class: "label", x: CHART.width - CHART.right, y: CHART.height - 6, "text-anchor": "end" });
  axis.textContent = `${span.toFixed(0)} s`;
  chart.appendChild(axis);
  if (estimates.length) {
    const upper = estimates.map((e) => `${x(e.t)},${y(e.high)}`);
    const lower = estimates.map((e) => `${x(e.t)},${y(e.low)}`).reverse();
    chart.appendChild(svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }));
    chart.appendChild(svg("polyline", { class: "line", points: estimates.map((e) => `${x(e.t)},${y(e.total)}`).join(" ") }));
    for (const e of estimates) chart.appendChild(svg("circle", { class: "estimate", cx: x(e.t), cy: y(e.total), r: 2.5 }));
  }
  for (const w of windows) chart.appendChild(svg("circle", { class: "window", cx: x(w.t), cy: y(w.total), r: 3.5 }));
}

function showFinal(answer) {
  const phq8 = answer.phq8;
  $("final-total").textContent = fixed(phq8.total, 1);
  $("final-severity").textContent = phq8.severity;
  $("final-level").textContent = levelLabel(phq8.interval);
  $("final-interval").textContent = `${fixed(phq8.interval.low, 1)} to ${fixed(phq8.interval.high, 1)}`;
  $("final-cutoff").textContent = fixed(phq8.probability_at_or_above_cutoff, 2);
  $("final-notice").textContent = answer.notice || "";
  const inputs = $("final-inputs");
  inputs.replaceChildren();
  for (const name of MODALITIES) {
    const report = answer.inputs[name];
    addItem(inputs, `${name}: ${report.used ? "used" : report.reason || "not used"}`);
  }
  showWeights(answer.attention.modalities);
  $("final-json").textContent = JSON.stringify(answer, null, 2);
  $("final").hidden = false;
}

function showProblem(problem) {
  $("problem-text").textContent = `${problem.title}: ${problem.detail || ""} (${problem.status})`;
  $("problem").hidden = false;
  setStatus("The session ended with an error.");
}

let session = null;
window.addEventListener("DOMContentLoaded", () => {
  $("start").addEventListener("click", () => {
    $("start").disabled = true;
    $("final").hidden = true;
    $("problem").hidden = true;
    $("warnings").replaceChildren();
    session = new LiveSession();
    session.start().catch((error) => session.fail(error));
  });
  $("stop").addEventListener("click", () => session && session.stop());
  drawTimeline([], [], 0);
});
