// Vigil fleet dashboard: plain script, no build step. It reads the fleet API — without a token
// when the API is open, else with a bearer token taken from the URL fragment (#token=...) or
// the login field, kept in sessionStorage — and follows GET /api/v1/stream (server-sent events
// read with fetch, so that the token travels in the Authorization header, never in a URL).
// Pictures (event snapshots, live views) are fetched the same way and shown from blob: URLs.
//
// Sections: devices and their health; events as cards (thumbnail, label, rules and zones,
// start, end, duration, device/camera; click for the full picture) with filters; per-camera
// objects and alerts over time (inline SVG); drone detections on a scaled plane (map tiles
// when the fleet is given a tile URL); rollouts; the live feed.
//
// Everything it shows comes from devices, so it is untrusted: it is only ever put in the page
// as text (textContent, never innerHTML), and every field may be missing, null or of the wrong
// type: a bad device makes its own row read '—', never the table fail for every viewer.
(function () {
  'use strict';

  const KEY = 'vigil-fleet-token';
  const MAX_EVENTS = 100;
  const MAX_RECORDS = 2000; // records read per query for the cards and charts
  const state = {
    token: '',
    open: false, // the API answers without a token
    config: {}, // /static/config.json: tile_url
    thumbs: new Map(), // event id -> {url, tried}
    cardsTimer: 0,
    devices: [],
    telemetry: new Map(), // device id -> last telemetry payload
    events: [],
    dropped: 0,
    stopped: false,
    timers: [],
  };

  const $ = (id) => document.getElementById(id);
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const objs = (v) => (Array.isArray(v) ? v.filter(isObj) : []); // the objects of an array, if it is one
  const str = (v) => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  const num = (v) => (typeof v === 'number' && isFinite(v) ? v : undefined);

  // visible shows control characters (ESC, C1) as \xNN: text, never markup or terminal codes.
  const visible = (s) =>
    s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));

  // el makes an element whose only content is text: the one way this page shows data.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = visible(String(text));
    return e;
  }

  class Unauthorized extends Error {}

  function readToken() {
    const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      // Keep the token out of the address bar and the history.
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem(KEY) || '';
  }

  function authHeaders() {
    return state.token ? { Authorization: 'Bearer ' + state.token } : {};
  }

  async function api(path) {
    const resp = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    if (resp.status === 401) throw new Unauthorized('token rejected');
    return resp;
  }

  async function apiPost(path) {
    const resp = await fetch(path, {
      method: 'POST', cache: 'no-store', body: '{}',
      headers: Object.assign({ 'Content-Type': 'application/json' }, authHeaders()),
    });
    if (resp.status === 401) throw new Unauthorized('token rejected');
    return resp;
  }

  // picture fetches a JPEG with the token and returns a blob: URL, or '' when there is none.
  async function picture(path) {
    const resp = await api(path);
    if (!resp.ok) return '';
    return URL.createObjectURL(await resp.blob());
  }

  // b64json decodes a stored record's payload (base64 of the message's JSON).
  function b64json(s) {
    if (typeof s !== 'string') return isObj(s) ? s : {};
    try {
      const bin = atob(s);
      const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      const v = JSON.parse(new TextDecoder().decode(bytes));
      return isObj(v) ? v : {};
    } catch (e) {
      return {};
    }
  }

  function fmtTime(ms) {
    if (num(ms) === undefined || ms <= 0) return '—';
    const d = new Date(ms);
    return isNaN(d) ? '—' : d.toLocaleString();
  }

  function fmtDuration(s) {
    if (num(s) === undefined || s < 0) return '—';
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  }

  function showLogin(msg) {
    state.stopped = true;
    state.timers.forEach(clearInterval);
    state.timers = [];
    $('main').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    if (msg) $('login-msg').textContent = msg;
    $('token-input').focus();
  }

  // ---- devices ----

  function ago(iso) {
    if (!iso) return '—';
    const t = Date.parse(iso);
    if (isNaN(t) || t <= 0) return '—';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  function health(tel) {
    if (!isObj(tel)) return '—';
    const parts = [];
    const b = isObj(tel.board) ? tel.board : {};
    if (num(b.cpu_temp_c) !== undefined) parts.push(b.cpu_temp_c.toFixed(0) + ' °C');
    if (num(b.load1) !== undefined) parts.push('load ' + b.load1.toFixed(2));
    if (num(b.cpu_usage) !== undefined) parts.push('cpu ' + Math.round(b.cpu_usage * 100) + '%');
    if (b.throttled === true) parts.push('throttled');
    if (isObj(tel.outbox) && num(tel.outbox.messages) !== undefined) parts.push('outbox ' + tel.outbox.messages);
    const down = objs(tel.cameras).filter((c) => str(c.state) && !['running', 'ok', 'streaming'].includes(c.state));
    if (down.length) parts.push(down.length + ' camera(s) ' + down.map((c) => str(c.state)).join(','));
    return parts.length ? parts.join(' · ') : 'ok';
  }

  function deviceRow(d) {
    const tel = state.telemetry.get(d.id);
    const tr = el('tr', 'device');
    tr.dataset.device = str(d.id);
    const badge = el('span', 'badge ' + (d.online === true ? 'on' : 'off'), str(d.state) || 'unknown');
    const stTd = el('td');
    stTd.append(badge);
    const m = isObj(tel) && isObj(tel.model) ? tel.model : {};
    const model = (str(m.name) + ' ' + str(m.version)).trim();
    const camTd = el('td', 'cams');
    for (const c of objs(d.cameras)) {
      const id = str(c.id);
      if (!id) continue;
      const b = el('button', 'live-view', id + (num(c.rate) ? ' (' + c.rate.toFixed(1) + '/s)' : ''));
      b.type = 'button';
      b.dataset.device = str(d.id);
      b.dataset.camera = id;
      b.setAttribute('aria-label', 'current view of ' + visible(str(d.id)) + '/' + visible(id));
      b.addEventListener('click', () => liveView(str(d.id), id));
      camTd.append(b, ' ');
    }
    if (!camTd.childNodes.length) camTd.textContent = '—';
    const tcams = isObj(tel) ? objs(tel.cameras) : [];
    const streaming = tcams.length
      ? tcams.filter((c) => c.state === 'streaming').length + '/' + tcams.length : '—';
    const ob = isObj(tel) && isObj(tel.outbox) ? tel.outbox : {};
    const backlog = num(ob.messages) !== undefined
      ? ob.messages + (num(ob.oldest_age_s) ? ' (' + fmtDuration(ob.oldest_age_s) + ')' : '') : '—';
    tr.append(el('td', 'id', str(d.id) || '—'), stTd, el('td', '', str(d.version) || '—'), el('td', 'model', model || '—'),
      el('td', 'streaming', streaming), el('td', 'outbox', backlog),
      el('td', 'health', health(tel)), camTd, el('td', '', ago(str(d.last_seen))));
    return tr;
  }

  function renderDevices() {
    const body = $('devices').tBodies[0];
    body.replaceChildren();
    $('device-count').textContent = '(' + state.devices.length + ')';
    if (!state.devices.length) {
      const tr = el('tr', 'empty');
      const td = el('td', '', 'no devices yet');
      td.colSpan = 9;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const d of state.devices) {
      let tr;
      try {
        tr = deviceRow(d);
      } catch (e) {
        // Never reached with the checks above; a row of its own if it is.
        tr = el('tr', 'device');
        tr.append(el('td', 'id', str(d.id) || '—'), el('td', '', 'unreadable'));
        console.warn('device row', e);
      }
      body.append(tr);
    }
  }

  async function refreshDevices() {
    try {
      const resp = await api('/api/v1/devices');
      if (!resp.ok) throw new Error('devices: HTTP ' + resp.status);
      state.devices = objs(await resp.json());
      for (const d of state.devices) {
        // The API's copy of the newest telemetry, until the stream brings one.
        if (isObj(d.telemetry) && !state.telemetry.has(str(d.id))) state.telemetry.set(str(d.id), apiTelemetry(d.telemetry));
      }
      renderDevices();
      renderFilterChoices();
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
      console.warn(e);
    }
  }

  // apiTelemetry turns the API's flat telemetry (GET /api/v1/devices) into the message's shape.
  function apiTelemetry(t) {
    return {
      board: { cpu_temp_c: t.cpu_temp_c, load1: t.load1, cpu_usage: t.cpu_usage, throttled: t.throttled },
      outbox: t.outbox, model: t.model, cameras: t.cameras, position: t.position,
    };
  }

  // ---- pictures: the viewer dialog ----

  function openViewer(title, caption) {
    const dlg = $('viewer');
    $('viewer-title').textContent = visible(title);
    $('viewer-caption').textContent = visible(caption || '');
    $('viewer-msg').textContent = '';
    const old = $('viewer-img');
    if (old) {
      URL.revokeObjectURL(old.src);
      old.remove();
    }
    if (!dlg.open) dlg.showModal();
    return dlg;
  }

  function viewerImage(url, alt) {
    const old = $('viewer-img');
    if (old) {
      URL.revokeObjectURL(old.src); // every viewer picture is its own blob: URL
      old.remove();
    }
    const img = el('img');
    img.id = 'viewer-img';
    img.alt = visible(alt);
    img.src = url;
    $('viewer-fig').prepend(img);
  }

  async function showSnapshot(card) {
    openViewer('Event ' + card.label + ' on ' + card.device + '/' + card.camera, card.when);
    try {
      const url = await picture('/api/v1/events/' + encodeURIComponent(card.id) + '/snapshot.jpg');
      if (!url) {
        $('viewer-msg').textContent = 'No picture of this event has reached the fleet (yet).';
        return;
      }
      viewerImage(url, 'snapshot of ' + card.label + ' at ' + card.device + '/' + card.camera);
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
      $('viewer-msg').textContent = String(e.message || e);
    }
  }

  // liveView asks the camera for its current frame and shows it once the answer arrives.
  async function liveView(device, camera) {
    openViewer('Current view of ' + device + '/' + camera, '');
    const msg = $('viewer-msg');
    msg.textContent = 'asking the camera…';
    const base = '/api/v1/devices/' + encodeURIComponent(device) + '/cameras/' + encodeURIComponent(camera);
    try {
      const resp = await apiPost(base + '/live');
      let body = {};
      try { body = await resp.json(); } catch (e) { /* not JSON */ }
      if (resp.status === 403) {
        msg.textContent = 'The current view sends a command to the device: it needs an admin token.';
        return;
      }
      if (resp.status !== 202 || !isObj(body) || !str(body.cmd_id)) {
        msg.textContent = 'The fleet refused: ' + (isObj(body) && str(body.error) ? str(body.error) : 'HTTP ' + resp.status);
        return;
      }
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline && $('viewer').open) {
        await new Promise((r) => setTimeout(r, 400));
        const f = await api(base + '/live.jpg');
        if (f.ok && f.headers.get('X-Vigil-Cmd-Id') === body.cmd_id) {
          const url = URL.createObjectURL(await f.blob());
          const at = f.headers.get('X-Vigil-Captured-At') || '';
          viewerImage(url, 'current view of ' + device + '/' + camera);
          msg.textContent = '';
          $('viewer-caption').textContent = visible('captured ' + (at ? new Date(at).toLocaleString() : '?'));
          return;
        }
      }
      if ($('viewer').open) msg.textContent = 'No frame came back within 15 s: is the camera streaming?';
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
      msg.textContent = String(e.message || e);
    }
  }

  // ---- event cards, filters, charts, map ----

  function filterValues() {
    return {
      device: $('f-device').value, camera: $('f-camera').value,
      label: $('f-label').value.trim(), rule: $('f-rule').value.trim(),
      range: Number($('f-range').value) || 3600,
    };
  }

  function setOptions(select, values) {
    const cur = select.value;
    const want = ['', ...values];
    const have = [...select.options].map((o) => o.value);
    if (want.length === have.length && want.every((v, i) => v === have[i])) return;
    select.replaceChildren();
    for (const v of want) {
      const o = el('option', '', v === '' ? 'all' : v);
      o.value = v;
      select.append(o);
    }
    select.value = want.includes(cur) ? cur : '';
  }

  function renderFilterChoices() {
    const devs = state.devices.map((d) => str(d.id)).filter(Boolean).sort();
    setOptions($('f-device'), devs);
    const dev = $('f-device').value;
    const cams = new Set();
    for (const d of state.devices) {
      if (dev && str(d.id) !== dev) continue;
      for (const c of objs(d.cameras)) if (str(c.id)) cams.add(str(c.id));
    }
    setOptions($('f-camera'), [...cams].sort());
    const labels = new Set();
    for (const d of state.devices) for (const c of objs(d.cameras)) {
      if (isObj(c.objects)) for (const l of Object.keys(c.objects)) labels.add(l);
    }
    const dl = $('labels');
    dl.replaceChildren(...[...labels].sort().map((l) => { const o = el('option'); o.value = visible(l); return o; }));
  }

  function query(kind, f, since) {
    const q = new URLSearchParams({ kind, limit: String(MAX_RECORDS), since: String(since) });
    if (f.device) q.set('device', f.device);
    if (f.camera) q.set('camera', f.camera);
    if (f.label) q.set('label', f.label);
    if (kind === 'alert' && f.rule) q.set('rule', f.rule);
    return '/api/v1/events?' + q.toString();
  }

  async function records(path) {
    const resp = await api(path);
    if (!resp.ok) {
      let msg = 'HTTP ' + resp.status;
      try { const b = await resp.json(); if (isObj(b) && str(b.error)) msg = str(b.error); } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const list = objs(await resp.json());
    for (const r of list) r.msg = b64json(r.payload);
    return list;
  }

  // buildCards folds event records (new, update, end: newest first) into one card per event,
  // with the rules of the alerts that name it.
  function buildCards(evs, alerts) {
    const rules = new Map();
    for (const a of alerts) {
      for (const id of Array.isArray(a.msg.event_ids) ? a.msg.event_ids : []) {
        if (typeof id !== 'string') continue;
        if (!rules.has(id)) rules.set(id, new Set());
        rules.get(id).add(str(a.msg.rule_id) || str(a.rule_id));
      }
    }
    const cards = new Map();
    for (const r of evs) {
      const after = isObj(r.msg.after) ? r.msg.after : {};
      const id = str(after.id) || str(r.event_id);
      if (!id) continue;
      let c = cards.get(id);
      if (!c) {
        c = { id, device: str(r.device), camera: str(r.camera), label: str(after.label) || '?', start: num(after.start_time),
          end: undefined, zones: new Set(), score: 0, hasSnapshot: false, geo: null, receivedAt: Date.parse(str(r.received_at)) || 0 };
        cards.set(id, c);
      }
      if (num(after.end_time) !== undefined) c.end = Math.max(c.end || 0, after.end_time);
      if (num(after.start_time) !== undefined) c.start = Math.min(c.start || Infinity, after.start_time);
      for (const z of Array.isArray(after.entered_zones) ? after.entered_zones : []) if (typeof z === 'string') c.zones.add(z);
      if (num(after.top_score) !== undefined) c.score = Math.max(c.score, after.top_score);
      if (after.has_snapshot === true) c.hasSnapshot = true;
      if (!c.geo && isObj(after.geo) && num(after.geo.lat) !== undefined && num(after.geo.lon) !== undefined) c.geo = after.geo;
    }
    for (const c of cards.values()) c.rules = rules.get(c.id) || new Set();
    return [...cards.values()];
  }

  async function loadThumb(c, img, box) {
    let t = state.thumbs.get(c.id);
    if (t && t.url) {
      img.src = t.url;
      box.prepend(img);
      return;
    }
    if (t && Date.now() - t.tried < 4000) return;
    state.thumbs.set(c.id, { url: '', tried: Date.now() });
    try {
      const url = await picture('/api/v1/events/' + encodeURIComponent(c.id) + '/snapshot.jpg');
      if (!url) return;
      state.thumbs.set(c.id, { url, tried: Date.now() });
      if (state.thumbs.size > 400) {
        // Keep the newest pictures: a page left open for days holds a bounded number.
        for (const [id, t] of state.thumbs) {
          if (state.thumbs.size <= 300) break;
          if (t.url) URL.revokeObjectURL(t.url);
          state.thumbs.delete(id);
        }
      }
      img.src = url;
      box.prepend(img);
    } catch (e) {
      if (e instanceof Unauthorized) showLogin('The token was rejected. Enter another one.');
    }
  }

  function card(c) {
    const li = el('li', 'card');
    li.dataset.event = c.id;
    const pic = el('button', 'thumb');
    pic.type = 'button';
    pic.setAttribute('aria-label', visible('full picture of ' + c.label + ' on ' + c.device + '/' + c.camera));
    pic.append(el('span', 'nothumb', 'no picture yet'));
    const img = el('img', 'thumb-img');
    img.alt = visible(c.label + ' on ' + c.device + '/' + c.camera);
    img.addEventListener('load', () => { const n = pic.querySelector('.nothumb'); if (n) n.remove(); });
    const dur = (c.end || Date.now()) - (c.start || Date.now());
    const when = fmtTime(c.start) + ' → ' + (c.end ? fmtTime(c.end) : 'ongoing') + ' (' + fmtDuration(dur / 1000) + ')';
    pic.addEventListener('click', () => showSnapshot({ id: c.id, label: c.label, device: c.device, camera: c.camera, when }));
    loadThumb(c, img, pic);
    const body = el('div', 'card-body');
    body.append(el('strong', 'label', c.label + (c.score ? ' ' + Math.round(c.score * 100) + '%' : '')),
      el('span', 'where', c.device + '/' + c.camera));
    const rz = [...c.rules].map((r) => 'rule ' + r).concat([...c.zones].map((z) => 'zone ' + z));
    body.append(el('span', 'rules', rz.length ? rz.join(', ') : 'no rule'));
    const t = el('span', 'when', when);
    body.append(t);
    li.append(pic, body);
    return li;
  }

  let cardsBusy = false;
  async function refreshCards() {
    if (cardsBusy || state.stopped) return;
    cardsBusy = true;
    const f = filterValues();
    const since = Date.now() - f.range * 1000;
    try {
      const [evs, alerts] = await Promise.all([records(query('event', f, since)), records(query('alert', f, since))]);
      let cards = buildCards(evs, alerts);
      if (f.rule) cards = cards.filter((c) => c.rules.has(f.rule));
      cards.sort((a, b) => (b.start || 0) - (a.start || 0));
      const ul = $('cards');
      ul.replaceChildren(...cards.slice(0, 200).map(card));
      $('cards-count').textContent = '(' + cards.length + (evs.length >= MAX_RECORDS ? '+, the newest ' + MAX_RECORDS + ' records' : '') + ')';
      $('cards-msg').textContent = cards.length ? '' : 'no events match';
      renderCharts(evs, alerts, since, f.range);
      renderMap(cards);
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
      $('cards-msg').textContent = 'events: ' + String(e.message || e);
    } finally {
      cardsBusy = false;
    }
  }

  // soon refreshes the cards shortly after live events, at most every 700 ms.
  function soon() {
    if (state.cardsTimer) return;
    state.cardsTimer = setTimeout(() => { state.cardsTimer = 0; refreshCards(); }, 700);
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = visible(String(text));
    return e;
  }

  // renderCharts draws, per camera, the objects that appeared (event "new") and the alerts per
  // time bucket as bars.
  function renderCharts(evs, alerts, since, range) {
    const box = $('charts');
    const buckets = 30;
    const step = (range * 1000) / buckets;
    const series = new Map(); // device/camera -> {objects: [], alerts: []}
    const get = (r) => {
      const k = str(r.device) + '/' + str(r.camera);
      if (!series.has(k)) series.set(k, { objects: new Array(buckets).fill(0), alerts: new Array(buckets).fill(0) });
      return series.get(k);
    };
    const bucket = (r) => Math.floor(((Date.parse(str(r.received_at)) || 0) - since) / step);
    for (const r of evs) {
      const b = bucket(r);
      if (r.msg.type === 'new' && b >= 0 && b < buckets) get(r).objects[b]++;
    }
    for (const r of alerts) {
      const b = bucket(r);
      if (b >= 0 && b < buckets) get(r).alerts[b]++;
    }
    $('charts-range').textContent = '(' + buckets + ' bars of ' + fmtDuration(step / 1000) + ')';
    if (!series.size) {
      box.replaceChildren(el('p', 'empty', 'nothing in this time range'));
      return;
    }
    const figs = [];
    for (const [k, s] of [...series.entries()].sort()) {
      const W = 360, H = 120, pad = 22;
      const max = Math.max(1, ...s.objects, ...s.alerts);
      const bw = (W - pad) / buckets;
      const total = (a) => a.reduce((x, y) => x + y, 0);
      const label = k + ': ' + total(s.objects) + ' objects and ' + total(s.alerts) + ' alerts in the range';
      const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': visible(label), class: 'chart' });
      g.append(svg('title', {}, label));
      g.append(svg('line', { x1: pad, y1: H - pad, x2: W, y2: H - pad, class: 'axis' }));
      g.append(svg('text', { x: 2, y: 12, class: 'tick' }, max));
      g.append(svg('text', { x: 2, y: H - pad, class: 'tick' }, 0));
      for (let i = 0; i < buckets; i++) {
        const x = pad + i * bw;
        const ho = ((H - pad - 14) * s.objects[i]) / max;
        const ha = ((H - pad - 14) * s.alerts[i]) / max;
        if (ho) g.append(svg('rect', { x: x + 1, y: H - pad - ho, width: bw / 2 - 1, height: ho, class: 'bar-objects' }));
        if (ha) g.append(svg('rect', { x: x + bw / 2, y: H - pad - ha, width: bw / 2 - 1, height: ha, class: 'bar-alerts' }));
      }
      g.append(svg('text', { x: pad, y: H - 6, class: 'tick' }, new Date(since).toLocaleTimeString()));
      g.append(svg('text', { x: W - 4, y: H - 6, class: 'tick end' }, 'now'));
      const fig = el('figure', 'chart-fig');
      fig.dataset.camera = k;
      fig.append(g, el('figcaption', '', label));
      figs.push(fig);
    }
    const legend = el('p', 'legend');
    legend.append(el('span', 'key objects', 'objects (new events)'), ' ', el('span', 'key alerts', 'alerts'));
    box.replaceChildren(legend, ...figs);
  }

  // renderMap puts geo-tagged events and device positions on a plane scaled to fit them
  // (equirectangular around their centre), over map tiles when the fleet has a tile URL.
  function renderMap(cards) {
    const box = $('map');
    const pts = [];
    for (const c of cards) if (c.geo) pts.push({ lat: c.geo.lat, lon: c.geo.lon, kind: 'det', text: c.label + ' ' + c.device + '/' + c.camera });
    for (const [id, tel] of state.telemetry) {
      const p = isObj(tel) && isObj(tel.position) ? tel.position : null;
      if (p && num(p.lat) !== undefined && num(p.lon) !== undefined && (p.lat || p.lon)) pts.push({ lat: p.lat, lon: p.lon, kind: 'dev', text: id });
    }
    if (!pts.some((p) => p.kind === 'det')) {
      box.replaceChildren(el('p', 'empty', 'no geo-tagged detections in this time range'));
      return;
    }
    const lat0 = pts.reduce((a, p) => a + p.lat, 0) / pts.length;
    const lon0 = pts.reduce((a, p) => a + p.lon, 0) / pts.length;
    const mPerDegLat = 111320, mPerDegLon = 111320 * Math.cos((lat0 * Math.PI) / 180);
    const xy = (p) => [(p.lon - lon0) * mPerDegLon, (lat0 - p.lat) * mPerDegLat];
    let span = 20;
    for (const p of pts) { const [x, y] = xy(p); span = Math.max(span, Math.abs(x) * 2.4, Math.abs(y) * 2.4); }
    const W = 480, H = 360, s = Math.min(W, H) / span;
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', class: 'plane',
      'aria-label': pts.filter((p) => p.kind === 'det').length + ' geo-tagged detections around ' + lat0.toFixed(5) + ', ' + lon0.toFixed(5) });
    g.append(svg('title', {}, 'detections around ' + lat0.toFixed(5) + ', ' + lon0.toFixed(5)));
    const tiles = str(state.config.tile_url);
    if (tiles) {
      // Slippy-map tiles at the zoom whose tile is about the plane's width.
      const z = Math.max(0, Math.min(19, Math.round(Math.log2((40075016 * Math.cos((lat0 * Math.PI) / 180)) / span))));
      const n = 2 ** z;
      const tx = (lon) => ((lon + 180) / 360) * n;
      const ty = (lat) => ((1 - Math.log(Math.tan((lat * Math.PI) / 180) + 1 / Math.cos((lat * Math.PI) / 180)) / Math.PI) / 2) * n;
      const cx = tx(lon0), cy = ty(lat0);
      const tileM = (40075016 * Math.cos((lat0 * Math.PI) / 180)) / n;
      for (let i = Math.floor(cx) - 1; i <= Math.floor(cx) + 1; i++) {
        for (let j = Math.floor(cy) - 1; j <= Math.floor(cy) + 1; j++) {
          const href = tiles.replace('{z}', z).replace('{x}', ((i % n) + n) % n).replace('{y}', j);
          g.append(svg('image', { href, x: W / 2 + (i - cx) * tileM * s, y: H / 2 + (j - cy) * tileM * s, width: tileM * s, height: tileM * s }));
        }
      }
    } else {
      for (let i = -5; i <= 5; i++) {
        const d = (i * span) / 10 * s;
        g.append(svg('line', { x1: W / 2 + d, y1: 0, x2: W / 2 + d, y2: H, class: 'grid' }));
        g.append(svg('line', { x1: 0, y1: H / 2 + d, x2: W, y2: H / 2 + d, class: 'grid' }));
      }
    }
    const bar = Math.pow(10, Math.floor(Math.log10(span / 4)));
    g.append(svg('line', { x1: 10, y1: H - 12, x2: 10 + bar * s, y2: H - 12, class: 'scale' }));
    g.append(svg('text', { x: 10, y: H - 16, class: 'tick' }, bar >= 1000 ? bar / 1000 + ' km' : bar + ' m'));
    g.append(svg('text', { x: W - 14, y: 16, class: 'tick' }, 'N'));
    for (const p of pts) {
      const [x, y] = xy(p);
      const c = svg(p.kind === 'det' ? 'circle' : 'rect', p.kind === 'det'
        ? { cx: W / 2 + x * s, cy: H / 2 + y * s, r: 5, class: 'det' }
        : { x: W / 2 + x * s - 5, y: H / 2 + y * s - 5, width: 10, height: 10, class: 'dev' });
      c.append(svg('title', {}, p.text + ' (' + p.lat.toFixed(6) + ', ' + p.lon.toFixed(6) + ')'));
      g.append(c);
    }
    $('map-note').textContent = tiles ? '(map tiles)' : '(scaled plane, north up; set --map-tiles for a map)';
    box.replaceChildren(g);
  }

  // ---- rollouts ----

  function rolloutPercent(r) {
    if (typeof r.percent === 'number') return r.percent;
    if (typeof r.progress === 'number') return r.progress <= 1 ? r.progress * 100 : r.progress;
    const total = r.total ?? (Array.isArray(r.devices) ? r.devices.length : undefined);
    const done = r.done ?? r.succeeded ?? r.active;
    if (typeof total === 'number' && total > 0 && typeof done === 'number') return (100 * done) / total;
    return undefined;
  }

  async function refreshRollouts() {
    const box = $('rollouts');
    try {
      const resp = await api('/api/v1/rollouts');
      if (resp.status === 404) {
        box.replaceChildren(el('p', 'empty', 'no rollouts'));
        return;
      }
      if (!resp.ok) throw new Error('rollouts: HTTP ' + resp.status);
      const body = await resp.json();
      const list = objs(Array.isArray(body) ? body : isObj(body) ? body.rollouts : []);
      if (!list.length) {
        box.replaceChildren(el('p', 'empty', 'no rollouts'));
        return;
      }
      const ul = el('ul', 'rollouts');
      for (const r of list) {
        const li = el('li', 'rollout');
        const model = isObj(r.model) ? str(r.model.name) + ' ' + str(r.model.version) : str(r.version);
        li.append(el('strong', '', str(r.id) || str(r.name) || 'rollout'), el('span', '', ' ' + model.trim() + ' '),
          el('span', 'badge', str(r.state) || str(r.status)));
        const pct = rolloutPercent(r);
        if (pct !== undefined) {
          const bar = el('progress');
          bar.max = 100;
          bar.value = pct;
          li.append(bar, el('span', '', ' ' + Math.round(pct) + '%'));
        }
        ul.append(li);
      }
      box.replaceChildren(ul);
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
      box.replaceChildren(el('p', 'error', String(e.message || e)));
    }
  }

  // ---- health ----

  async function refreshHealth() {
    try {
      const resp = await fetch('/healthz', { cache: 'no-store' });
      const h = await resp.json();
      const b = $('health');
      b.textContent = 'mqtt: ' + (isObj(h) && isObj(h.mqtt) && h.mqtt.connected === true ? 'connected' : 'down');
      b.className = 'badge ' + (resp.ok ? 'on' : 'off');
    } catch (e) {
      $('health').textContent = 'fleet unreachable';
      $('health').className = 'badge off';
    }
  }

  // ---- live stream ----

  function summary(p) {
    if (!p || typeof p !== 'object') return '';
    const parts = [];
    if (isObj(p.after)) {
      // An event: its type and its object.
      const a = p.after;
      return [str(p.type), str(a.label), num(a.track_id) !== undefined ? '#' + a.track_id : '',
        Array.isArray(a.zones) && a.zones.length ? 'in ' + a.zones.map(str).join(', ') : ''].filter(Boolean).join(' ');
    }
    if (str(p.rule_id)) {
      // An alert: the rule that fired.
      return [str(p.rule_type), str(p.rule_id), str(p.kind), str(p.label)].filter(Boolean).join(' ');
    }
    for (const k of ['type', 'event', 'rule', 'name', 'label', 'state', 'zone', 'message']) {
      const v = p[k];
      if (typeof v === 'string' || typeof v === 'number') parts.push(String(v));
    }
    if (p.track_id !== undefined) parts.push('#' + p.track_id);
    if (parts.length) return parts.join(' ');
    const rest = {};
    for (const [k, v] of Object.entries(p)) {
      if (!['schema', 'device_id', 'seq', 'msg_id', 'captured_at', 'replayed'].includes(k)) rest[k] = v;
    }
    const s = JSON.stringify(rest);
    return s.length > 160 ? s.slice(0, 157) + '…' : s;
  }

  function renderEvents() {
    const ol = $('events');
    ol.replaceChildren();
    if (!state.events.length) {
      ol.append(el('li', 'empty', 'no events yet'));
      return;
    }
    for (const m of state.events) {
      const alert = m.kind === 'alerts';
      const li = el('li', 'event ' + (alert ? 'alerts' : 'events'));
      li.dataset.device = str(m.device);
      const t = new Date(str(m.received_at));
      li.append(el('time', '', isNaN(t) ? '' : t.toLocaleTimeString()),
        el('span', 'badge ' + (alert ? 'alert' : 'ev'), alert ? 'alert' : 'event'),
        el('span', 'where', str(m.device) + (str(m.camera) ? '/' + str(m.camera) : '')),
        el('span', 'what', summary(m.payload)));
      ol.append(li);
    }
    $('dropped').textContent = state.dropped ? '(' + state.dropped + ' missed: the page was too slow)' : '';
  }

  function onMessage(name, data) {
    if (!isObj(data)) return;
    if (name === 'dropped') {
      state.dropped += num(data.dropped) || 0;
      renderEvents();
      return;
    }
    switch (data.kind) {
      case 'events':
      case 'alerts':
        state.events.unshift(data);
        if (state.events.length > MAX_EVENTS) state.events.length = MAX_EVENTS;
        renderEvents();
        soon();
        break;
      case 'snapshots':
        soon();
        break;
      case 'telemetry':
        if (str(data.device)) state.telemetry.set(str(data.device), data.payload);
        renderDevices();
        break;
      case 'status':
        refreshDevices();
        break;
    }
  }

  function parseBlock(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    try {
      onMessage(name, JSON.parse(data.join('\n')));
    } catch (e) {
      console.warn('stream: bad message', e);
    }
  }

  function setLive(on, text) {
    const b = $('live');
    b.textContent = 'stream: ' + (text || (on ? 'live' : 'reconnecting'));
    b.className = 'badge ' + (on ? 'on' : 'off');
  }

  async function stream() {
    while (!state.stopped) {
      try {
        const resp = await api('/api/v1/stream');
        if (!resp.ok) throw new Error('stream: HTTP ' + resp.status);
        setLive(true);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done || state.stopped) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            parseBlock(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch (e) {
        if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
        console.warn(e);
      }
      setLive(false);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  // ---- start ----

  // open asks the API, without a token, whether it needs one.
  async function openAPI() {
    try {
      const resp = await fetch('/api/v1/devices', { cache: 'no-store' });
      return resp.ok;
    } catch (e) {
      return false;
    }
  }

  async function loadConfig() {
    try {
      const resp = await fetch('/static/config.json', { cache: 'no-store' });
      const c = resp.ok ? await resp.json() : {};
      state.config = isObj(c) ? c : {};
    } catch (e) {
      state.config = {};
    }
  }

  async function start() {
    state.token = readToken();
    if (!state.token) {
      state.open = await openAPI();
      if (!state.open) return showLogin();
    }
    state.stopped = false;
    await loadConfig();
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = !state.token;
    refreshHealth();
    refreshDevices();
    refreshRollouts();
    refreshCards();
    stream();
    state.timers.push(setInterval(refreshDevices, 5000), setInterval(refreshRollouts, 10000),
      setInterval(refreshHealth, 5000), setInterval(refreshCards, 5000));
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $('token-input').value.trim());
      $('token-input').value = '';
      start();
    });
    $('filters').addEventListener('submit', (ev) => {
      ev.preventDefault();
      refreshCards();
    });
    for (const id of ['f-device', 'f-camera', 'f-range']) {
      $(id).addEventListener('change', () => {
        if (id === 'f-device') renderFilterChoices();
        refreshCards();
      });
    }
    $('logout').addEventListener('click', () => {
      sessionStorage.removeItem(KEY);
      location.reload();
    });
    start();
  });
})();
