// The trail map's page code. Python pushes the basemap and the trail in with
// runJavaScript (maps/trail_map.py); the page answers with console.debug("emmap:" +
// JSON), which maps/web.py turns into Qt signals. The trail document comes from
// maps/trail.py: columns of points, each with `minz`, the lowest zoom that draws it;
// show() gets one level, drawn at every zoom, refine() all of them and the speeds.
"use strict";

var EM = (function () {
  var ACCURACY_ZOOM = 15; // accuracy circles from this zoom on, for points in view
  var COARSE_ZOOM = 12; // coarse fixes (not joined into the line) drawn from this zoom on
  var MAX_CIRCLES = 800; // more would slow a software-rendered canvas, and say nothing more
  var MAX_NUMBERS = 400; // point numbers are DOM labels: at most this many at once
  var REPORT_EVERY_MS = 250; // replay positions sent to Python at most this often
  var HOVER_PX = 10; // how near the pointer a point must be to be described
  var FIT_SECONDS = 60; // "fit" replays the whole trail in this long
  var SEA = "#b9d3e0";
  var MAX_LISTED = 10; // stops listed in the tooltip of a ring several share
  var PIECE = 500, JOIN = "bevel";  // bevel: a software canvas joins thousands of vertices faster

  var map, canvas, topCanvas, outlineCanvas, controls = {};
  var doc = null, segOf = null, inCurfew = null, drawnIdx = new Int32Array(0);
  var layers = {trail: null, curfew: null, detail: null, fixed: null, stops: null, marker: null,
    hover: null};
  var drawn = {vertices: 0, zoom: null, lines: 0, circles: 0, numbers: 0, rings: 0};
  var numbersOn = false, follow = false;
  var replay = {pos: null, speed: 1, playing: false, last: 0, reported: 0};

  function report(event, detail) {
    console.debug("emmap:" + JSON.stringify({event: event, detail: detail}));
  }

  // After the next frame is painted: rAF runs before a paint, so a second one
  // runs after it.
  function afterPaint(fn) {
    requestAnimationFrame(function () { requestAnimationFrame(fn); });
  }

  var clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    timeZoneName: "short"});

  // "2026-11-03 14:02:11 GMT", UK time; maps/trail_map.py's format_time says the same.
  function formatTime(ts) {
    var p = {};
    clock.formatToParts(new Date(ts * 1000)).forEach(function (x) { p[x.type] = x.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" +
      p.second + " " + p.timeZoneName;
  }

  function formatDuration(s) {
    var h = Math.floor(s / 3600), m = Math.round((s - h * 3600) / 60);
    return h ? h + " h " + m + " min" : m + " min";
  }

  var COMPASS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];

  function control(position, className, label) {
    var c = L.control({position: position});
    c.onAdd = function () {
      var div = L.DomUtil.create("div", "em-control " + className);
      div.setAttribute("role", "status");
      if (label) div.setAttribute("aria-label", label);
      L.DomEvent.disableClickPropagation(div);
      return div;
    };
    c.addTo(map);
    return c.getContainer();
  }

  function start(leafletMap) {
    map = leafletMap;
    map.getContainer().style.background = SEA;
    map.createPane("outline").style.zIndex = 150; // under the tiles: tiles cover it where they exist
    outlineCanvas = L.canvas({pane: "outline"});
    canvas = L.canvas({padding: 0.1});
    map.createPane("em-top").style.zIndex = 620; // stops and the replay marker, over the trail
    topCanvas = L.canvas({pane: "em-top", padding: 0.3});
    layers.fixed = L.layerGroup().addTo(map);
    layers.detail = L.layerGroup().addTo(map);
    controls.basemap = control("bottomleft", "em-basemap", "Basemap");
    controls.replay = control("topright", "em-replay", "Replay");
    controls.message = L.DomUtil.create("div", "em-message", map.getContainer());
    controls.message.setAttribute("role", "status");
    controls.legend = control("bottomright", "em-legend", "Legend");
    // The key folds away: on a map in the wearer view it would cover most of it.
    controls.legend.innerHTML =
      '<details' + (map.getSize().x >= 900 ? ' open' : '') + '><summary>Key</summary>' +
      '<div><span class="em-key em-key-trail"></span>Trail</div>' +
      '<div><span class="em-key em-key-curfew"></span>Trail in curfew hours (dashed)</div>' +
      '<div><span class="em-key em-key-gap"></span>Gap: no points (dotted)</div>' +
      '<div><span class="em-key"><span class="em-key-stop"></span></span>Stop (ring): its dwell time on hover</div>' +
      '<div><span class="em-key em-home">⌂</span>Curfew address</div>' +
      '<div><span class="em-key em-key-incl"></span>Inclusion zone (solid edge)</div>' +
      '<div><span class="em-key em-key-excl"></span>Exclusion zone (dashed edge)</div>' +
      '<div><span class="em-key em-key-coarse"></span>Coarse fix (cell tower): not joined to the trail</div>' +
      '</details><div class="em-note"></div>';
    map.on("zoomend", function () { if (doc) redraw(); });
    map.on("moveend", function () { if (doc) drawDetail(); });
    map.on("mousemove", throttle(function (e) { hover(e, false); }, 60));
    map.on("click", function (e) { hover(e, true); });
    message("Loading the trail…");
  }

  function throttle(fn, ms) {
    var last = 0;
    return function (e) {
      var now = performance.now();
      if (now - last >= ms) { last = now; fn(e); }
    };
  }

  function message(text) {
    controls.message.textContent = text || "";
    controls.message.style.display = text ? "block" : "none";
  }

  // The basemap: the Natural Earth outline always, under the offline tiles if any.
  function basemap(description, tiles) {
    controls.basemap.textContent = description;
    if (tiles) {
      L.tileLayer(tiles.url, {minNativeZoom: tiles.min, maxNativeZoom: tiles.max,
        minZoom: 3, maxZoom: 19}).addTo(map);
    }
    fetch("basemap/uk-outline.geojson").then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (outline) {
      L.geoJSON(outline, {pane: "outline", renderer: outlineCanvas, interactive: false,
        style: {color: "#6b7b86", weight: 1, fillColor: "#f4f1ea", fillOpacity: 1}}).addTo(map);
      afterPaint(function () { report("basemap", description); });
    }).catch(function (err) {
      report("failed", "the basemap outline could not load: " + err);
    });
  }

  function clear() {
    doc = null;
    pause();
    ["trail", "curfew", "marker", "hover"].forEach(function (k) {
      if (layers[k]) { map.removeLayer(layers[k]); layers[k] = null; }
    });
    layers.fixed.clearLayers();
    layers.detail.clearLayers();
    drawnIdx = new Int32Array(0);
    drawn = {vertices: 0, zoom: map.getZoom(), lines: 0, circles: 0, numbers: 0, rings: 0};
    controls.replay.textContent = "";
    controls.replay.style.display = "none";
    message("");
  }

  // A column maps/trail.py packed: integers, as a typed array's bytes in base64, over
  // scale. Cheaper to decode than a JSON array of 43,200 numbers.
  function unpack(c) {
    var s = atob(c.data), bytes = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    var ints = new window[c.type](bytes.buffer);
    if (c.scale === 1) return ints;
    var out = new Float64Array(ints.length);
    for (var k = 0; k < ints.length; k++) out[k] = ints[k] / c.scale;
    return out;
  }

  function show(d) {
    clear();
    ["t", "lat", "lon", "acc", "src", "minz", "coarse"].forEach(function (k) { d[k] = unpack(d[k]); });
    var n = d.t.length;
    if (!n) {
      message("No points in this window");
      afterPaint(function () { report("painted", {vertices: 0, zoom: map.getZoom(), lines: 0}); });
      return;
    }
    doc = d;
    segOf = new Int32Array(n);
    d.segments.forEach(function (s, k) { segOf.fill(k, s[0], s[1]); });
    inCurfew = new Uint8Array(n);
    d.curfew.forEach(function (r) { inCurfew.fill(1, r[0], r[1]); });
    drawFixed();
    replay.pos = d.t0;
    var zoom = map.getZoom();
    zoomToTrail(); // redraws on zoomend when the zoom changes
    if (map.getZoom() === zoom) redraw();
    seek(d.t0, true);
  }

  // The other zoom levels and each point's speed and bearing: a redraw only if the
  // map is not at the zoom show() was simplified for (zoomed since, or fitted otherwise).
  function refine(d) {
    if (!doc) return;
    doc.minz = d.minz;
    doc.speed = d.speed;
    doc.bearing = d.bearing;
    if (zoomLevel() !== doc.zoom) redraw();
  }

  function latlng(i) { return [doc.lat[i], doc.lon[i]]; }

  // What does not change with the zoom: gaps, the curfew address, zones, and the
  // group that holds the stops. Gaps and stops (a month has hundreds) share one
  // tooltip, written when shown.
  function drawFixed() {
    var g = layers.fixed;
    var gaps = L.featureGroup().addTo(g), stops = layers.stops = L.featureGroup().addTo(g);
    doc.segments.slice(1).forEach(function (seg, k) {
      var a = doc.segments[k][1] - 1, b = seg[0];
      var line = L.polyline([latlng(a), latlng(b)], {renderer: canvas, color: "#59636b",
        weight: 2, opacity: 0.6, dashArray: "2 6"});
      line.text = function () {
        return "Gap: no points for " + formatDuration(doc.t[b] - doc.t[a]) + ", " +
          formatTime(doc.t0 + doc.t[a]) + " to " + formatTime(doc.t0 + doc.t[b]);
      };
      gaps.addLayer(line);
    });
    [gaps, stops].forEach(function (group) {
      group.bindTooltip("", {sticky: true});
      group.on("tooltipopen", function (e) { e.tooltip.setContent(e.layer.text()); });
    });
    doc.zones.forEach(function (z) {
      L.circle([z.lat, z.lon], {radius: z.radius, renderer: canvas, weight: 2,
        color: z.exclusion ? "#8a1c1c" : "#1c5e8a", dashArray: z.exclusion ? "8 6" : null,
        fillOpacity: 0.05})
        .bindTooltip((z.exclusion ? "Exclusion zone: " : "Inclusion zone: ") + z.name,
          {permanent: true, direction: "top", className: "em-zone-label"})
        .addTo(g);
    });
    if (doc.home) {
      L.marker(doc.home, {keyboard: false, title: "Curfew address", zIndexOffset: 1000,
        icon: L.divIcon({className: "em-home", html: "⌂", iconSize: [22, 22]})})
        .bindTooltip("Curfew address" + (doc.curfewHours ? ", curfew " + doc.curfewHours : ""))
        .addTo(g);
    }
  }

  function stopText(s) {
    return "Stop of " + formatDuration(s[3] - s[2]) + ": " + formatTime(s[2]) +
      " to " + formatTime(s[3]) + " (points " + (s[4] + 1) + "–" + (s[5] + 1) + ")";
  }

  // Stops on the canvas: a thick ring each, but one for the stops that fall on the
  // same pixel at this zoom, its tooltip listing them. A month has a thousand, most
  // at home and at work, and a software canvas took about 80 ms to paint them one
  // over another; the picture is the same (the last one was on top).
  function drawStops() {
    var z = map.getZoom(), at = {};
    layers.stops.clearLayers();
    doc.stops.forEach(function (s) {
      var p = map.project([s[0], s[1]], z).round(), key = p.x + "," + p.y;
      (at[key] = at[key] || []).push(s);
    });
    Object.keys(at).forEach(function (key) {
      var here = at[key], last = here[here.length - 1];
      var ring = L.circleMarker([last[0], last[1]], {renderer: topCanvas, radius: 7,
        color: "#b25b00", weight: 4, fillColor: "#fff", fillOpacity: 1});
      ring.text = function () {
        if (here.length === 1) return stopText(last);
        return here.length + " stops here:<br>" + here.slice(0, MAX_LISTED).map(stopText).join("<br>") +
          (here.length > MAX_LISTED ? "<br>and " + (here.length - MAX_LISTED) + " more" : "");
      };
      layers.stops.addLayer(ring);
    });
    drawn.rings = Object.keys(at).length;
  }

  function zoomLevel() {
    return Math.max(doc.minZoom, Math.min(doc.maxZoom, Math.round(map.getZoom())));
  }

  // The trail at this zoom: each segment's points with minz <= zoom, one
  // multi-polyline for the trail and one, dashed, for the parts in curfew hours.
  function redraw() {
    var z = zoomLevel(), minz = doc.minz, idx = [], lines = [], curfewLines = [];
    doc.segments.forEach(function (s) {
      var line = [], cur = null;
      for (var i = s[0]; i < s[1]; i++) {
        if (minz[i] > z) continue;
        idx.push(i);
        var p = latlng(i);
        line.push(p);
        if (inCurfew[i]) {
          if (!cur) { cur = line.length > 1 ? [line[line.length - 2]] : []; curfewLines.push(cur); }
          cur.push(p);
        } else if (cur) {
          cur.push(p);
          cur = null;
        }
      }
      lines.push(line);
    });
    drawnIdx = Int32Array.from(idx);
    if (layers.trail) map.removeLayer(layers.trail);
    if (layers.curfew) map.removeLayer(layers.curfew);
    // smoothFactor 0: the points are simplified already, per zoom, in Python. Long
    // lines go in pieces: a software canvas fills one huge self-crossing stroke far
    // more slowly than many short ones.
    var style = {renderer: canvas, color: "#1f4e9c", weight: 3, smoothFactor: 0,
      interactive: false, lineJoin: JOIN};
    layers.trail = L.layerGroup(pieces(lines).map(function (p) { return L.polyline(p, style); }))
      .addTo(map);
    layers.curfew = L.layerGroup(pieces(curfewLines).map(function (p) {
      return L.polyline(p, {renderer: canvas, color: "#6a1b9a", weight: 5, dashArray: "10 6",
        smoothFactor: 0, interactive: false, lineJoin: JOIN});
    })).addTo(map);
    drawStops();
    drawn.vertices = idx.length;
    drawn.zoom = map.getZoom();
    drawn.lines = lines.length;
    drawDetail();
    var painted = {vertices: drawn.vertices, zoom: drawn.zoom, lines: drawn.lines};
    afterPaint(function () { report("painted", painted); });
  }

  function pieces(lines) {
    var out = [];
    lines.forEach(function (line) {
      for (var k = 0; k < line.length - 1; k += PIECE - 1) out.push(line.slice(k, k + PIECE));
      if (line.length === 1) out.push(line);
    });
    return out;
  }

  // The drawn points inside the view (a little beyond), at most `limit` of them.
  // The points of `among` (the line's drawn vertices unless given) in view, at most limit.
  function inView(limit, among) {
    var b = map.getBounds().pad(0.1), out = [], idx = among || drawnIdx;
    var s = b.getSouth(), n = b.getNorth(), w = b.getWest(), e = b.getEast();
    for (var k = 0; k < idx.length && out.length < limit; k++) {
      var i = idx[k], la = doc.lat[i], lo = doc.lon[i];
      if (la >= s && la <= n && lo >= w && lo <= e) out.push(i);
    }
    return out;
  }

  // Accuracy circles and point numbers: only for the points in view.
  function drawDetail() {
    layers.detail.clearLayers();
    drawn.circles = drawn.numbers = 0;
    var note = "";
    if (map.getZoom() >= ACCURACY_ZOOM) {
      inView(MAX_CIRCLES).forEach(function (i) {
        // Outlines only: hundreds of filled circles, one over another, hide the trail.
        L.circle(latlng(i), {radius: doc.acc[i], renderer: canvas, weight: 1, color: "#1f4e9c",
          opacity: 0.3, fill: false, interactive: false}).addTo(layers.detail);
        drawn.circles++;
      });
    }
    drawn.coarse = 0;
    coarseInView().forEach(function (i) {
      L.circleMarker(latlng(i), {renderer: canvas, radius: 4, color: "#5a5a5a", weight: 1.5,
        fill: false, interactive: false}).addTo(layers.detail);
      if (map.getZoom() >= ACCURACY_ZOOM) {
        L.circle(latlng(i), {radius: doc.acc[i], renderer: canvas, weight: 1, color: "#5a5a5a",
          opacity: 0.5, dashArray: "2 5", fill: false, interactive: false}).addTo(layers.detail);
      }
      drawn.coarse++;
    });
    if (numbersOn) {
      var shown = inView(MAX_NUMBERS + 1);
      if (shown.length > MAX_NUMBERS) {
        note = "Point numbers: zoom in to see them (more than " + MAX_NUMBERS + " in view)";
      } else {
        shown.forEach(function (i) {
          L.marker(latlng(i), {keyboard: false, interactive: false,
            icon: L.divIcon({className: "em-number", html: String(i + 1), iconSize: null})})
            .addTo(layers.detail);
          drawn.numbers++;
        });
      }
    }
    controls.legend.querySelector(".em-note").textContent = note;
  }

  function describe(i) {
    var speed = doc.speed && doc.speed[i], bearing = doc.bearing && doc.bearing[i];
    var lines = ["Point " + (i + 1).toLocaleString("en-GB") + " of " +
      doc.t.length.toLocaleString("en-GB"), formatTime(doc.t0 + doc.t[i]),
      "Accuracy " + doc.acc[i] + " m (" + doc.sources[doc.src[i]] + ")",
      speed === undefined ? "Speed and direction: being worked out" :
      speed === null ? "Speed and direction: not known (first point after a gap)" :
        "Speed " + (speed * 3.6).toFixed(1) + " km/h, heading " +
        COMPASS[Math.round(bearing / 45) % 8] + " (" + bearing + "°)"];
    if (inCurfew[i]) lines.push("In curfew hours");
    return lines.join("<br>");
  }

  // Coarse fixes are not in the line: drawn, and hovered, as points of their own.
  function coarseInView() {
    return map.getZoom() >= COARSE_ZOOM ? inView(MAX_CIRCLES, doc.coarse) : [];
  }

  function nearest(e) {
    var best = -1, bestD = HOVER_PX * HOVER_PX, p = e.containerPoint;
    inView(drawnIdx.length).concat(coarseInView()).forEach(function (i) {
      var q = map.latLngToContainerPoint(latlng(i)), d = (q.x - p.x) * (q.x - p.x) + (q.y - p.y) * (q.y - p.y);
      if (d <= bestD) { bestD = d; best = i; }
    });
    return best;
  }

  function hover(e, chosen) {
    if (!doc) return;
    var i = nearest(e);
    if (layers.hover) { map.removeLayer(layers.hover); layers.hover = null; }
    if (i < 0) return;
    layers.hover = L.circleMarker(latlng(i), {renderer: topCanvas, radius: 6, color: "#000",
      weight: 2, fillOpacity: 0, interactive: false})
      .bindTooltip(describe(i), {permanent: true, direction: "auto", offset: [8, 0]})
      .addTo(map);
    if (chosen) report("chosen", i);
  }

  function zoomToTrail() {
    if (!doc) return;
    // maps/trail.py's fit_zoom says where this lands, to simplify for it first.
    map.fitBounds(doc.bounds, {animate: false, padding: [20, 20], maxZoom: 16});
  }

  // Replay: a marker moving along the trail's own time, `speed` seconds of trail a second.
  function indexAt(pos) { // the last point at or before pos (seconds after t0)
    var lo = 0, hi = doc.t.length - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (doc.t[mid] <= pos) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  function place(report_now) {
    var rel = replay.pos - doc.t0, i = indexAt(rel), j = Math.min(i + 1, doc.t.length - 1);
    var p = latlng(i), gap = segOf[i] !== segOf[j];
    if (j > i && !gap && doc.t[j] > doc.t[i]) {
      var f = Math.min(1, Math.max(0, (rel - doc.t[i]) / (doc.t[j] - doc.t[i])));
      p = [doc.lat[i] + f * (doc.lat[j] - doc.lat[i]), doc.lon[i] + f * (doc.lon[j] - doc.lon[i])];
    }
    if (!layers.marker) {
      layers.marker = L.circleMarker(p, {renderer: topCanvas, radius: 8, color: "#111", weight: 3,
        fillColor: "#ffd400", fillOpacity: 1, interactive: false}).addTo(map);
    } else {
      layers.marker.setLatLng(p);
    }
    layers.marker.bringToFront(); // over the stop rings, which a redraw puts back on top
    var curfew = !!inCurfew[i];
    controls.replay.style.display = "block";
    controls.replay.textContent = "Replay " + formatTime(replay.pos) +
      (replay.playing ? " · " + speedLabel() : " · paused") +
      (gap && rel > doc.t[i] ? " · no signal" : "") + (curfew ? " · in curfew" : "");
    if (follow && !map.getBounds().pad(-0.2).contains(p)) map.panTo(p, {animate: false});
    var now = performance.now();
    if (report_now || now - replay.reported >= REPORT_EVERY_MS) {
      replay.reported = now;
      report("replay", {t: replay.pos, curfew: curfew, playing: replay.playing});
    }
  }

  function speedLabel() {
    return Math.abs(replay.speed - fitSpeed()) < 1e-6 ? "fit (whole trail in " + FIT_SECONDS + " s)" :
      replay.speed + "×";
  }

  function fitSpeed() { return doc ? (doc.t[doc.t.length - 1] - doc.t[0]) / FIT_SECONDS : 1; }

  function tick(now) {
    if (!replay.playing || !doc) return;
    var end = doc.t0 + doc.t[doc.t.length - 1];
    replay.pos = Math.min(end, replay.pos + (now - replay.last) / 1000 * replay.speed);
    replay.last = now;
    if (replay.pos >= end) replay.playing = false;
    place(!replay.playing);
    if (replay.playing) requestAnimationFrame(tick);
  }

  function play(speed) {
    if (!doc) return;
    replay.speed = speed > 0 ? speed : fitSpeed();
    if (replay.pos >= doc.t0 + doc.t[doc.t.length - 1]) replay.pos = doc.t0;
    replay.playing = true;
    replay.last = performance.now();
    requestAnimationFrame(tick);
  }

  function pause() {
    if (!replay.playing) return;
    replay.playing = false;
    if (doc) place(true);
  }

  function seek(ts, quiet) {
    if (!doc) return;
    replay.pos = Math.max(doc.t0, Math.min(doc.t0 + doc.t[doc.t.length - 1], ts));
    replay.last = performance.now();
    place(!quiet);
  }

  return {
    start: start, basemap: basemap, show: show, refine: refine, clear: clear,
    play: play, pause: pause, seek: seek, zoomToTrail: zoomToTrail, formatTime: formatTime,
    setNumbers: function (on) { numbersOn = on; if (doc) drawDetail(); return drawn.numbers; },
    setFollow: function (on) { follow = on; },
    zoomTo: function (z) { map.setZoom(z, {animate: false}); },
    drawn: function () { return drawn; },
    fitSpeed: fitSpeed,
  };
})();
