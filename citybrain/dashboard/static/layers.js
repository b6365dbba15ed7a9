// Canvas layers for thousands of grid cells and sensors: one canvas per layer, redrawn on move/zoom.
// Leaflet creates one object per vector feature, which is too slow for 5,000 cells and 10,000 sensors;
// these layers keep plain arrays and draw them in a single pass.
(function () {
  "use strict";

  const CanvasLayer = L.Layer.extend({
    onAdd(map) {
      this._map = map;
      this._canvas = L.DomUtil.create("canvas", "cb-canvas-layer");
      this._canvas.style.position = "absolute";
      this._canvas.style.pointerEvents = "none";
      map.getPanes()[this.options.pane || "overlayPane"].appendChild(this._canvas);
      map.on("moveend zoomend resize viewreset", this._reset, this);
      this._reset();
    },
    onRemove(map) {
      L.DomUtil.remove(this._canvas);
      map.off("moveend zoomend resize viewreset", this._reset, this);
      this._map = null;
    },
    _reset() {
      if (!this._map) return;
      const size = this._map.getSize();
      const topLeft = this._map.containerPointToLayerPoint([0, 0]);
      L.DomUtil.setPosition(this._canvas, topLeft);
      const ratio = window.devicePixelRatio || 1;
      this._canvas.width = size.x * ratio; this._canvas.height = size.y * ratio;
      this._canvas.style.width = size.x + "px"; this._canvas.style.height = size.y + "px";
      const ctx = this._canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, size.x, size.y);
      this.draw(ctx);
    },
    redraw() { if (this._map) this._reset(); },
    visible() { return !!this._map; },
    px(lon, lat) { return this._map.latLngToContainerPoint([lat, lon]); },
    _path(ctx, rings) {
      for (const ring of rings) {
        ring.forEach(([lon, lat], i) => { const p = this.px(lon, lat); if (i) ctx.lineTo(p.x, p.y); else ctx.moveTo(p.x, p.y); });
        ctx.closePath();
      }
    },
    _inView(bb, b) { return !(bb[2] < b.getWest() || bb[0] > b.getEast() || bb[3] < b.getSouth() || bb[1] > b.getNorth()); },
  });

  // Polygons filled by a colour per feature (grid cells coloured by risk level); `alphaOf` gives the opacity.
  L.CellsLayer = CanvasLayer.extend({
    initialize(features, colorOf, alphaOf) {
      this.cells = features.map((f) => ({ id: f.id, props: f.properties, rings: rings(f.geometry), bbox: bbox(f.geometry) }));
      this.byId = new Map(this.cells.map((c) => [c.id, c]));
      this.colorOf = colorOf;
      this.alphaOf = alphaOf || (() => 0.6);
      this.highlight = null;
      this.haloOf = null;
    },
    draw(ctx) {
      const b = this._map.getBounds();
      const z = this._map.getZoom();
      ctx.lineWidth = z >= 13 ? 0.8 : 0.4; ctx.strokeStyle = "rgba(8,16,32,0.9)";
      for (const c of this.cells) {
        if (!this._inView(c.bbox, b)) continue;
        ctx.beginPath(); this._path(ctx, c.rings);
        ctx.globalAlpha = this.alphaOf(c.id);
        ctx.fillStyle = this.colorOf(c.id);
        ctx.fill();
        ctx.globalAlpha = 1; ctx.stroke();
      }
      // at city scale a cell is a few pixels: ring every cell at risk so that it shows on a wall screen
      if (z < 13 && this.haloOf) {
        const ringed = this.cells.filter((c) => this.haloOf(c.id) && this._inView(c.bbox, b));
        ringed.sort((x, y) => (this.rankOf ? this.rankOf(x.id) - this.rankOf(y.id) : 0));  // the worst drawn last, on top
        for (const c of ringed) {
          const color = this.haloOf(c.id);
          const p = this.px((c.bbox[0] + c.bbox[2]) / 2, (c.bbox[1] + c.bbox[3]) / 2);
          ctx.beginPath(); ctx.arc(p.x, p.y, 11, 0, 2 * Math.PI);
          ctx.globalAlpha = 0.25; ctx.fillStyle = color; ctx.fill();
          ctx.globalAlpha = 1; ctx.lineWidth = 2.5; ctx.strokeStyle = color; ctx.stroke();
        }
      }
      const h = this.highlight && this.byId.get(this.highlight);
      if (h) { ctx.beginPath(); this._path(ctx, h.rings); ctx.lineWidth = 3; ctx.strokeStyle = "#ffffff"; ctx.stroke(); }
    },
    at(latlng) {
      const x = latlng.lng, y = latlng.lat;
      for (const c of this.cells) {
        if (x < c.bbox[0] || x > c.bbox[2] || y < c.bbox[1] || y > c.bbox[3]) continue;
        if (c.rings.some((r) => inside(x, y, r))) return c;
      }
      return null;
    },
    bounds() { return boundsOf(this.cells); },
  });

  // Outlines of districts or communities with their names, shown from `labelZoom` on.
  L.OutlineLayer = CanvasLayer.extend({
    initialize(features, options) {
      this.options = Object.assign({ color: "#ffffff", weight: 2, dash: null, labelZoom: 0, labelMaxZoom: 30,
        font: "600 13px system-ui, sans-serif", labelOf: (f) => f.properties.name || f.id, styleOf: null }, options);
      this.areas = features.map((f) => ({ id: f.id, props: f.properties, rings: rings(f.geometry), bbox: bbox(f.geometry),
        label: labelPoint(f.geometry), feature: f }));
    },
    draw(ctx) {
      const b = this._map.getBounds();
      const z = this._map.getZoom();
      const o = this.options;
      for (const a of this.areas) {
        if (!this._inView(a.bbox, b)) continue;
        const st = (o.styleOf && o.styleOf(a)) || {};
        ctx.beginPath(); this._path(ctx, a.rings);
        if (st.fill) { ctx.globalAlpha = st.fillOpacity || 0.15; ctx.fillStyle = st.fill; ctx.fill(); ctx.globalAlpha = 1; }
        ctx.setLineDash(st.dash || o.dash || []);
        ctx.lineWidth = st.weight || o.weight; ctx.strokeStyle = st.color || o.color; ctx.stroke();
      }
      ctx.setLineDash([]);
      if (z < o.labelZoom || z > o.labelMaxZoom) return;
      ctx.font = o.font; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.lineJoin = "round"; ctx.lineWidth = 3.5; ctx.strokeStyle = "rgba(6,12,24,0.92)"; ctx.fillStyle = o.color;
      const placed = [];
      for (const a of this.areas) {
        if (!a.label || !b.contains([a.label[1], a.label[0]])) continue;
        const p = o.labelAt === "top" ? this.px(a.label[0], a.bbox[3]) : this.px(a.label[0], a.label[1]);
        if (o.labelAt === "top") p.y -= 11;
        const text = o.labelOf(a.feature);
        const w = ctx.measureText(text).width;
        const box = [p.x - w / 2 - 2, p.y - 9, p.x + w / 2 + 2, p.y + 9];
        if (placed.some((q) => !(box[2] < q[0] || box[0] > q[2] || box[3] < q[1] || box[1] > q[3]))) continue; // no overlaps
        placed.push(box);
        if (o.pill) {
          ctx.fillStyle = o.pill; ctx.beginPath(); ctx.rect(box[0] - 3, box[1] + 1, box[2] - box[0] + 6, box[3] - box[1] - 2); ctx.fill();
          ctx.fillStyle = o.color; ctx.fillText(text, p.x, p.y);
        } else { ctx.strokeText(text, p.x, p.y); ctx.fillText(text, p.x, p.y); }
      }
    },
    bounds() { return boundsOf(this.areas); },
  });

  // Points: sensors, open cases, resources. `styleOf(point)` gives {color, shape, r, stroke}; nearest one found on click.
  L.PointsLayer = CanvasLayer.extend({
    initialize(features, styleOf) {
      this.points = features.map((f) => ({ id: f.id, props: f.properties, lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] }));
      this.styleOf = styleOf || (() => ({ color: "#4fb3ff" }));
    },
    draw(ctx) {
      const b = this._map.getBounds();
      const z = this._map.getZoom();
      const scale = z >= 14 ? 1.5 : z >= 12 ? 1.2 : 1;
      // group by style so that 10,000 points are drawn with a handful of fill calls
      const groups = new Map();
      for (const p of this.points) {
        if (!b.contains([p.lat, p.lon])) continue;
        const st = this.styleOf(p);
        const key = [st.color, st.shape || "circle", st.r || 3, st.stroke || "#0b1526"].join("|");
        let g = groups.get(key);
        if (!g) { g = { st, pts: [] }; groups.set(key, g); }
        g.pts.push(this.px(p.lon, p.lat));
      }
      for (const { st, pts } of groups.values()) {
        const r = (st.r || 3) * scale;
        ctx.fillStyle = st.color; ctx.strokeStyle = st.stroke || "#0b1526"; ctx.lineWidth = st.lineWidth || 1.2;
        ctx.beginPath();
        for (const q of pts) shape(ctx, st.shape || "circle", q.x, q.y, r);
        ctx.fill(); ctx.stroke();
      }
    },
    nearest(latlng, maxPx) {
      if (!this._map) return null;
      const c = this._map.latLngToContainerPoint(latlng);
      let best = null, bestD = maxPx * maxPx;
      for (const p of this.points) {
        const q = this.px(p.lon, p.lat);
        const d = (q.x - c.x) ** 2 + (q.y - c.y) ** 2;
        if (d < bestD) { bestD = d; best = p; }
      }
      return best;
    },
  });

  // A faint latitude/longitude graticule, so that an offline map without tiles still reads as a map.
  L.GraticuleLayer = CanvasLayer.extend({
    initialize(options) { this.options = Object.assign({ pane: "tilePane" }, options); },
    draw(ctx) {
      const b = this._map.getBounds();
      const span = Math.max(b.getEast() - b.getWest(), 1e-6);
      const steps = [1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005];
      const size = this._map.getSize();
      const step = steps.find((s) => span / s >= 6 || (s / span) * size.x < 110) || 0.005;
      ctx.strokeStyle = "rgba(120,150,200,0.12)"; ctx.lineWidth = 1;
      ctx.fillStyle = "rgba(169,184,206,0.55)"; ctx.font = "11px system-ui, sans-serif";
      const digits = step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3;
      ctx.beginPath();
      for (let x = Math.ceil(b.getWest() / step) * step; x <= b.getEast(); x += step) {
        const p = this.px(x, b.getSouth()); ctx.moveTo(Math.round(p.x) + 0.5, 0); ctx.lineTo(Math.round(p.x) + 0.5, size.y);
        ctx.fillText(x.toFixed(digits) + "°E", p.x + 3, 12);
      }
      for (let y = Math.ceil(b.getSouth() / step) * step; y <= b.getNorth(); y += step) {
        const p = this.px(b.getWest(), y);
        if (p.y < 22) continue;
        ctx.moveTo(0, Math.round(p.y) + 0.5); ctx.lineTo(size.x, Math.round(p.y) + 0.5);
        ctx.fillText(y.toFixed(digits) + "°N", size.x - 52, p.y - 3);
      }
      ctx.stroke();
    },
  });

  function shape(ctx, kind, x, y, r) {
    if (kind === "square") { ctx.moveTo(x - r, y - r); ctx.rect(x - r, y - r, 2 * r, 2 * r); }
    else if (kind === "diamond") { ctx.moveTo(x, y - r * 1.3); ctx.lineTo(x + r * 1.3, y); ctx.lineTo(x, y + r * 1.3); ctx.lineTo(x - r * 1.3, y); ctx.closePath(); }
    else if (kind === "triangle") { ctx.moveTo(x, y - r * 1.4); ctx.lineTo(x + r * 1.25, y + r * 0.9); ctx.lineTo(x - r * 1.25, y + r * 0.9); ctx.closePath(); }
    else { ctx.moveTo(x + r, y); ctx.arc(x, y, r, 0, 2 * Math.PI); }
  }

  function rings(g) {
    if (!g) return [];
    if (g.type === "Polygon") return g.coordinates;
    if (g.type === "MultiPolygon") return g.coordinates.flat();
    return [];
  }
  function bbox(g) {
    let w = 180, s = 90, e = -180, n = -90;
    for (const ring of rings(g)) for (const [x, y] of ring) { w = Math.min(w, x); s = Math.min(s, y); e = Math.max(e, x); n = Math.max(n, y); }
    return [w, s, e, n];
  }
  function boundsOf(items) {
    if (!items.length) return null;
    let w = 180, s = 90, e = -180, n = -90;
    for (const c of items) { w = Math.min(w, c.bbox[0]); s = Math.min(s, c.bbox[1]); e = Math.max(e, c.bbox[2]); n = Math.max(n, c.bbox[3]); }
    return w <= e ? L.latLngBounds([s, w], [n, e]) : null;
  }
  // label point: the area-weighted centroid of the largest outer ring (a district may be several blocks)
  function labelPoint(g) {
    const polys = !g ? [] : g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    let best = null, bestA = 0;
    for (const poly of polys) {
      const ring = poly[0]; let a = 0, cx = 0, cy = 0;
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
        a += f; cx += (ring[j][0] + ring[i][0]) * f; cy += (ring[j][1] + ring[i][1]) * f;
      }
      if (Math.abs(a) > bestA && a !== 0) { bestA = Math.abs(a); best = [cx / (3 * a), cy / (3 * a)]; }
    }
    return best;
  }
  function inside(x, y, ring) {
    let ok = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) ok = !ok;
    }
    return ok;
  }
  L.cbInside = inside;
})();
