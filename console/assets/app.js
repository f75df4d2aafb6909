// scraft console: the cluster view and one channel's view, kept live by
// two EventSource streams. What the page draws on the canvas it also
// writes into the DOM (data attributes), so that it can be read back.
"use strict";

const BLOCKS = {
  0: ["air", "#000000"], 1: ["bedrock", "#3a3a3a"], 2: ["stone", "#8c8c8c"], 3: ["dirt", "#8b5a2b"],
  4: ["grass", "#4caf50"], 5: ["sand", "#e3d28a"], 6: ["wood", "#a0522d"],
  8: ["wheat 0", "#9acd32"], 9: ["wheat 1", "#b5c934"], 10: ["wheat 2", "#d4c23a"], 11: ["wheat", "#f0c040"],
};
const SCALE = 5;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const short = (a) => (a ? a.slice(0, 10) + "…" : "—");

const state = { node: "", selected: "", channelES: null, world: null, cluster: null, names: {} };

// ---- cluster view -------------------------------------------------------

function drawCluster(view) {
  state.cluster = view;
  state.node = view.node;
  $("node").textContent = "node " + short(view.node);
  $("node").dataset.node = view.node;
  const box = $("channels");
  box.replaceChildren();
  $("cluster").dataset.channels = view.channels.length;
  for (const c of view.channels) {
    const card = el("div", {
      class: "card" + (c.channel === state.selected ? " selected" : ""),
      "data-channel": c.channel, "data-leader": c.leader, "data-epoch": c.epoch, "data-height": c.height,
      "data-settled-height": c.settled_height, "data-raft-state": c.raft_state, "data-ready": c.ready,
      "data-store-error": c.store_error || "",
    });
    card.append(el("div", { class: "addr" }, c.channel));
    const stats = el("div", { class: "stats" });
    const stat = (k, v) => { const s = el("span", {}, k + " "); s.append(el("b", {}, String(v))); stats.append(s); };
    stat("leader", nameOf(c.leader));
    stat("epoch", c.epoch);
    stat("height", c.height);
    stat("settled", c.settled_height);
    stat("heights/s", c.commit_rate.toFixed(1));
    if (c.commit_latency_ms >= 0) stat("commit", c.commit_latency_ms.toFixed(1) + " ms");
    stat("raft", c.raft_state);
    stat("lag", c.lag);
    stat("voters", c.voters + (c.non_voters ? "+" + c.non_voters : ""));
    if (c.evidence) stat("evidence", c.evidence);
    if (c.holding) stat("holding", "yes");
    if (c.diverged) stat("diverged", "yes");
    if (c.retired) stat("retired", c.retired);
    if (c.store_error) stat("cannot write its log", c.store_error);
    card.append(stats);
    const t = el("table");
    t.append(el("tr", {}, ""));
    t.firstChild.append(el("th", {}, "member"), el("th", {}, "role"), el("th", {}, "lag"), el("th", {}, "heartbeat"));
    for (const m of c.members) {
      const tr = el("tr", { "data-address": m.address, "data-role": m.role, "data-self": m.self, "data-online": m.online,
        "data-delegated-to": m.delegated_to || "" });
      let role = m.role;
      if (m.delegated_to) role += " → " + nameOf(m.delegated_to);
      if (m.delegators) role += " (" + m.delegators + (m.delegators === 1 ? " delegator)" : " delegators)");
      tr.append(el("td", { class: "addr" }, nameOf(m.address) + (m.self ? " (this node)" : "")),
        el("td", { class: "role" }, role),
        el("td", {}, m.lag < 0 ? (m.online ? "—" : "offline") : String(m.lag)),
        el("td", { class: m.valid ? "" : "lapsed" }, m.heartbeat_age_ms < 0 ? "—" : (m.heartbeat_age_ms / 1000).toFixed(1) + " s ago"));
      t.append(tr);
    }
    card.append(t);
    if (c.proposals && c.proposals.length) {
      const pl = el("ul", { class: "proposals" });
      for (const p of c.proposals) {
        const votes = p.votes.map((v) => nameOf(v.voter) + " " + v.option).join(", ");
        let text = `#${p.id} ${p.kind}` + (p.target ? " of " + nameOf(p.target) : "") + (p.height ? " at " + p.height : "") +
          ` — ${p.state}, ${p.for} for / ${p.against} against` + (p.voters ? ` (needs ${p.needed} of ${p.voters})` : "");
        if (votes) text += ": " + votes;
        pl.append(el("li", { "data-id": p.id, "data-kind": p.kind, "data-state": p.state }, text));
      }
      card.append(el("h4", {}, "open proposals"), pl);
    }
    if (c.bans && c.bans.length) {
      const bl = el("ul", { class: "bans" });
      for (const b of c.bans) {
        bl.append(el("li", { "data-address": b.address, "data-until-ms": b.until_ms },
          `${nameOf(b.address)} banned until ${new Date(b.until_ms).toLocaleTimeString()} (proposal #${b.proposal})`));
      }
      card.append(el("h4", {}, "bans"), bl);
    }
    card.addEventListener("click", () => selectChannel(c.channel));
    box.append(card);
  }
  if (!state.selected && view.channels.length > 0) selectChannel(view.channels[0].channel);
}

