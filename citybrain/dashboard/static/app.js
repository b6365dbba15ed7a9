// citybrain dashboard: city view (no scope) and community view (data-scope = community URN).
(function () {
  "use strict";
  const scope = document.body.dataset.scope || "";
  const q = (params) => { const u = new URLSearchParams(params); if (scope) u.set("within", scope); return u.toString(); };
  const COLORS = { none: "#2e8b57", blue: "#2f7bff", yellow: "#ffd400", orange: "#ff8c1a", red: "#ff3b3b" };
  const ALPHA = { none: 0.32, blue: 0.55, yellow: 0.62, orange: 0.68, red: 0.75 };
  const RANK = { none: 0, blue: 1, yellow: 2, orange: 3, red: 4 };
  const SENSOR_COLORS = { AirQualityObserved: "#62e0ff", WeatherObserved: "#f4f7ff", TrafficFlowObserved: "#ffb3f0" };
  const RESOURCE_COLORS = { vehicle: "#c48bff", team: "#ff9ef2", shelter: "#7dffb0", supply: "#ffe27a" };
  const BOARD = ["intake", "filed", "dispatched", "handling", "feedback", "verified", "closed", "evaluated", "suspended"];
  const QNAMES = { zh: { pm25: "PM2.5", pm10: "PM10", no2: "NO₂", so2: "SO₂", co: "CO", o3: "O₃", temperature: "气温",
    precipitation: "降水量", windSpeed: "风速", windDirection: "风向", dewPoint: "露点", atmosphericPressure: "气压", intensity: "车流量" },
  en: { pm25: "PM2.5", pm10: "PM10", no2: "NO₂", so2: "SO₂", co: "CO", o3: "O₃", temperature: "Temperature",
    precipitation: "Precipitation", windSpeed: "Wind speed", windDirection: "Wind direction", dewPoint: "Dew point",
    atmosphericPressure: "Pressure", intensity: "Traffic flow" } };
  const PLACE_QUANTITIES = ["pm25", "pm10", "no2", "so2", "co", "o3", "precipitation", "temperature", "windSpeed", "intensity"];
  const qname = (a) => (QNAMES[lang] || QNAMES.zh)[a] || a;
  const state = { risk: {}, alerts: [], sensors: [], chart: null, summary: {}, features: {}, board: null, catalog: {},
    layers: {}, trend: null, clockOffset: 0, modes: [] };

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const el = document.createElement("script"); el.src = src; el.onload = resolve; el.onerror = reject;
      document.head.appendChild(el);
    });
  }

  async function getJSON(url, opts) {
    const r = await fetch(url, opts);
    if (!r.ok) throw new Error(url + " → " + r.status);
    return r.json();
  }

  async function postJSON(url, body) {
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const out = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, body: out };
  }

  function debounce(fn, ms) { let h = null; return () => { clearTimeout(h); h = setTimeout(fn, ms); }; }

  // ---- names -----------------------------------------------------------------------------------
  const shortId = (id) => String(id || "").replace(/^urn:ngsi-ld:[A-Za-z]+:/, "");
  function nameOf(id) {
    const f = state.features[id];
    if (!f) return shortId(id);
    const p = f.properties || {};
    return (lang === "zh" ? p.nameZh || p.name : p.name || p.nameZh) || shortId(id);
  }
  const withNames = (text) => String(text || "").replace(/urn:ngsi-ld:[A-Za-z]+:[\w.-]+/g, (m) => nameOf(m));
  function bilingual(text) {
    // rule names are written "中文 English": show the half for the chosen language
    const s = String(text || "").trim();
    const m = s.match(/^(\S*[\u3400-\u9fff]\S*)\s+(.+)$/);
    if (!m) return s;
    return lang === "zh" ? m[1] : m[2];
  }
  const caseTitle = (c) => (c.title && !/^[a-z]+(\.[a-z-]+)+$/.test(c.title) ? c.title : categoryName(c.category) || c.title || c.id);
  function categoryName(code) {
    const c = state.catalog[code];
    return c ? (lang === "zh" ? c.zh : c.en) : (code || "");
  }

  // ---- map -----------------------------------------------------------------------------------
  const map = L.map("map", { preferCanvas: true, zoomControl: true, attributionControl: false, zoomSnap: 0.25,
    zoomDelta: 0.5, wheelPxPerZoomLevel: 90 });
  L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);
  new L.GraticuleLayer().addTo(map);
  // fixed stacking whatever is toggled: cells, then outlines, then sensors, resources and cases on top
  [["cbCells", 405], ["cbBounds", 410], ["cbSensors", 415], ["cbResources", 420], ["cbCases", 425]].forEach(([n, z]) => {
    map.createPane(n).style.zIndex = String(z); map.getPane(n).style.pointerEvents = "none";
  });
  const note = L.control({ position: "bottomright" });
  note.onAdd = () => { const d = L.DomUtil.create("div", "map-note"); d.id = "map-note"; return d; };
  note.addTo(map);
  const legendBox = L.control({ position: "bottomleft" });
  legendBox.onAdd = () => { const d = L.DomUtil.create("div", "legend map-legend"); d.id = "legend"; return d; };
  legendBox.addTo(map);

  function legend() {
    document.getElementById("legend").innerHTML = ["none", "blue", "yellow", "orange", "red"]
      .map((k) => `<span><i style="background:${COLORS[k]}"></i>${t(k)}</span>`).join("") + `<b>${t("riskOf")}</b>`;
  }

  const levelOf = (id) => state.risk[id] || "none";
  const colorOf = (id) => COLORS[levelOf(id)] || COLORS.none;
  const alphaOf = (id) => ALPHA[levelOf(id)] || ALPHA.none;

  function mapNote() {
    const cells = state.layers.cells ? state.layers.cells.cells.length : 0;
    const atRisk = state.layers.cells ? state.layers.cells.cells.filter((c) => levelOf(c.id) !== "none").length : 0;
    document.getElementById("map-note").textContent = `${fmtNum(cells)} ${t("cells")} · ${fmtNum(atRisk)} ${t("atRisk")} · ` +
      `${fmtNum(state.sensors.length)} ${t("sensors")}`;
  }

  async function loadMap() {
    const levels = scope ? ["Community", "Grid"] : ["District", "Community", "Grid"];
    const [sensors, ...fcs] = await Promise.all([getJSON("/api/v1/map/sensors?" + q({})),
      ...levels.map((level) => getJSON("/api/v1/map/places?" + q({ level })))]);
    const by = {};
    levels.forEach((level, i) => { by[level] = fcs[i].features; for (const f of fcs[i].features) state.features[f.id] = f; });
    const grid = by.Grid;
    const communities = by.Community.filter((f) => !scope || f.id === scope || f.properties.parent === scope);
    state.layers.cells = new L.CellsLayer(grid, colorOf, alphaOf); L.setOptions(state.layers.cells, { pane: "cbCells" });
    state.layers.cells.haloOf = (id) => (RANK[levelOf(id)] >= 1 ? colorOf(id) : null);
    state.layers.cells.rankOf = (id) => RANK[levelOf(id)] || 0;
    const bounds = state.layers.cells.bounds();
    if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [14, 14] }); else map.setView([39.9, 116.4], 10);
    state.layers.cells.addTo(map);
    const label = (f) => { const p = f.properties; return (lang === "zh" ? p.nameZh || p.name : p.name || p.nameZh) || shortId(f.id); };
    state.layers.communities = new L.OutlineLayer(communities, { color: "#9fc3ff", weight: 1.1, labelZoom: scope ? 0 : 12.5, pane: "cbBounds",
      font: "500 12px system-ui, sans-serif", labelOf: label, styleOf: modeStyle });
    state.layers.districts = new L.OutlineLayer(by.District || [], { color: "#ffffff", weight: 2.4, labelZoom: 0, labelMaxZoom: 12.25, pane: "cbBounds",
      font: "700 13px system-ui, sans-serif", labelOf: label, styleOf: modeStyle, labelAt: "top", pill: "rgba(8,16,32,0.85)" });
    state.layers.communities.addTo(map); state.layers.districts.addTo(map);
    document.getElementById("map").dataset.cells = String(grid.length);
    state.sensors = sensors.features;
    state.layers.sensors = new L.PointsLayer(sensors.features, (p) => ({ color: SENSOR_COLORS[p.props.type] || "#62e0ff", r: 2.8 }));
    L.setOptions(state.layers.sensors, { pane: "cbSensors" }); state.layers.sensors.addTo(map);
    mapNote();
  }

  function modeStyle(a) {
    const m = state.modes.find((x) => x.area === a.id);
    if (!m || m.mode === "normal") return null;
    const color = m.mode === "emergency" ? "#ff3b3b" : m.mode === "watch" ? "#ffd400" : "#5cc0ff";
    return { color, weight: 3, dash: [6, 4], fill: color, fillOpacity: 0.08 };
  }

  async function loadCaseLayer() {
    try {
      const fc = await getJSON("/api/v1/map/cases?" + q({}));
      const old = state.layers.cases; const on = document.getElementById("lyr-cases").checked;
      if (old) map.removeLayer(old);
      state.layers.cases = new L.PointsLayer(fc.features, (p) => ({ color: p.props.overdue ? "#ff3b3b" : "#ff8c1a", shape: "diamond", r: 4.5,
        stroke: "#08101f", lineWidth: 1.5 }));
      L.setOptions(state.layers.cases, { pane: "cbCases" });
      if (on) state.layers.cases.addTo(map);
      document.getElementById("map").dataset.cases = String(fc.features.length);
    } catch (e) { /* cases not running on this node */ }
  }

  async function loadResourceLayer() {
    try {
      const fc = await getJSON("/api/v1/map/resources?" + q({}));
      state.layers.resources = new L.PointsLayer(fc.features, (p) => ({ color: p.props.units > 0 ? (RESOURCE_COLORS[p.props.type] || "#c48bff") : "#6d7890",
        shape: "square", r: 3.6 }));
      L.setOptions(state.layers.resources, { pane: "cbResources" });
      if (document.getElementById("lyr-resources").checked) state.layers.resources.addTo(map);
      document.getElementById("map").dataset.resources = String(fc.features.length);
    } catch (e) { /* dispatch not running on this node */ }
  }

  const TOGGLES = { "lyr-cells": ["cells"], "lyr-bounds": ["communities", "districts"], "lyr-sensors": ["sensors"],
    "lyr-cases": ["cases"], "lyr-resources": ["resources"] };
  for (const [id, names] of Object.entries(TOGGLES)) {
    document.getElementById(id).addEventListener("change", (ev) => {
      for (const n of names) {
        const layer = state.layers[n];
        if (!layer) continue;
        if (ev.target.checked) layer.addTo(map); else map.removeLayer(layer);
      }
    });
  }

  map.on("click", async (ev) => {
    const pick = (name) => { const l = state.layers[name]; return l && l.visible() ? l.nearest(ev.latlng, 9) : null; };
    const c = pick("cases"); if (c) return casePopup(c);
    const r = pick("resources"); if (r) return resourcePopup(r);
    const s = pick("sensors"); if (s) return sensorPopup(s);
    const cell = state.layers.cells && state.layers.cells.at(ev.latlng);
    if (cell) { state.layers.cells.highlight = cell.id; state.layers.cells.redraw(); cellPopup(cell, ev.latlng); }
  });

  function popup(latlng, html) {
    const div = document.createElement("div"); div.innerHTML = html;
    L.popup({ maxWidth: 340 }).setLatLng(latlng).setContent(div).openOn(map);
    return div;
  }

  function casePopup(p) {
    const c = p.props;
    popup([p.lat, p.lon], `<h3>${esc(caseTitle(c))}</h3><table>
      <tr><th>${t("state")}</th><td>${esc(stateName(c.state))}${c.overdue ? ` <span class="lvl lvl-red">${t("overdue")}</span>` : ""}</td></tr>
      <tr><th>${t("category")}</th><td>${esc(categoryName(c.category))}</td></tr>
      <tr><th>${t("deadline")}</th><td>${fmtTime(c.deadline)}</td></tr>
      <tr><th>${t("place")}</th><td>${esc(nameOf(c.community || c.place))}</td></tr></table>
      <p><a href="/case/${encodeURIComponent(c.id)}">${t("openCase")} →</a></p>`);
  }

  function resourcePopup(p) {
    const r = p.props;
    popup([p.lat, p.lon], `<h3>${esc(r.name || shortId(r.id))}</h3><table>
      <tr><th>${t("category")}</th><td>${esc(t(r.type))} · ${esc((r.capability || []).join(", "))}</td></tr>
      <tr><th>${t("state")}</th><td>${esc(r.status)} · ${fmtNum(r.units)} ${t("available")}</td></tr>
      <tr><th>${t("place")}</th><td>${esc(nameOf(r.place))}</td></tr></table>`);
  }

  async function latest(id) {
    const e = await getJSON("/api/v1/entities/" + encodeURIComponent(id));
    const out = {};
    for (const [k, a] of Object.entries(e)) {
      if (a && typeof a === "object" && typeof a.value === "number" && a.observedAt) out[k] = a;
    }
    return { entity: e, values: out };
  }

  async function sensorPopup(p) {
    const div = popup([p.lat, p.lon], `<h3>${esc(shortId(p.id))}</h3>…`);
    const { entity, values } = await latest(p.id);
    const name = (lang === "zh" ? entity.nameZh && entity.nameZh.value : entity.name && entity.name.value) || shortId(p.id);
    const rows = Object.entries(values).sort().map(([k, v]) =>
      `<tr><th>${esc(qname(k))}</th><td><strong>${fmtNum(v.value, 1)}</strong> ${esc(fmtUnit(v.unitCode))}</td><td>${fmtShort(v.observedAt)}</td></tr>`).join("");
    div.innerHTML = `<h3>${esc(name)}</h3><table>${rows || `<tr><td>${t("noData")}</td></tr>`}</table>
      <p><button type="button" class="show-trend">${t("trend")} →</button></p>`;
    div.querySelector(".show-trend").addEventListener("click", () => { selectSensor(p.id); });
  }

  async function cellPopup(cell, latlng) {
    const div = popup(latlng, `<h3>${esc(nameOf(cell.id))}</h3>`);
    let r = null;
    try { r = await getJSON("/api/v1/risk/" + encodeURIComponent(cell.id)); } catch (e) { /* no risk engine */ }
    const level = (r && r.level) || levelOf(cell.id);
    div.innerHTML = `<h3>${esc(nameOf(cell.id))}</h3><table>
      <tr><th>${t("riskOf")}</th><td><span class="lvl lvl-${esc(level)}">${t(level)}</span> ${r && r.score ? fmtNum(r.score, 2) : ""}</td></tr>
      <tr><th>${t("community")}</th><td>${esc(nameOf(cell.props.parent))}</td></tr>
      ${cell.props.population ? `<tr><th>Pop.</th><td>${fmtNum(cell.props.population)}</td></tr>` : ""}
      ${r && r.explanation ? `<tr><th>${t("explanation")}</th><td>${esc(withNames(r.explanation))}</td></tr>` : ""}</table>`;
  }

  async function loadRisk() {
    try {
      const data = await getJSON("/api/v1/risk?level=grid");
      const items = Array.isArray(data) ? data : (data.items || data.places || []);
      state.risk = {};
      for (const it of items) state.risk[it.place || it.id] = it.level || "none";
      if (state.layers.cells) state.layers.cells.redraw();
      document.getElementById("map").dataset.riskLoaded = String(items.length);
      mapNote();
    } catch (e) { /* risk engine not running on this node */ }
  }

  // ---- KPIs, mode, clock ------------------------------------------------------------------------
  async function loadSummary() {
    const s = await getJSON("/api/v1/dashboard/summary?" + q({}));
    state.summary = s;
    renderSummary();
  }

  function renderSummary() {
    const s = state.summary;
    if (!s.time) return;
    const set = (id, text) => { document.getElementById(id).textContent = text; };
    set("k-obs", fmtNum(s.observations_per_min, s.observations_per_min < 10 ? 1 : 0));
    set("k-obs-sub", (scope ? (lang === "zh" ? "全节点 · " : "whole node · ") : "") +
      (lang === "zh" ? `累计 ${fmtNum(s.observations_total)}` : `${fmtNum(s.observations_total)} since start`));
    const al = s.alerts || {};
    set("k-alerts", fmtNum(al.open));
    document.getElementById("k-alerts-sub").innerHTML = ["red", "orange", "yellow", "blue"]
      .filter((l) => (al.by_level || {})[l]).map((l) => `<b class="lvl-${l}" title="${t(l)}">${fmtNum(al.by_level[l])}</b>`).join("") || "&nbsp;";
    const c = s.cases || {};
    set("k-cases", fmtNum(c.open));
    set("k-cases-sub", c.closed !== undefined ? (lang === "zh" ? `已结 ${fmtNum(c.closed)}` : `${fmtNum(c.closed)} closed`) : "");
    set("k-overdue", fmtNum(c.overdue));
    document.getElementById("k-overdue").parentElement.classList.toggle("on", (c.overdue || 0) > 0);
    set("k-overdue-sub", c.open ? (lang === "zh" ? `占在办 ${fmtPct((c.overdue || 0) / c.open, 0)}` : `${fmtPct((c.overdue || 0) / c.open, 0)} of open`) : "");
    set("k-ontime", fmtPct(c.on_time_rate, 1));
    set("k-ontime-sub", c.closed ? (lang === "zh" ? `${fmtNum(c.closed)} 件已结案件` : `of ${fmtNum(c.closed)} closed`) : "");
    set("k-response", fmtDuration(c.mean_response_minutes));
    set("k-response-sub", lang === "zh" ? "立案至部门接收" : "filing to acceptance");
    const ind = s.indicators || {};
    set("k-score", ind.score === null || ind.score === undefined ? "–" : fmtNum(ind.score, 1));
    set("k-score-sub", ind.coverage !== undefined && ind.coverage !== null ? (lang === "zh" ? `近7日 · 覆盖 ${fmtPct(ind.coverage, 0)}`
      : `7 days · coverage ${fmtPct(ind.coverage, 0)}`) : "");
    const mode = (s.modes && s.modes.mode) || "normal";
    const banner = document.getElementById("mode-banner");
    const family = mode.startsWith("emergency") ? "emergency" : mode;
    banner.className = "mode mode-" + family;
    banner.textContent = t("mode") + ": " + t(family) + (s.modes && s.modes.level ? " " + s.modes.level : "");
    const fed = s.federation || {};
    document.getElementById("dir-waiting").textContent = fed.directives_waiting ? `${t("waitingReceipts")}: ${fmtNum(fed.directives_waiting)}` : "";
    if (s.role === "community") {  // a community node receives directives, it does not issue them
      document.getElementById("composer").hidden = true;
      if (document.getElementById("fed-panel").hidden) loadFederation();
    }
    state.clockOffset = new Date(s.time).getTime() - Date.now();
    tick();
  }

  function tick() {
    if (!state.summary.time) return;
    const now = new Date(Date.now() + state.clockOffset).toISOString();
    document.getElementById("clock").textContent = fmtTime(now);
  }
  setInterval(tick, 1000);

  async function loadModes() {
    try {
      const m = await getJSON("/api/v1/modes");
      state.modes = (m.areas || []).filter((a) => !scope || a.area === scope || state.features[a.area]);
      renderModes();
      if (state.layers.districts) { state.layers.districts.redraw(); state.layers.communities.redraw(); }
    } catch (e) { /* modes not running on this node */ }
  }

  function renderModes() {
    const box = document.getElementById("area-modes");
    box.innerHTML = state.modes.filter((a) => a.mode !== "normal").map((a) => {
      const fam = a.mode.startsWith("emergency") ? "emergency" : a.mode;
      return `<span class="chip mode-${fam}" title="${esc(a.reason || "")}">${esc(nameOf(a.area))} · ${t(fam)}${a.level ? " " + esc(a.level) : ""}</span>`;
    }).join("");
  }

  // ---- alerts feed (server-sent events) -----------------------------------------------------------
  function alertItem(a, fresh) {
    const li = document.createElement("li");
    const sev = a.warningLevel || a.level || "blue";
    li.className = "sev-" + sev + (fresh ? " fresh" : "");
    li.dataset.alertId = a.alert_id || a.id || "";
    li.dataset.place = a.place || "";
    li.tabIndex = -1;
    const desc = String(a.description || "");
    const head = desc.includes(":") ? desc.slice(0, desc.indexOf(":")) : (a.category || desc);
    const rest = desc.includes(":") ? desc.slice(desc.indexOf(":") + 1) : "";
    const members = Array.isArray(a.members) ? a.members.length : null;
    li.innerHTML = `<div class="a-head"><span class="lvl lvl-${esc(sev)}">${t(sev)}</span><strong>${esc(bilingual(head))}</strong>` +
      `<time datetime="${esc(a.dateIssued || a.time || "")}">${fmtClock(a.dateIssued || a.time)}</time></div>` +
      `<div class="a-desc">${esc(withNames(rest).trim())}</div>` +
      `<div class="a-meta"><span class="where">${esc(nameOf(a.community || a.place))}</span><span>${esc(fmtAgo(a.dateIssued || a.time))}</span>` +
      (members ? `<span>${fmtNum(members)} ${t("members")}</span>` : "") + (a.status && a.status !== "raised" ? `<span>${esc(a.status)}</span>` : "") + "</div>";
    li.addEventListener("click", () => focusPlace(a.place));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); focusPlace(a.place); } });
    return li;
  }

  function renderAlerts() {
    const feed = document.getElementById("alert-feed");
    feed.replaceChildren(...state.alerts.slice(0, 60).map((a) => alertItem(a, a._fresh)));
    state.alerts.forEach((a) => { a._fresh = false; });
    roving(feed, "li", "vertical");
    const counts = {};
    for (const a of state.alerts) { const l = a.warningLevel || "blue"; counts[l] = (counts[l] || 0) + 1; }
    document.getElementById("alert-count").innerHTML = ["red", "orange", "yellow", "blue"].filter((l) => counts[l])
      .map((l) => `<span class="lvl lvl-${l}">${fmtNum(counts[l])}</span>`).join(" ");
    document.getElementById("alert-empty").hidden = state.alerts.length > 0;
  }

  function focusPlace(place) {
    const cells = state.layers.cells;
    const cell = cells && cells.byId.get(place);
    if (!cell) return;
    cells.highlight = place;
    const b = L.latLngBounds([cell.bbox[1], cell.bbox[0]], [cell.bbox[3], cell.bbox[2]]);
    map.flyToBounds(b, { maxZoom: Math.max(map.getZoom(), 13), duration: 0.6 });
    map.once("moveend", () => { cells.redraw(); cellPopup(cell, b.getCenter()); });
  }

  async function loadAlerts() {
    try {
      const params = new URLSearchParams({ status: "open", limit: "60" });
      if (scope) params.set("place", scope);
      const data = await getJSON("/api/v1/alerts?" + params.toString());
      const items = Array.isArray(data) ? data : (data.items || []);
      const known = new Set(state.alerts.map((a) => a.alert_id || a.id));
      for (const a of items) if (!known.has(a.alert_id || a.id)) state.alerts.push(a);
      state.alerts.sort((x, y) => String(y.dateIssued || y.time).localeCompare(String(x.dateIssued || x.time)));
      renderAlerts();
    } catch (e) { /* alerts not available */ }
  }

  const refreshSoon = debounce(() => { loadSummary(); loadCheckpoint(); }, 400);
  const casesSoon = debounce(() => { loadCases(); loadCaseLayer(); }, 400);
  const riskSoon = debounce(() => { if (state.layers.cells) state.layers.cells.redraw(); mapNote(); }, 150);

  function connectStream() {
    const live = document.getElementById("live");
    const es = new EventSource("/api/v1/stream" + (scope ? "?scope=" + encodeURIComponent(scope) : ""));
    es.onopen = () => { live.classList.remove("down"); live.querySelector("span").dataset.i18n = "live"; live.querySelector("span").textContent = t("live"); };
    es.onerror = () => { live.classList.add("down"); live.querySelector("span").dataset.i18n = "reconnecting"; live.querySelector("span").textContent = t("reconnecting"); };
    es.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      const d = ev.data || {};
      if (ev.type === "alert.raised") {
        state.alerts.unshift(Object.assign({ time: ev.time, dateIssued: d.dateIssued || ev.time, _fresh: true }, d));
        renderAlerts(); refreshSoon();
      } else if (ev.type === "alert.escalated") {
        const a = state.alerts.find((x) => (x.alert_id || x.id) === d.alert_id);
        if (a) { Object.assign(a, d, { _fresh: true }); renderAlerts(); }
        refreshSoon();
      } else if (ev.type === "alert.resolved") {
        state.alerts = state.alerts.filter((x) => (x.alert_id || x.id) !== d.alert_id);
        renderAlerts(); refreshSoon();
      } else if (ev.type.startsWith("risk.")) {
        if (d.place) { state.risk[d.place] = d.level || "none"; riskSoon(); }
      } else if (ev.type.includes("case")) { casesSoon(); refreshSoon(); }
      else if (ev.type.includes("mode")) { loadModes(); refreshSoon(); }
      else if (ev.type.includes("directive") || ev.type.includes("report")) { refreshSoon(); loadFederation(); }
    };
  }

  // ---- case board ----------------------------------------------------------------------------------
  async function loadCases() {
    try {
      state.board = await getJSON("/api/v1/dashboard/cases?" + q({ per_state: "25" }));
      renderBoard();
    } catch (e) { document.getElementById("case-board").textContent = "–"; }
  }

  function renderBoard() {
    const b = state.board;
    if (!b) return;
    const board = document.getElementById("case-board");
    const cols = Object.fromEntries(b.states.map((s) => [s.state, s]));
    board.innerHTML = BOARD.map((st) => {
      const col = cols[st] || { count: 0, overdue: 0, cases: [] };
      const cls = ["col", st === "closed" || st === "evaluated" ? "final" : "", st === "suspended" ? "hold" : "", col.overdue ? "has-overdue" : ""].join(" ");
      const cards = col.cases.map((c) => `<a href="/case/${encodeURIComponent(c.id)}" class="card${c.overdue ? " overdue" : ""}" data-case-id="${esc(c.id)}"` +
        ` data-overdue="${t("overdue")}" tabindex="-1"><span class="c-t">${esc(caseTitle(c))}</span>` +
        `<small>${esc(categoryName(c.category))} · ${esc(nameOf(c.community || c.place))}</small>` +
        `<small>${c.deadline && !["closed", "evaluated"].includes(st) ? t("deadline") + " " + fmtShort(c.deadline) : fmtAgo(c.created_at)}</small></a>`).join("");
      const more = col.count > col.cases.length ? `<div class="more">${t("more", { n: fmtNum(col.count - col.cases.length) })}</div>` : "";
      return `<div class="${cls}" data-state="${st}" data-count="${col.count}" data-overdue="${col.overdue}"><h3><span>${esc(stateName(st))}` +
        `${col.overdue ? `<span class="od" title="${t("overdue")}">${t("overdue")} ${fmtNum(col.overdue)}</span>` : ""}</span><b>${fmtNum(col.count)}</b></h3>` +
        `<div class="cards">${cards}${more}</div></div>`;
    }).join("");
    board.dataset.count = String(b.total);
    board.dataset.overdue = String(b.overdue);
    const other = b.states.filter((s) => !BOARD.includes(s.state) && s.count).map((s) => `${stateName(s.state)} ${fmtNum(s.count)}`);
    document.getElementById("case-summary").textContent = (lang === "zh" ? `共 ${fmtNum(b.total)} · 在办 ${fmtNum(b.open)} · 超期 ${fmtNum(b.overdue)}`
      : `${fmtNum(b.total)} total · ${fmtNum(b.open)} open · ${fmtNum(b.overdue)} overdue`) + (other.length ? " · " + other.join(" · ") : "");
    roving(board, "a.card", "grid");
  }

  document.getElementById("case-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const desc = document.getElementById("case-desc").value.trim();
    if (!desc) return;
    const picked = state.layers.cells && state.layers.cells.byId.get(state.layers.cells.highlight);
    const center = picked ? L.latLng((picked.bbox[1] + picked.bbox[3]) / 2, (picked.bbox[0] + picked.bbox[2]) / 2) : map.getCenter();
    const body = { description: desc, title: desc.slice(0, 60), channel: "dashboard", lon: center.lng, lat: center.lat,
      category: document.getElementById("case-category").value };
    if (scope) body.place = scope;
    const out = document.getElementById("case-result");
    const r = await postJSON("/api/v1/cases", body);
    if (!r.ok) { document.getElementById("case-form").dataset.error = r.body.detail || String(r.status); out.textContent = "✗ " + (r.body.detail || r.status); return; }
    document.getElementById("case-desc").value = "";
    document.getElementById("case-form").dataset.lastCase = r.body.id || "";
    out.innerHTML = `✓ <a href="/case/${encodeURIComponent(r.body.id)}">${esc(stateName(r.body.state || "intake"))}</a>`;
    loadCases(); loadCaseLayer();
  });

  async function fillCategories() {
    try {
      const cat = await getJSON("/api/v1/cases/catalog");
      state.catalog = Object.fromEntries(cat.categories.map((c) => [c.code, c]));
      const groups = {};
      for (const c of cat.categories) { const g = c.group ? (lang === "zh" ? c.group.zh : c.group.en) : ""; (groups[g] = groups[g] || []).push(c); }
      const sel = document.getElementById("case-category");
      const was = sel.value;
      sel.innerHTML = Object.entries(groups).map(([g, cs]) => `<optgroup label="${esc(g)}">` +
        cs.map((c) => `<option value="${esc(c.code)}">${esc(lang === "zh" ? c.zh : c.en)}</option>`).join("") + "</optgroup>").join("");
      if (was) sel.value = was;
      renderBoard();
    } catch (e) { /* cases not available on this node */ }
  }

  // ---- trend ------------------------------------------------------------------------------------------
  const TYPE_KEY = { AirQualityObserved: "aq", WeatherObserved: "weather", TrafficFlowObserved: "traffic" };
  const sensorLabel = (f) => `${shortId(f.id)} · ${nameOf(f.properties.place)}`;
  function fillSensorOptions() {
    // the full list (10,000 sensors in a big city) is built when the picker is first used, not at load
    const sel = document.getElementById("trend-sensor");
    if (sel.dataset.filled === lang) return;
    const keep = sel.value;
    const groups = {};
    for (const f of state.sensors) (groups[f.properties.type] = groups[f.properties.type] || []).push(f);
    sel.innerHTML = Object.entries(groups).map(([type, fs]) => `<optgroup label="${esc(t(TYPE_KEY[type] || type))}">` +
      fs.map((f) => `<option value="${esc(f.id)}">${esc(sensorLabel(f))}</option>`).join("") + "</optgroup>").join("");
    sel.value = keep;
    sel.dataset.filled = lang;
  }

  function fillTrendPickers() {
    const sel = document.getElementById("trend-sensor");
    const keep = sel.value;
    // pre-select: an air-quality sensor (PM2.5) if there is one, else the first sensor
    const first = state.sensors.find((f) => f.properties.type === "AirQualityObserved")
      || state.sensors.find((f) => f.properties.type === "WeatherObserved") || state.sensors[0];
    const shown = state.sensors.find((f) => f.id === keep) || first;
    sel.innerHTML = shown ? `<option value="${esc(shown.id)}">${esc(sensorLabel(shown))}</option>` : "";
    sel.dataset.filled = "";
    sel.onfocus = fillSensorOptions; sel.onpointerdown = fillSensorOptions; sel.onkeydown = fillSensorOptions;
    sel.onchange = () => pickSensor();
    const places = document.getElementById("trend-place");
    const order = { District: 0, Community: 1 };
    const opts = Object.values(state.features).filter((f) => f.properties.level in order)
      .sort((a, b) => order[a.properties.level] - order[b.properties.level] || a.id.localeCompare(b.id));
    places.innerHTML = opts.map((f) => `<option value="${esc(f.id)}">${esc(nameOf(f.id))}</option>`).join("");
    if (scope) places.value = scope;
    places.onchange = () => { places.dataset.chosen = "1"; drawTrend(); };
    document.querySelectorAll("input[name=trend-by]").forEach((r) => { r.onchange = switchTrend; });
    return state.trend ? Promise.resolve() : pickSensor();
  }

  function trendBy() { return document.getElementById("trend-by-place").checked ? "place" : "sensor"; }

  function switchTrend() {
    const byPlace = trendBy() === "place";
    document.getElementById("trend-sensor-l").hidden = byPlace;
    document.getElementById("trend-place-l").hidden = !byPlace;
    const sel = document.getElementById("trend-attr");
    if (byPlace) {
      const places = document.getElementById("trend-place");
      if (!places.dataset.chosen) {  // start with the community of the sensor on show
        const f = state.sensors.find((x) => x.id === document.getElementById("trend-sensor").value);
        const cell = f && state.features[f.properties.place];
        const community = cell && cell.properties.parent;
        if (community && state.features[community]) places.value = community;
      }
      const was = sel.value;
      sel.innerHTML = PLACE_QUANTITIES.map((a) => `<option value="${a}">${esc(qname(a))}</option>`).join("");
      sel.value = PLACE_QUANTITIES.includes(was) ? was : "pm25";
      sel.onchange = drawTrend;
      drawTrend();
    } else pickSensor(sel.value);
  }

  function selectSensor(id) {
    fillSensorOptions();
    document.getElementById("trend-by-sensor").checked = true;
    document.getElementById("trend-sensor").value = id;
    switchTrend();
  }

  async function pickSensor(prefer) {
    const id = document.getElementById("trend-sensor").value;
    const values = id ? (await latest(id)).values : {};
    const attrs = Object.keys(values).sort();
    const sel = document.getElementById("trend-attr");
    sel.innerHTML = attrs.map((a) => `<option value="${esc(a)}">${esc(qname(a))}</option>`).join("");
    const want = [prefer, "pm25", "precipitation", "intensity"].find((a) => a && attrs.includes(a));
    if (want) sel.value = want;
    sel.onchange = drawTrend;
    state.latest = values;
    drawTrend();
  }

  async function drawTrend() {
    const byPlace = trendBy() === "place";
    const id = document.getElementById(byPlace ? "trend-place" : "trend-sensor").value;
    const attr = document.getElementById("trend-attr").value;
    const box = document.getElementById("trend-chart");
    const latestBox = document.getElementById("trend-latest");
    if (!id || !attr) {
      state.trend = { by: byPlace ? "place" : "sensor", id, attr, points: 0 };
      box.dataset.points = "0"; latestBox.textContent = t("noData");
      if (state.chart) state.chart.clear();
      return;
    }
    let series, unit;
    if (byPlace) {
      const data = await getJSON(`/api/v1/dashboard/trend?place=${encodeURIComponent(id)}&attr=${encodeURIComponent(attr)}&last=240`);
      unit = fmtUnit(data.unit);
      series = [{ name: t("mean"), data: data.series.map((r) => [r.time, r.mean]) },
        { name: t("max"), data: data.series.map((r) => [r.time, r.max]), dashed: true }];
      const last = data.series[data.series.length - 1];
      latestBox.innerHTML = last ? `<span>${t("mean")}</span><strong>${fmtNum(last.mean, 1)}</strong> ${esc(unit)}` +
        `<span>${t("max")} ${fmtNum(last.max, 1)}</span><span>${fmtNum(data.sensors)} ${t("sensors")} · ${fmtShort(last.time)}</span>` : t("noData");
    } else {
      const rows = await getJSON(`/api/v1/entities/${encodeURIComponent(id)}/history?attr=${encodeURIComponent(attr)}&lastN=240`);
      const nums = rows.filter((r) => typeof r.value === "number");
      unit = fmtUnit((nums[0] || {}).unit);
      series = [{ name: qname(attr), data: nums.map((r) => [r.observed_at, r.value]) }];
      const last = nums[nums.length - 1];
      latestBox.innerHTML = last ? `<span>${t("latest")}</span><strong>${fmtNum(last.value, 1)}</strong> ${esc(unit)}` +
        `<span>${fmtShort(last.observed_at)}</span><span>${fmtNum(nums.length)} ${t("points")}</span>` : t("noData");
    }
    state.trend = { by: byPlace ? "place" : "sensor", id, attr, points: series[0].data.length };
    box.dataset.points = String(series[0].data.length);
    box.dataset.id = id; box.dataset.attr = attr;
    if (!window.echarts) await loadScript("/static/vendor/echarts/echarts.common.min.js");
    if (!state.chart) { state.chart = echarts.init(box, null, { renderer: "canvas" }); window.addEventListener("resize", () => state.chart.resize()); }
    const colors = ["#5cc0ff", "#ff8c1a"];
    state.chart.setOption({
      backgroundColor: "transparent", animation: false, color: colors,
      grid: { left: 46, right: 12, top: 24, bottom: 24 },
      legend: series.length > 1 ? { top: 0, right: 0, textStyle: { color: "#a9b8ce" }, itemHeight: 8 } : { show: false },
      tooltip: { trigger: "axis", backgroundColor: "#13233b", borderColor: "#2c4670", textStyle: { color: "#eef3fb" },
        valueFormatter: (v) => fmtNum(v, 1) + " " + unit },
      xAxis: { type: "time", axisLine: { lineStyle: { color: "#3a5a88" } }, axisLabel: { color: "#a9b8ce", hideOverlap: true,
        formatter: (v) => fmtShort(new Date(v).toISOString()) }, splitLine: { show: false } },
      yAxis: { type: "value", scale: true, name: unit, nameTextStyle: { color: "#a9b8ce", align: "right" },
        axisLabel: { color: "#a9b8ce", formatter: (v) => fmtNum(v, 1) }, splitLine: { lineStyle: { color: "#1f3556" } } },
      series: series.map((s, i) => ({ type: "line", name: s.name, showSymbol: false, data: s.data, lineStyle: { width: 2, type: s.dashed ? "dashed" : "solid" },
        areaStyle: i === 0 ? { color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [{ offset: 0, color: "rgba(92,192,255,0.35)" }, { offset: 1, color: "rgba(92,192,255,0.02)" }]) } : undefined })),
    }, true);
    box.dataset.rendered = "1";
  }

  // ---- directives, reports ------------------------------------------------------------------------
  function fillTargets() {
    const sel = document.getElementById("dir-target");
    const was = sel.value;
    const cs = Object.values(state.features).filter((f) => f.properties.level === "Community" && (!scope || f.id === scope));
    sel.innerHTML = cs.map((f) => `<option value="${esc(f.id)}">${esc(nameOf(f.id))}</option>`).join("");
    if (was) sel.value = was;
  }

  document.getElementById("directive-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { target: document.getElementById("dir-target").value, text: document.getElementById("dir-text").value };
    const r = await postJSON("/api/v1/directives", body);
    const out = document.getElementById("dir-result");
    out.textContent = r.ok ? "✓ " + t("sent") : "✗ " + (r.body.detail || r.status);
    out.dataset.status = String(r.status);
    if (r.ok) { document.getElementById("dir-text").value = ""; refreshSoon(); loadFederation(); }
  });

  async function loadFederation() {
    if (!scope && state.summary.role !== "community") return;  // city view: the composer shows what is waiting
    try {
      const f = await getJSON("/api/v1/dashboard/federation?" + q({}));
      document.getElementById("fed-panel").hidden = false;
      const dirs = f.directives.filter((d) => d.waiting.length);
      document.getElementById("dirs-count").textContent = fmtNum(f.directives_waiting);
      document.getElementById("directives").innerHTML = dirs.map((d) => `<li data-directive="${esc(d.id)}">${esc(d.text)}` +
        `<small>${fmtShort(d.issued_at || d.received_at)} · ${t("read")} ${fmtNum(d.read)}/${fmtNum(Object.keys(d.nodes).length)} · ${t("done")} ${fmtNum(d.done)}/${fmtNum(Object.keys(d.nodes).length)}` +
        `${d.due ? " · " + t("deadline") + " " + fmtShort(d.due) : ""}</small></li>`).join("") || `<li class="empty">${t("noDirectives")}</li>`;
      document.getElementById("reports-count").textContent = fmtNum(f.reports_total);
      document.getElementById("reports").innerHTML = f.reports.slice(0, 20).map((r) => `<li data-report="${esc(r.id)}">${esc(r.text || r.type)}` +
        `<small>${esc(r.type || "")} · ${fmtShort(r.at || r.received_at)} · ${esc(r.sender || "")}</small></li>`).join("") || `<li class="empty">${t("noReports")}</li>`;
    } catch (e) { /* federation not running on this node */ }
  }

  // ---- ledger checkpoint ---------------------------------------------------------------------------
  async function loadCheckpoint() {
    try {
      const c = await getJSON("/api/v1/dashboard/checkpoint");
      state.checkpoint = c;
      renderCheckpoint();
    } catch (e) { /* ledger not running */ }
  }

  function renderCheckpoint() {
    const c = state.checkpoint;
    if (!c) return;
    const panel = document.getElementById("ledger");
    panel.dataset.size = c.size === null || c.size === undefined ? "" : String(c.size);
    document.getElementById("ledger-size").textContent = fmtNum(c.size);
    const root = c.root || "";
    const rootEl = document.getElementById("ledger-root");
    rootEl.textContent = root ? root.slice(0, 10) + "…" + root.slice(-6) : "–";
    rootEl.title = root;
    document.getElementById("ledger-time").textContent = fmtTime(c.time);
    document.getElementById("ledger-origin").textContent = c.origin || "–";
    document.getElementById("ledger-note").textContent = (c.note || "").trim();
    const badge = document.getElementById("ledger-badge");
    badge.className = "badge " + (c.verified ? "ok" : "bad");
    badge.textContent = c.verified ? "✓ " + t("verified") : "✗ " + t("notVerified");
    badge.title = c.error || "";
  }

  // ---- keyboard: one tab stop per list, arrow keys inside (roving tabindex) -------------------------
  function roving(container, selector, kind) {
    const items = [...container.querySelectorAll(selector)];
    if (!items.length) return;
    if (!items.some((el) => el.tabIndex === 0)) items[0].tabIndex = 0;
    container.onkeydown = (ev) => {
      const i = items.indexOf(document.activeElement);
      if (i < 0) return;
      let j = i;
      if (kind === "grid" && (ev.key === "ArrowLeft" || ev.key === "ArrowRight")) {
        const cols = [...container.querySelectorAll(".col")];
        const col = document.activeElement.closest(".col");
        const k = cols.indexOf(col) + (ev.key === "ArrowRight" ? 1 : -1);
        for (let n = k; n >= 0 && n < cols.length; n += ev.key === "ArrowRight" ? 1 : -1) {
          const first = cols[n].querySelector(selector);
          if (first) { j = items.indexOf(first); break; }
        }
      } else if (ev.key === "ArrowDown") j = Math.min(i + 1, items.length - 1);
      else if (ev.key === "ArrowUp") j = Math.max(i - 1, 0);
      else if (ev.key === "Home") j = 0;
      else if (ev.key === "End") j = items.length - 1;
      else return;
      ev.preventDefault();
      items[i].tabIndex = -1; items[j].tabIndex = 0; items[j].focus();
    };
  }

  // ---- language -----------------------------------------------------------------------------------------
  function relabel() {
    applyLabels(); legend(); renderSummary(); renderAlerts(); renderBoard(); renderCheckpoint(); renderModes();
    fillTargets(); fillCategories(); scopeName(); mapNote();
    for (const n of ["districts", "communities"]) if (state.layers[n]) state.layers[n].redraw();
    if (state.sensors.length) {
      const keep = [document.getElementById("trend-sensor").value, document.getElementById("trend-place").value, document.getElementById("trend-attr").value];
      fillTrendPickers();
      document.getElementById("trend-sensor").value = keep[0]; document.getElementById("trend-place").value = keep[1];
      if (trendBy() === "place") switchTrend(); else pickSensor(keep[2]);
    }
    map.closePopup();
  }

  document.getElementById("lang").addEventListener("click", () => {
    window.lang = window.lang === "zh" ? "en" : "zh";
    localStorage.setItem("citybrain.lang", window.lang);
    relabel();
  });

  function scopeName() {
    if (!scope) return;
    document.getElementById("subtitle").textContent = t("communitySubtitle");
    document.getElementById("subtitle").dataset.i18n = "communitySubtitle";
    document.getElementById("scope-name").textContent = nameOf(scope);
    document.title = "citybrain · " + nameOf(scope);
  }

  // read-only hooks for tests and for operators' own scripts
  window.citybrainMap = {
    cellIds: () => (state.layers.cells ? state.layers.cells.cells.map((c) => c.id) : []),
    fillOf: (id) => (state.layers.cells && state.layers.cells.byId.has(id) ? colorOf(id) : null),
    sensorIds: () => state.sensors.map((f) => f.id),
    caseIds: () => (state.layers.cases ? state.layers.cases.points.map((p) => p.id) : []),
    resourceIds: () => (state.layers.resources ? state.layers.resources.points.map((p) => p.id) : []),
    visible: (name) => !!(state.layers[name] && state.layers[name].visible()),
    zoom: () => map.getZoom(),
    highlighted: () => (state.layers.cells ? state.layers.cells.highlight : null),
    bounds: () => map.getBounds().toBBoxString(),
    colors: COLORS,
  };
  window.citybrainTrend = () => state.trend;

  applyLabels(); legend();
  if (scope) document.body.classList.add("community");
  const started = performance.now();
  // the map and the KPI tiles first (body[data-ready]), then the panels around them
  const ready = Promise.all([loadMap(), loadSummary()]).then(() => {
    document.body.dataset.loadedMs = String(Math.round(performance.now() - started));
    document.body.dataset.ready = "1";
    scopeName(); fillTargets(); renderAlerts(); renderBoard(); loadModes();
  });
  const panels = ready.then(() => Promise.allSettled([loadRisk(), loadCaseLayer(), loadResourceLayer(), loadAlerts(), loadCases(),
    fillCategories(), loadCheckpoint(), loadFederation(), fillTrendPickers()]));
  // every panel filled (trend drawn, board, alerts, checkpoint): body[data-complete]
  panels.then(() => {
    document.body.dataset.completeMs = String(Math.round(performance.now() - started));
    document.body.dataset.completeAt = String(Math.round(performance.now()));  // ms since navigation start
    document.body.dataset.complete = "1";
  });
  connectStream();
  setInterval(() => { loadSummary(); loadCheckpoint(); }, 10000);  // rates and the ledger head; events come over SSE
})();
