// Canvas layers for thousands of grid cells and sensors: one canvas, redrawn on move/zoom.
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
      map.getPanes().overlayPane.appendChild(this._canvas);
      map.on("moveend zoomend resize viewreset", this._reset, this);
      this._reset();
    },
    onRemove(map) {
      L.DomUtil.remove(this._canvas);
      map.off("moveend zoomend resize viewreset", this._reset, this);
    },
    _reset() {
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
    px(lon, lat) { return this._map.latLngToContainerPoint([lat, lon]); },
  });

  // Polygons with a fill colour per feature (grid cells coloured by risk level).
  L.CellsLayer = CanvasLayer.extend({
    initialize(features, colorOf) {
      this.cells = features.map((f) => ({ id: f.id, props: f.properties, rings: rings(f.geometry), bbox: bbox(f.geometry) }));
      this.colorOf = colorOf;
    },
    draw(ctx) {
      const b = this._map.getBounds();
      ctx.lineWidth = 0.4; ctx.strokeStyle = "#0b1526"; ctx.globalAlpha = 0.6;
      for (const c of this.cells) {
        if (c.bbox[2] < b.getWest() || c.bbox[0] > b.getEast() || c.bbox[3] < b.getSouth() || c.bbox[1] > b.getNorth()) continue;
        ctx.beginPath();
        for (const ring of c.rings) {
          ring.forEach(([lon, lat], i) => { const p = this.px(lon, lat); if (i) ctx.lineTo(p.x, p.y); else ctx.moveTo(p.x, p.y); });
          ctx.closePath();
        }
        ctx.fillStyle = this.colorOf(c.id);
        ctx.fill(); ctx.stroke();
      }
      ctx.globalAlpha = 1;
    },
    at(latlng) {
      const x = latlng.lng, y = latlng.lat;
      for (const c of this.cells) {
        if (x < c.bbox[0] || x > c.bbox[2] || y < c.bbox[1] || y > c.bbox[3]) continue;
        if (c.rings.some((r) => inside(x, y, r))) return c;
      }
      return null;
    },
    bounds() {
      if (!this.cells.length) return null;
      let w = 180, s = 90, e = -180, n = -90;
      for (const c of this.cells) { w = Math.min(w, c.bbox[0]); s = Math.min(s, c.bbox[1]); e = Math.max(e, c.bbox[2]); n = Math.max(n, c.bbox[3]); }
      return L.latLngBounds([s, w], [n, e]);
    },
  });

  // Points (sensors): small circles, nearest one found on click.
  L.PointsLayer = CanvasLayer.extend({
    initialize(features) {
      this.points = features.map((f) => ({ id: f.id, props: f.properties, lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] }));
    },
    draw(ctx) {
      const b = this._map.getBounds();
      const r = this._map.getZoom() >= 13 ? 4 : 2.5;
      ctx.fillStyle = "#4fb3ff"; ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1;
      ctx.beginPath();
      for (const p of this.points) {
        if (!b.contains([p.lat, p.lon])) continue;
        const q = this.px(p.lon, p.lat);
        ctx.moveTo(q.x + r, q.y); ctx.arc(q.x, q.y, r, 0, 2 * Math.PI);
      }
      ctx.fill(); ctx.stroke();
    },
    nearest(latlng, maxPx) {
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

  function rings(g) {
    if (g.type === "Polygon") return g.coordinates;
    if (g.type === "MultiPolygon") return g.coordinates.flat();
    return [];
  }
  function bbox(g) {
    let w = 180, s = 90, e = -180, n = -90;
    for (const ring of rings(g)) for (const [x, y] of ring) { w = Math.min(w, x); s = Math.min(s, y); e = Math.max(e, x); n = Math.max(n, y); }
    return [w, s, e, n];
  }
  function inside(x, y, ring) {
    let ok = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) ok = !ok;
    }
    return ok;
  }
})();
