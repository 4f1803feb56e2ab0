// Vigil fleet dashboard: plain script, no build step. It reads the fleet API with a bearer
// token taken from the URL fragment (#token=...) or the login field, kept in sessionStorage,
// and follows GET /api/v1/stream (server-sent events read with fetch, so that the token
// travels in the Authorization header, never in a URL).
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

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
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
    if (!tel) return '—';
    const parts = [];
    const b = tel.board || {};
    if (typeof b.cpu_temp_c === 'number') parts.push(b.cpu_temp_c.toFixed(0) + ' °C');
    if (typeof b.load1 === 'number') parts.push('load ' + b.load1.toFixed(2));
    if (typeof b.cpu_usage === 'number') parts.push('cpu ' + Math.round(b.cpu_usage * 100) + '%');
    if (b.throttled) parts.push('throttled');
    if (tel.outbox && typeof tel.outbox.messages === 'number') parts.push('outbox ' + tel.outbox.messages);
    if (Array.isArray(tel.cameras)) {
      const down = tel.cameras.filter((c) => c.state && c.state !== 'running' && c.state !== 'ok');
      if (down.length) parts.push(down.length + ' camera(s) ' + down.map((c) => c.state).join(','));
    }
    return parts.length ? parts.join(' · ') : 'ok';
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
      const tel = state.telemetry.get(d.id);
      const tr = el('tr', 'device');
      tr.dataset.device = d.id;
      const st = d.state || 'unknown';
      const badge = el('span', 'badge ' + (d.online ? 'on' : 'off'), st);
      const stTd = el('td');
      stTd.append(badge);
      const model = tel && tel.model ? (tel.model.name || '') + ' ' + (tel.model.version || '') : '—';
      const cams = (d.cameras || []).map((c) => c.id + (c.rate ? ' (' + c.rate.toFixed(1) + '/s)' : '')).join(', ');
      tr.append(el('td', 'id', d.id), stTd, el('td', '', d.version || '—'), el('td', 'model', model.trim() || '—'),
        el('td', 'health', health(tel)), el('td', '', cams || '—'), el('td', '', ago(d.last_seen)));
      body.append(tr);
    }
  }

  async function refreshDevices() {
    try {
      const resp = await api('/api/v1/devices');
      if (!resp.ok) throw new Error('devices: HTTP ' + resp.status);
      state.devices = await resp.json();
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
      const list = Array.isArray(body) ? body : body.rollouts || [];
      if (!list.length) {
        box.replaceChildren(el('p', 'empty', 'no rollouts'));
        return;
      }
      const ul = el('ul', 'rollouts');
      for (const r of list) {
        const li = el('li', 'rollout');
        const model = r.model ? (r.model.name || '') + ' ' + (r.model.version || '') : r.version || '';
        li.append(el('strong', '', r.id || r.name || 'rollout'), el('span', '', ' ' + model.trim() + ' '),
          el('span', 'badge', r.state || r.status || ''));
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
      b.textContent = 'mqtt: ' + (h.mqtt && h.mqtt.connected ? 'connected' : 'down');
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
      const li = el('li', 'event ' + m.kind);
      li.dataset.device = m.device;
      const t = new Date(m.received_at);
      li.append(el('time', '', isNaN(t) ? '' : t.toLocaleTimeString()),
        el('span', 'badge ' + (m.kind === 'alerts' ? 'alert' : 'ev'), m.kind === 'alerts' ? 'alert' : 'event'),
        el('span', 'where', m.device + (m.camera ? '/' + m.camera : '')),
        el('span', 'what', summary(m.payload)));
      ol.append(li);
    }
    $('dropped').textContent = state.dropped ? '(' + state.dropped + ' missed: the page was too slow)' : '';
  }

  function onMessage(name, data) {
    if (name === 'dropped') {
      state.dropped += data.dropped || 0;
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
        state.telemetry.set(data.device, data.payload);
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