function nameOf(addr) {
  return state.names[addr] ? state.names[addr] + " " + short(addr) : short(addr);
}

function addEvent(e) {
  const li = el("li", { "data-kind": e.kind, "data-channel": e.channel, "data-leader": e.leader, "data-epoch": e.epoch });
  const at = new Date(e.at_ms).toLocaleTimeString();
  let text = `${at} ${e.kind} ${short(e.channel)} `;
  switch (e.kind) {
    case "leader": text += `leader ${nameOf(e.leader)} epoch ${e.epoch}`; break;
    case "settled": text += `settled to height ${e.settled_height}`; break;
    case "evidence": text += `${e.evidence} leader faults recorded`; break;
    case "raft": text += e.detail; break;
    default: text += `height ${e.height}` + (e.detail ? " " + e.detail : "");
  }
  li.textContent = text;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > 100) list.lastChild.remove();
}

function connectCluster() {
  const es = new EventSource("/console/events");
  es.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").dataset.state = "open"; });
  es.addEventListener("error", () => { $("conn").textContent = "reconnecting"; $("conn").dataset.state = "error"; });
  es.addEventListener("reset", () => $("events").replaceChildren());
  es.addEventListener("cluster", (m) => drawCluster(JSON.parse(m.data)));
  es.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
}

// ---- channel view -------------------------------------------------------

function selectChannel(id) {
  if (state.selected === id) return;
  state.selected = id;
  for (const c of document.querySelectorAll("#channels .card")) c.classList.toggle("selected", c.dataset.channel === id);
  if (state.channelES) state.channelES.close();
  state.world = null;
  $("channel").dataset.channel = id;
  $("channel-id").textContent = short(id);
  const es = new EventSource("/console/channels/" + id + "/events");
  state.channelES = es;
  es.addEventListener("error", () => {
    // A stream the node refused (a channel it no longer hosts) is not
    // retried by the browser: try again later while it is selected.
    if (es.readyState === EventSource.CLOSED && state.channelES === es) {
      setTimeout(() => { if (state.channelES === es) { state.selected = ""; selectChannel(id); } }, 5000);
    }
  });
  es.addEventListener("snapshot", (m) => drawSnapshot(JSON.parse(m.data)));
  es.addEventListener("update", (m) => drawUpdate(JSON.parse(m.data)));
}

function setHeight(h, digest) {
  $("channel").dataset.height = h;
  $("channel-height").textContent = h;
  $("channel-digest").textContent = digest ? digest.slice(0, 18) + "…" : "";
}

function showView(contract) {
  $("channel").dataset.contract = contract;
  $("channel-contract").textContent = contract;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + contract;
}

function drawSnapshot(s) {
  showView(s.contract);
  setHeight(s.height, s.digest);
  switch (s.contract) {
    case "movecraft": worldSnapshot(s.view); break;
    case "chat": drawChat(s.view); break;
    case "editor": drawEditor(s.view); break;
    default: drawGeneric(s.view);
  }
}

function drawUpdate(u) {
  setHeight(u.height, u.digest);
  switch ($("channel").dataset.contract) {
    case "movecraft": worldUpdate(u.view); break;
    case "chat": drawChat(u.view); break;
    case "editor": drawEditor(u.view); break;
    default: drawGeneric(u.view);
  }
}

