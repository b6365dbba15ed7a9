// Case page: timeline of every step with actor and time, map, tasks per department, time limits.
(function () {
  "use strict";
  const id = document.body.dataset.case;
  const S = { map: null, layers: [], depts: {}, cats: {}, names: {} };
  const stepName = (s) => ({ zh: { intake: "受理", file: "立案", dispatch: "派遣", accept: "接收", feedback: "反馈", verify: "核查",
    close: "结案", evaluate: "评价", warn: "时限预警", escalate: "超期升级", join: "并入", merge: "合并", exception: "申请例外",
    approve: "批准例外", resume: "恢复" }, en: { intake: "Intake", file: "File", dispatch: "Dispatch", accept: "Accept",
    feedback: "Feedback", verify: "Verify", close: "Close", evaluate: "Evaluate", warn: "Time-limit warning",
    escalate: "Escalated (overdue)", join: "Joined", merge: "Merge", exception: "Exception requested",
    approve: "Exception approved", resume: "Resume" } }[lang] || {})[s] || s;
  const dept = (d) => (S.depts[d] ? (lang === "zh" ? S.depts[d].zh : S.depts[d].en) : d);
  const cat = (c) => (S.cats[c] ? (lang === "zh" ? S.cats[c].zh : S.cats[c].en) : c);
  const nameOf = (p) => { const f = S.names[p]; return f ? ((lang === "zh" ? f.nameZh || f.name : f.name || f.nameZh) || p) : String(p || "–").replace(/^urn:ngsi-ld:[A-Za-z]+:/, ""); };
  const set = (el, text) => { document.getElementById(el).textContent = text; };

  async function getJSON(url) { const r = await fetch(url); if (!r.ok) throw new Error(url + " " + r.status); return r.json(); }

  async function load() {
    const r = await fetch("/api/v1/cases/" + encodeURIComponent(id));
    if (!r.ok) { set("case-title", id + " (" + r.status + ")"); document.body.dataset.ready = "1"; return; }
    const c = await r.json();
    try {
      const catalog = await getJSON("/api/v1/cases/catalog");
      S.depts = catalog.departments; S.cats = Object.fromEntries(catalog.categories.map((x) => [x.code, x]));
    } catch (e) { /* cases catalog not readable */ }
    for (const p of [c.place, c.community].filter(Boolean)) {
      try {
        const e = (await getJSON("/api/v1/places/" + encodeURIComponent(p))).entity || {};
        S.names[p] = { name: e.name && e.name.value, nameZh: e.nameZh && e.nameZh.value };
      } catch (e) { /* unknown */ }
    }
    document.title = "citybrain · " + (c.title || c.id);
    set("case-title", c.title || c.description || c.id);
    set("case-state", t("state") + ": " + stateName(c.state) + " · " + c.state);
    document.getElementById("case-state").dataset.state = c.state;
    const od = document.getElementById("case-overdue");
    od.hidden = !c.overdue; od.textContent = "⚠ " + t("overdue");
    set("f-category", cat(c.category)); set("f-place", nameOf(c.community || c.place)); set("f-channel", c.channel || "–");
    set("f-created", fmtTime(c.created_at)); set("deadline", fmtTime(c.deadline || (c.clock && c.clock.deadline)));
    const left = c.clock && c.clock.hours_left;
    set("f-left", left === null || left === undefined ? "–" : fmtNum(left, 1) + " " + t("hours"));
    set("f-depts", (c.departments || []).map(dept).join("、") || "–"); set("f-desc", c.description || "–");
    const steps = c.timeline || c.history || [];
    set("steps", fmtNum(steps.length));
    document.getElementById("timeline").innerHTML = steps.map((s) =>
      `<li class="${esc(s.step)}"><span class="what">${esc(stepName(s.step || s.action || s.state))}</span> → ${esc(stateName(s.state))}` +
      `<br><span class="who">${esc(s.actor)}</span> · <time class="when" datetime="${esc(s.time)}">${fmtTime(s.time)}</time>` +
      `${s.note ? `<br><small>${esc(s.note)}</small>` : ""}</li>`).join("");
    const tasks = c.tasks || [];
    document.getElementById("tasks").innerHTML = tasks.map((tk) => {
      const late = tk.escalation > 0 || (!tk.done_at && tk.deadline && new Date(tk.deadline) < new Date());
      const start = new Date(tk.dispatched_at).getTime(), end = new Date(tk.deadline).getTime();
      const upto = tk.done_at ? new Date(tk.done_at).getTime() : Date.now();
      const share = end > start ? Math.max(0, Math.min(1, (upto - start) / (end - start))) : 0;
      return `<article class="tile task${late ? " overdue" : ""}${tk.state === "done" ? " done" : ""}" data-task="${esc(tk.id)}">` +
        `<header><span>${esc(dept(tk.department))} · ${esc(t(tk.role || ""))}</span><strong>${esc(t(tk.state))}</strong></header><dl>` +
        `<dt>${t("deadline")}</dt><dd>${fmtTime(tk.deadline || tk.due)}${late ? ` <span class="lvl lvl-red">${t("overdue")}</span>` : ""}</dd>` +
        (tk.hours_left !== null && tk.hours_left !== undefined ? `<dt>${t("hoursLeft")}</dt><dd>${fmtNum(tk.hours_left, 1)} ${t("hours")}</dd>` : "") +
        (tk.accepted_at ? `<dt>${t("accepted")}</dt><dd>${fmtTime(tk.accepted_at)}</dd>` : "") +
        (tk.done_at ? `<dt>${t("done")}</dt><dd>${fmtTime(tk.done_at)}</dd>` : "") +
        (tk.escalated_to ? `<dt>⚠</dt><dd>${esc(tk.escalated_to)}</dd>` : "") +
        `</dl><div class="bar${late ? " late" : ""}" role="img" aria-label="${fmtPct(share, 0)}"><i style="width:${(share * 100).toFixed(1)}%"></i></div></article>`;
    }).join("") || `<p class="empty">${t("noTasks")}</p>`;
    await drawMap(c);
    document.body.dataset.ready = "1";
  }

  async function drawMap(c) {
    if (!S.map) {
      S.map = L.map("map", { preferCanvas: true, attributionControl: false, zoomSnap: 0.25 });
      L.control.scale({ imperial: false }).addTo(S.map);
    }
    const map = S.map;
    S.layers.forEach((l) => map.removeLayer(l)); S.layers = [];
    const raw = c.location || {};
    const loc = raw.type ? raw : (raw.lon !== undefined && raw.lon !== null ? { type: "Point", coordinates: [raw.lon, raw.lat] } : null);
    let bounds = null;
    const area = c.community || c.place;
    if (!map._loaded) map.setView(loc && loc.type === "Point" ? [loc.coordinates[1], loc.coordinates[0]] : [39.9, 116.4], 12);  // vector layers need a view
    if (area) {
      const fc = await getJSON("/api/v1/map/places?level=Grid&within=" + encodeURIComponent(area));
      const layer = L.geoJSON(fc, { style: (f) => ({ color: "#5cc0ff", weight: f.id === c.place ? 3 : 1, fillOpacity: f.id === c.place ? 0.35 : 0.1 }) }).addTo(map);
      S.layers.push(layer);
      if (layer.getBounds().isValid()) bounds = layer.getBounds();
    }
    if (!area && loc && loc.type === "Point") {  // no place recorded: show the cells around the point for context
      const fc = await getJSON("/api/v1/map/places?level=Grid");
      const layer = L.geoJSON(fc, { style: { color: "#5cc0ff", weight: 1, fillOpacity: 0.08 } }).addTo(map);
      S.layers.push(layer);
    }
    if (loc && loc.type === "Point") {
      const ll = [loc.coordinates[1], loc.coordinates[0]];
      S.layers.push(L.circleMarker(ll, { radius: 9, color: c.overdue ? "#ff3b3b" : "#ff8c1a", weight: 3, fillOpacity: 0.6 }).addTo(map));
      bounds = bounds ? bounds.extend(ll) : L.latLngBounds([ll, ll]);
    }
    if (bounds && !area) map.setView(bounds.getCenter(), 12.5);
    else if (bounds) map.fitBounds(bounds, { padding: [30, 30], maxZoom: 15 }); else map.setView([39.9, 116.4], 10);
  }

  document.getElementById("lang").addEventListener("click", () => {
    window.lang = window.lang === "zh" ? "en" : "zh"; localStorage.setItem("citybrain.lang", window.lang); applyLabels(); load();
  });
  applyLabels(); load();
})();
