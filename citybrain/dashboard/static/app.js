// citybrain dashboard: city view (no scope) and community view (data-scope = community URN).
(function () {
  "use strict";
  const scope = document.body.dataset.scope || "";
  const q = (params) => { const u = new URLSearchParams(params); if (scope) u.set("within", scope); return u.toString(); };
  const COLORS = { none: "#2e8b57", blue: "#1e6fff", yellow: "#ffd400", orange: "#ff8c00", red: "#ff2d2d" };
  const state = { risk: {}, gridLayer: null, alerts: [], sensors: [], chart: null, summary: {} };

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

  // ---- map -----------------------------------------------------------------------------------
  const map = L.map("map", { preferCanvas: true, zoomControl: true, attributionControl: false });
  const renderer = L.canvas({ padding: 0.2 });

  function legend() {
    document.getElementById("legend").innerHTML = ["none", "blue", "yellow", "orange", "red"]
      .map((k) => `<span><i style="background:${COLORS[k]}"></i>${t(k)}</span>`).join("");
  }

  const colorOf = (id) => COLORS[state.risk[id] || "none"] || COLORS.none;

  async function loadMap() {
    const [districts, communities, grid, sensors] = await Promise.all([
      getJSON("/api/v1/map/places?" + q({ level: "District" })),
      getJSON("/api/v1/map/places?" + q({ level: "Community" })),
      getJSON("/api/v1/map/places?" + q({ level: "Grid" })),
      getJSON("/api/v1/map/sensors?" + q({})),
    ]);
    state.gridLayer = new L.CellsLayer(grid.features, colorOf);
    const bounds = state.gridLayer.bounds();
    if (bounds && bounds.isValid()) map.fitBounds(bounds); else map.setView([39.9, 116.4], 9);
    state.gridLayer.addTo(map);
    L.geoJSON(communities, { style: { renderer, weight: 1.2, color: "#9fc3ff", fill: false, interactive: false } }).addTo(map);
    L.geoJSON(districts, { style: { renderer, weight: 2.5, color: "#ffffff", fill: false, interactive: false } }).addTo(map);
    document.getElementById("map").dataset.cells = String(grid.features.length);
    state.sensors = sensors.features;
    state.sensorLayer = new L.PointsLayer(sensors.features).addTo(map);
    map.on("click", (ev) => {
      const p = state.sensorLayer.nearest(ev.latlng, 8);
      if (p) {
        const div = document.createElement("div"); div.textContent = p.id; sensorPopup(p.id, div);
        L.popup().setLatLng([p.lat, p.lon]).setContent(div).openOn(map);
        return;
      }
      const c = state.gridLayer.at(ev.latlng);
      if (c) L.popup().setLatLng(ev.latlng).setContent(`${c.props.name || c.id}<br>${t(state.risk[c.id] || "none")}`).openOn(map);
    });
    fillTrendPickers();
  }

  async function latest(id) {
    const e = await getJSON("/api/v1/entities/" + encodeURIComponent(id));
    const out = {};
    for (const [k, a] of Object.entries(e)) {
      if (a && typeof a === "object" && typeof a.value === "number" && a.observedAt) out[k] = a;
    }
    return out;
  }

  async function sensorPopup(id, div) {
    const values = await latest(id);
    const rows = Object.entries(values).map(([k, v]) =>
      `<tr><th>${k}</th><td>${fmtNum(v.value, 1)}</td><td>${v.unitCode || ""}</td><td>${fmtTime(v.observedAt)}</td></tr>`).join("");
    div.innerHTML = `<strong>${id}</strong><table>${rows}</table>`;
  }

  async function loadRisk() {
    try {
      const data = await getJSON("/api/v1/risk?level=grid");
      const items = Array.isArray(data) ? data : (data.items || data.places || []);
      state.risk = {};
      for (const it of items) state.risk[it.place || it.id] = it.level || "none";
      if (state.gridLayer) state.gridLayer.redraw();
      document.getElementById("map").dataset.riskLoaded = String(items.length);
    } catch (e) { /* risk engine not running on this node */ }
  }

  // ---- KPIs, mode, ledger ------------------------------------------------------------------------
  async function loadSummary() {
    const s = await getJSON("/api/v1/dashboard/summary?" + q({}));
    state.summary = s;
    document.getElementById("k-obs").textContent = fmtNum(s.observations_per_min);
    document.getElementById("k-alerts").textContent = fmtNum(s.alerts ? s.alerts.open : null);
    document.getElementById("k-cases").textContent = fmtNum(s.cases ? s.cases.open : null);
    const onTime = s.cases ? s.cases.on_time_rate : null;
    document.getElementById("k-ontime").textContent = onTime === null || onTime === undefined ? "–" : fmtNum(onTime * 100, 1) + "%";
    const resp = s.cases ? s.cases.mean_response_minutes : null;
    document.getElementById("k-response").textContent = resp === null || resp === undefined ? "–" : fmtNum(resp, 1) + " " + t("minutes");
    const mode = (s.modes && s.modes.mode) || "normal";
    const banner = document.getElementById("mode-banner");
    const family = mode.startsWith("emergency") ? "emergency" : mode;
    banner.className = "mode mode-" + family;
    banner.textContent = t("mode") + ": " + (t(family) + (s.modes && s.modes.level ? " " + s.modes.level : ""));
    document.getElementById("ledger").textContent = s.ledger ? (s.ledger.checkpoint || "").trim() : "–";
    document.getElementById("clock").textContent = fmtTime(s.time);
  }

  // ---- alerts feed (server-sent events) -----------------------------------------------------------
  function renderAlert(a, prepend) {
    const li = document.createElement("li");
    const sev = a.warningLevel || a.level || "blue";
    li.className = "sev-" + sev;
    li.dataset.alertId = a.alert_id || a.id || "";
    li.innerHTML = `<strong>${t(sev)}</strong> ${a.description || a.category || ""}<br><small>${fmtTime(a.time || a.dateIssued)} · ${a.place || ""}</small>`;
    const feed = document.getElementById("alert-feed");
    if (prepend) feed.prepend(li); else feed.append(li);
    while (feed.children.length > 50) feed.lastChild.remove();
  }

  async function loadAlerts() {
    try {
      const params = new URLSearchParams({ status: "open", limit: "30" });
      if (scope) params.set("place", scope);
      const data = await getJSON("/api/v1/alerts?" + params.toString());
      const items = Array.isArray(data) ? data : (data.items || []);
      items.forEach((a) => renderAlert(a, false));
    } catch (e) { /* alerts not available */ }
  }

  function connectStream() {
    const es = new EventSource("/api/v1/stream" + (scope ? "?scope=" + encodeURIComponent(scope) : ""));
    es.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      if (ev.type === "alert.raised") { renderAlert(Object.assign({ time: ev.time }, ev.data), true); loadSummary(); }
      else if (ev.type.startsWith("risk.")) {
        const d = ev.data; if (d.place) { state.risk[d.place] = d.level || "none"; if (state.gridLayer) state.gridLayer.redraw(); }
      } else if (ev.type.includes("case")) { loadCases(); loadSummary(); }
      else if (ev.type.includes("mode")) { loadSummary(); }
    };
  }

  // ---- case board ----------------------------------------------------------------------------------
  async function loadCases() {
    const board = document.getElementById("case-board");
    try {
      const params = new URLSearchParams({ limit: "200" });
      if (scope) params.set("place", scope);
      const data = await getJSON("/api/v1/cases?" + params.toString());
      const items = Array.isArray(data) ? data : (data.items || []);
      const byState = {};
      for (const c of items) (byState[c.state] = byState[c.state] || []).push(c);
      board.innerHTML = Object.entries(byState).map(([st, cs]) => `<div class="col"><h3>${st} (${cs.length})</h3>` +
        cs.slice(0, 12).map((c) => `<a href="/case/${encodeURIComponent(c.id)}" class="${c.overdue ? "overdue" : ""}">${c.title || c.description || c.id}</a>`).join("") + "</div>").join("");
      board.dataset.count = String(items.length);
    } catch (e) { board.textContent = "–"; }
  }

  document.getElementById("case-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const desc = document.getElementById("case-desc").value.trim();
    if (!desc) return;
    const center = map.getCenter();
    const body = { description: desc, title: desc.slice(0, 60), channel: "dashboard", lon: center.lng, lat: center.lat,
      category: document.getElementById("case-category").value };
    if (scope) body.place = scope;
    const r = await fetch("/api/v1/cases", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) { document.getElementById("case-form").dataset.error = out.detail || String(r.status); return; }
    document.getElementById("case-desc").value = "";
    document.getElementById("case-form").dataset.lastCase = out.id || "";
    loadCases();
  });

  async function fillCategories() {
    try {
      const cat = await getJSON("/api/v1/cases/catalog");
      document.getElementById("case-category").innerHTML = cat.categories.map((c) =>
        `<option value="${c.code}">${lang === "zh" ? c.zh : c.en}</option>`).join("");
    } catch (e) { /* cases not available on this node */ }
  }

  // ---- trend ------------------------------------------------------------------------------------------
  function fillTrendPickers() {
    const sel = document.getElementById("trend-sensor");
    sel.innerHTML = state.sensors.map((f) => `<option value="${f.id}">${f.id.replace("urn:ngsi-ld:", "")}</option>`).join("");
    sel.onchange = pickSensor;
    pickSensor();
  }

  async function pickSensor() {
    const id = document.getElementById("trend-sensor").value;
    const attrs = id ? Object.keys(await latest(id)) : [];
    const sel = document.getElementById("trend-attr");
    sel.innerHTML = attrs.map((a) => `<option>${a}</option>`).join("");
    sel.onchange = drawTrend;
    drawTrend();
  }

  async function drawTrend() {
    const id = document.getElementById("trend-sensor").value;
    const attr = document.getElementById("trend-attr").value;
    if (!id || !attr) return;
    const rows = await getJSON(`/api/v1/entities/${encodeURIComponent(id)}/history?attr=${encodeURIComponent(attr)}&lastN=240`);
    if (!window.echarts) await loadScript("/static/vendor/echarts/echarts.common.min.js");
    if (!state.chart) state.chart = echarts.init(document.getElementById("trend-chart"), "dark");
    state.chart.setOption({ backgroundColor: "transparent", grid: { left: 45, right: 10, top: 10, bottom: 30 },
      xAxis: { type: "time" }, yAxis: { type: "value", scale: true }, tooltip: { trigger: "axis" },
      series: [{ type: "line", showSymbol: false, data: rows.map((r) => [r.observed_at, r.value]) }] });
  }

  // ---- directives -------------------------------------------------------------------------------------
  function fillTargets() {
    getJSON("/api/v1/map/places?" + q({ level: "Community" })).then((fc) => {
      document.getElementById("dir-target").innerHTML = fc.features.map((f) =>
        `<option value="${f.id}">${(lang === "zh" && f.properties.nameZh) || f.properties.name || f.id}</option>`).join("");
    });
  }

  document.getElementById("directive-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { target: document.getElementById("dir-target").value, text: document.getElementById("dir-text").value };
    const r = await fetch("/api/v1/directives", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    document.getElementById("dir-result").textContent = r.ok ? "✓" : "✗ " + r.status;
  });

  // ---- language -----------------------------------------------------------------------------------------
  document.getElementById("lang").addEventListener("click", () => {
    window.lang = window.lang === "zh" ? "en" : "zh";
    localStorage.setItem("citybrain.lang", window.lang);
    applyLabels(); legend(); loadSummary(); fillTargets(); fillCategories();
  });

  // read-only hooks for tests and for operators' own scripts
  window.citybrainMap = {
    cellIds: () => (state.gridLayer ? state.gridLayer.cells.map((c) => c.id) : []),
    fillOf: (id) => (state.gridLayer && state.gridLayer.cells.some((c) => c.id === id) ? colorOf(id) : null),
    sensorIds: () => state.sensors.map((f) => f.id),
    colors: COLORS,
  };

  applyLabels(); legend();
  if (scope) document.getElementById("scope-name").textContent = t("community") + " " + scope.replace("urn:ngsi-ld:", "");
  const started = performance.now();
  Promise.all([loadMap(), loadSummary()]).then(() => {
    document.body.dataset.loadedMs = String(Math.round(performance.now() - started));
    document.body.dataset.ready = "1";
  }).then(loadRisk);
  loadAlerts(); loadCases(); fillTargets(); fillCategories(); connectStream();
  setInterval(loadSummary, 5000);
})();