// MoveCraft: the top block of each cell, shaded by its height; players on
// top, by name.
function b64(s) {
  const bin = atob(s || "");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function shade(hex, z, sizeZ) {
  const f = 0.45 + 0.55 * Math.min(1, z / (sizeZ / 2));
  const n = parseInt(hex.slice(1), 16);
  const c = (v) => Math.round(v * f);
  return `rgb(${c(n >> 16)},${c((n >> 8) & 255)},${c(n & 255)})`;
}

function worldSnapshot(v) {
  state.world = { sx: v.size_x, sy: v.size_y, sz: v.size_z, top: b64(v.top), z: b64(v.z), players: v.players, updates: 0 };
  const c = $("world");
  c.width = v.size_x * SCALE;
  c.height = v.size_y * SCALE;
  if (!c.dataset.bound) {
    c.dataset.bound = "1";
    c.addEventListener("click", onWorldClick);
  }
  drawWorld();
  legend();
}

function worldUpdate(u) {
  const w = state.world;
  if (!w) return;
  for (const cell of u.cells) {
    const i = cell.y * w.sx + cell.x;
    w.top[i] = cell.block;
    w.z[i] = cell.z;
  }
  w.players = u.players;
  w.updates++;
  $("world").dataset.lastCells = JSON.stringify(u.cells.slice(0, 50));
  for (const b of u.blocks) {
    const li = el("li", { "data-kind": b.kind, "data-x": b.x, "data-y": b.y, "data-z": b.z, "data-block": b.block },
      `${b.name || short(b.player)} ${b.kind} ${(BLOCKS[b.block] || ["block " + b.block])[0]} at ${b.x},${b.y},${b.z}`);
    $("blocks").prepend(li);
  }
  while ($("blocks").children.length > 30) $("blocks").lastChild.remove();
  drawWorld();
  const col = $("column");
  if (col.dataset.x !== "" && u.cells.some((c) => String(c.x) === col.dataset.x && String(c.y) === col.dataset.y)) {
    loadColumn(+col.dataset.x, +col.dataset.y);
  }
}

function drawWorld() {
  const w = state.world;
  const c = $("world");
  const g = c.getContext("2d");
  let solid = 0;
  for (let y = 0; y < w.sy; y++) {
    for (let x = 0; x < w.sx; x++) {
      const i = y * w.sx + x;
      const b = w.top[i];
      if (b !== 0) solid++;
      g.fillStyle = shade((BLOCKS[b] || ["", "#ff00ff"])[1], w.z[i], w.sz);
      g.fillRect(x * SCALE, y * SCALE, SCALE, SCALE);
    }
  }
  g.font = "bold 11px system-ui, sans-serif";
  const list = $("players");
  list.replaceChildren();
  for (const p of w.players) {
    state.names[p.address] = p.name;
    g.fillStyle = "#ff3b3b";
    g.beginPath();
    g.arc(p.x * SCALE + SCALE / 2, p.y * SCALE + SCALE / 2, SCALE * 0.9, 0, 2 * Math.PI);
    g.fill();
    g.strokeStyle = "#000";
    g.lineWidth = 3;
    g.strokeText(p.name || short(p.address), p.x * SCALE + 7, p.y * SCALE - 3);
    g.fillStyle = "#fff";
    g.fillText(p.name || short(p.address), p.x * SCALE + 7, p.y * SCALE - 3);
    list.append(el("li", { "data-address": p.address, "data-name": p.name, "data-x": p.x, "data-y": p.y, "data-z": p.z },
      `${p.name || short(p.address)} at ${p.x},${p.y},${p.z}`));
  }
  c.dataset.cells = solid;
  c.dataset.updates = w.updates;
  c.dataset.players = w.players.length;
}

function legend() {
  const l = $("legend");
  l.replaceChildren();
  for (const [id, [name, color]] of Object.entries(BLOCKS)) {
    if (id === "0") continue;
    const s = el("span");
    const i = el("i");
    i.style.background = color;
    s.append(i, document.createTextNode(name));
    l.append(s);
  }
}

function onWorldClick(ev) {
  const c = $("world");
  const r = c.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - r.left) * (c.width / r.width)) / SCALE);
  const y = Math.floor(((ev.clientY - r.top) * (c.height / r.height)) / SCALE);
  loadColumn(x, y);
}

async function loadColumn(x, y) {
  const res = await fetch(`/console/api/channels/${state.selected}/column?x=${x}&y=${y}`);
  if (!res.ok) return;
  const col = await res.json();
  const list = $("column");
  list.dataset.x = x;
  list.dataset.y = y;
  $("column-at").textContent = `${x},${y} at height ${col.height}`;
  list.replaceChildren();
  for (let z = col.blocks.length - 1; z >= 0; z--) {
    const b = col.blocks[z];
    if (b === 0 && list.children.length === 0) continue; // air above the top
    list.append(el("li", { "data-z": z, "data-block": b }, `z ${z}: ${(BLOCKS[b] || ["block " + b])[0]}`));
  }
}

// Chat, editor and the generic view are redrawn whole on each update.
function drawChat(v) {
  const list = $("messages");
  list.replaceChildren();
  for (const m of v.messages || []) {
    const li = el("li", { "data-id": m.id, "data-sender": m.sender, "data-height": m.height });
    li.append(el("span", { class: "nick" }, (v.nicks && v.nicks[m.sender]) || short(m.sender)), document.createTextNode(m.text));
    list.append(li);
  }
}

function drawEditor(v) {
  const box = $("documents");
  box.replaceChildren();
  for (const d of v.documents || []) {
    const div = el("div", { class: "doc", "data-doc": d.document.id });
    div.append(el("h3", {}, `${d.document.title} (#${d.document.id}, by ${short(d.document.owner)})`));
    const ol = el("ol");
    for (const e of d.elements) {
      ol.append(el("li", { "data-element": e.id, "data-version": e.version }, `[${e.kind}] ${e.data} (v${e.version})`));
    }
    div.append(ol);
    box.append(div);
  }
}

function drawGeneric(v) {
  const body = $("resources");
  body.replaceChildren();
  for (const r of v.resources || []) {
    const tr = el("tr", { "data-account": r.account, "data-type": r.type });
    tr.append(el("td", { class: "addr" }, short(r.account)), el("td", {}, r.type),
      el("td", { class: "addr" }, r.value !== undefined ? JSON.stringify(r.value) : "0x" + r.hex + (r.size > 256 ? "…" : "")));
    body.append(tr);
  }
}

connectCluster();
