// Case page: timeline of every step with actor and time, map, tasks per department, time limits.
(function () {
  "use strict";
  const id = document.body.dataset.case;
  const esc = (s) => String(s === undefined || s === null ? "" : s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  async function load() {
    const r = await fetch("/api/v1/cases/" + encodeURIComponent(id));
    if (!r.ok) { document.getElementById("case-title").textContent = id + " (" + r.status + ")"; return; }
    const c = await r.json();
    document.getElementById("case-title").textContent = c.title || c.description || c.id;
    document.getElementById("case-state").textContent = t("state") + ": " + c.state;
    const steps = c.timeline || c.history || [];
    document.getElementById("timeline").innerHTML = steps.map((s) =>
      `<li><strong>${esc(s.step || s.action || s.state)}</strong> · ${esc(s.actor)}<br><small>${fmtTime(s.time)}</small> ${esc(s.note || "")}</li>`).join("");
    const tasks = c.tasks || [];
    document.getElementById("tasks").innerHTML = tasks.map((tk) =>
      `<div class="tile"><span>${esc(tk.department)} · ${esc(tk.role || "")}</span><strong>${esc(tk.state)}</strong><small>${t("deadline")}: ${fmtTime(tk.deadline || tk.due)}</small></div>`).join("");
    document.getElementById("deadline").textContent = fmtTime(c.deadline || c.due) + (c.overdue ? " ⚠" : "");
    const map = L.map("map", { preferCanvas: true, attributionControl: false });
    const raw = c.location || {};
    const loc = raw.type ? raw : (raw.lon !== undefined && raw.lon !== null ? { type: "Point", coordinates: [raw.lon, raw.lat] } : null);
    if (loc && loc.type === "Point") {
      const ll = [loc.coordinates[1], loc.coordinates[0]];
      map.setView(ll, 14); L.circleMarker(ll, { radius: 9, color: "#ff8c00", weight: 3 }).addTo(map);
      const around = await (await fetch(`/api/v1/map/places?level=Grid`)).json();
      L.geoJSON(around, { style: { color: "#4fb3ff", weight: 1, fillOpacity: 0.08 } }).addTo(map);
    } else { map.setView([39.9, 116.4], 10); }
    if (c.place) {
      const fc = await (await fetch("/api/v1/map/places?level=Grid&within=" + encodeURIComponent(c.place))).json();
      const layer = L.geoJSON(fc, { style: { color: "#4fb3ff", weight: 1, fillOpacity: 0.15 } }).addTo(map);
      if (layer.getBounds().isValid() && !(loc && loc.type === "Point")) map.fitBounds(layer.getBounds());
    }
    document.body.dataset.ready = "1";
  }
  document.getElementById("lang").addEventListener("click", () => {
    window.lang = window.lang === "zh" ? "en" : "zh"; localStorage.setItem("citybrain.lang", window.lang); applyLabels(); load();
  });
  applyLabels(); load();
})();
