// Vigil fleet dashboard: plain script, no build step. It reads the fleet API with a bearer
// token taken from the URL fragment (#token=...) or the login field, kept in sessionStorage,
// and follows GET /api/v1/stream (server-sent events read with fetch, so that the token
// travels in the Authorization header, never in a URL).
//
// Everything it shows comes from devices, so it is untrusted: it is only ever put in the page
// as text (textContent, never innerHTML), and every field may be missing, null or of the wrong
// type: a bad device makes its own row read '—', never the table fail for every viewer.
(function () {
  'use strict';

  const KEY = 'vigil-fleet-token';
  const MAX_EVENTS = 100;
  const state = {
    token: '',
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
    const down = objs(tel.cameras).filter((c) => str(c.state) && c.state !== 'running' && c.state !== 'ok');
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
    const cams = objs(d.cameras)
      .map((c) => str(c.id) + (num(c.rate) ? ' (' + c.rate.toFixed(1) + '/s)' : ''))
      .join(', ');
    tr.append(el('td', 'id', str(d.id) || '—'), stTd, el('td', '', str(d.version) || '—'), el('td', 'model', model || '—'),
      el('td', 'health', health(tel)), el('td', '', cams || '—'), el('td', '', ago(str(d.last_seen))));
    return tr;
  }

  function renderDevices() {
    const body = $('devices').tBodies[0];
    body.replaceChildren();
    $('device-count').textContent = '(' + state.devices.length + ')';
    if (!state.devices.length) {
      const tr = el('tr', 'empty');
      const td = el('td', '', 'no devices yet');
      td.colSpan = 7;
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
      renderDevices();
    } catch (e) {
      if (e instanceof Unauthorized) return showLogin('The token was rejected. Enter another one.');
      console.warn(e);
    }
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

  function start() {
    state.token = readToken();
    if (!state.token) return showLogin();
    state.stopped = false;
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = false;
    refreshHealth();
    refreshDevices();
    refreshRollouts();
    stream();
    state.timers.push(setInterval(refreshDevices, 5000), setInterval(refreshRollouts, 10000),
      setInterval(refreshHealth, 5000));
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $('token-input').value.trim());
      $('token-input').value = '';
      start();
    });
    $('logout').addEventListener('click', () => {
      sessionStorage.removeItem(KEY);
      location.reload();
    });
    start();
  });
})();
