// admin.js: the administration area (role admin): the routing rules with
// the dry-run tester, destinations and delivery queues (health, tasks,
// retry / cancel / reroute), the on-call rotas, the web app's users, the
// directory (read only) and the journal (search, CSV export).
import { session, api, el, getJSON, val, personName } from './api.js';
import { t } from './i18n.js';

const TABS = ['routes', 'queues', 'rotas', 'users', 'directory', 'journal'];

function fmt(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString(session.lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'short', timeStyle: 'medium' });
}

function table(id, heads, rows) {
  return el('table', { class: 'list', id }, el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: heads.length }, t('noItems')))])));
}

// call answers the JSON of an admin API, or throws an Error whose message
// the page shows (401 without redirecting: the session is still good when
// an API wants a token; loadSession decides).
async function call(method, url, body) {
  const r = await api(method, url, body, { headers: { Accept: 'application/json' }, allow401: true });
  if (r.status === 401) {
    const s = await fetch('/app/api/session', { cache: 'no-store' });
    if (s.status === 401) { location.href = '/app/login'; throw new Error('session ended'); }
    const e = new Error(url + ': ' + t('sessionRefused'));
    e.sessionRefused = true;
    throw e;
  }
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new Error(url + ': ' + r.status + ' ' + ((j && (j.error_description || j.error)) || ''));
  return j;
}

export async function adminPage(root, tab) {
  if (session.role !== 'admin') {
    root.append(el('section', { class: 'page' }, el('p', { class: 'note' }, '403')));
    return null;
  }
  if (!TABS.includes(tab)) tab = 'routes';
  const tabs = el('nav', { class: 'tabs', id: 'admin-tabs' }, ...TABS.map((k) => el('a', { href: '/app/admin/' + k, 'data-tab': k, class: k === tab ? 'active' : '' }, t(k))));
  const content = el('div', { id: 'admin-' + tab, class: 'admin-content' });
  const note = el('p', { class: 'note err', id: 'admin-error', role: 'alert' });
  root.append(el('section', { class: 'page admin' }, el('div', { class: 'toolbar' }, el('h2', {}, t('admin')), tabs), note, content));
  const ctl = { timers: [] };
  try {
    await ({ routes, queues, rotas, users, directory, journal })[tab](content, note, ctl);
  } catch (e) {
    note.textContent = String(e.message || e);
  }
  return () => ctl.timers.forEach(clearInterval);
}

// Routes and the dry-run tester.
async function routes(box, note) {
  const j = await call('GET', '/api/routes');
  box.append(table('routes-table', [t('name'), t('condition'), t('mode'), t('priority'), t('forward'), t('readyFlag')],
    (j.routes || []).map((r) => el('tr', { 'data-route': r.name }, el('td', {}, el('b', {}, r.name)), el('td', {}, el('code', {}, r.when || 'true')),
      el('td', {}, r.mode + (r.stable_after ? ' ' + r.stable_after : '')), el('td', {}, r.priority || ''),
      el('td', {}, [...(r.forward || []), ...(r.failover || []).map((f) => '↪ ' + f)].join(', ')), el('td', {}, r.ready ? t('yes') : '')))));
  if ((j.warnings || []).length) box.append(el('ul', { class: 'notices' }, ...j.warnings.map((w) => el('li', {}, w))));

  // The tester: a stored study's first instance (WADO-RS, as Part 10), or
  // a file from this computer, POSTed to /api/routes/test.
  const studySel = el('select', { id: 'rt-study' }, el('option', { value: '' }, '—'));
  const file = el('input', { type: 'file', id: 'rt-file', accept: '.dcm,application/dicom' });
  const at = el('input', { type: 'datetime-local', id: 'rt-at' });
  const ae = el('input', { type: 'text', id: 'rt-ae', placeholder: 'CT_NORD', size: 12 });
  const out = el('div', { id: 'rt-result' });
  box.append(el('form', { class: 'panel', id: 'route-tester', onsubmit: async (e) => {
    e.preventDefault();
    out.replaceChildren(t('loading'));
    try {
      let blob;
      if (file.files && file.files[0]) blob = file.files[0];
      else if (studySel.value) {
        const inst = await getJSON('/dicom-web/studies/' + studySel.value + '/instances?limit=1');
        const d = inst[0];
        const r = await api('GET', '/dicom-web/studies/' + studySel.value + '/series/' + val(d, '0020000E') + '/instances/' + val(d, '00080018'),
          undefined, { headers: { Accept: 'application/dicom' } });
        if (!r.ok) throw new Error('WADO-RS ' + r.status);
        blob = await r.blob();
      } else throw new Error(t('pickStudy') + ' ?');
      const q = new URLSearchParams();
      if (at.value) q.set('at', at.value);
      if (ae.value.trim()) q.set('calling_ae', ae.value.trim());
      const r = await fetch('/api/routes/test' + (q.toString() ? '?' + q : ''), { method: 'POST', body: blob, credentials: 'same-origin',
        headers: { 'Content-Type': 'application/dicom', 'X-Relais-CSRF': session.csrf, Accept: 'application/json' } });
      if (r.status === 401) throw new Error('/api/routes/test: ' + t('sessionRefused'));
      const res = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error('/api/routes/test: ' + r.status + ' ' + (res.error || ''));
      out.replaceChildren(el('p', {}, 'SOP ', el('code', {}, res.sop || ''), ' · ', fmt(res.at)),
        table('rt-decisions', [t('route'), t('matched'), t('applies'), t('why'), t('forward'), t('priority')],
          (res.decisions || []).map((d) => el('tr', { 'data-route': d.route, class: d.applies ? 'applies' : d.matched ? 'matched' : 'nomatch' },
            el('td', {}, d.route), el('td', {}, d.matched ? t('yes') : t('no')), el('td', { class: 'applies-cell' }, d.applies ? '✔ ' + t('yes') : t('no')),
            el('td', {}, el('code', {}, d.why || ''), d.error ? el('div', { class: 'err' }, d.error) : null),
            el('td', {}, (d.destinations || []).join(', ')), el('td', {}, d.priority || '')))));
    } catch (err) { out.replaceChildren(el('p', { class: 'err' }, String(err.message || err))); }
  } }, el('h3', {}, t('tester')),
  el('div', { class: 'row' }, el('label', {}, t('pickStudy'), ' ', studySel), el('label', {}, t('orFile'), ' ', file)),
  el('div', { class: 'row' }, el('label', {}, t('at'), ' ', at), el('label', {}, t('callingAE'), ' ', ae), el('button', { type: 'submit', class: 'primary', id: 'rt-run' }, t('run'))),
  out));
  getJSON('/dicom-web/studies?limit=100&includefield=StudyDescription').then((list) => {
    for (const s of list) studySel.append(el('option', { value: val(s, '0020000D') },
      [personName(val(s, '00100010')), val(s, '00081030'), val(s, '00080020')].filter(Boolean).join(' · ')));
  }).catch((e) => { note.textContent = String(e.message || e); });
}

// Destinations (health) and the delivery tasks.
async function queues(box, note, ctl) {
  const health = el('div', { id: 'destinations' });
  const f = { state: el('select', { id: 'q-state' }, el('option', { value: '' }, t('all')), ...['pending', 'dead', 'done', 'cancelled'].map((s) => el('option', { value: s }, t(s)))),
    dest: el('select', { id: 'q-dest' }, el('option', { value: '' }, t('all'))),
    study: el('input', { type: 'text', id: 'q-study', placeholder: 'Study UID', size: 30 }), route: el('input', { type: 'text', id: 'q-route', placeholder: t('route'), size: 12 }) };
  const tasks = el('div', { id: 'tasks' });
  const msg = el('p', { class: 'note', id: 'q-note', role: 'status' });
  let dests = [];
  async function loadHealth() {
    let h;
    try {
      h = await call('GET', '/api/queue/destinations');
    } catch (e) {
      if (!e.sessionRefused) throw e;
      // The queue API takes admin tokens only on this node: the health
      // comes from /metrics (per-destination up, last success, backlog).
      h = await healthFromMetrics();
      msg.textContent = String(e.message) + ' — /metrics';
    }
    dests = h.map((d) => d.destination);
    if (f.dest.options.length === 1) for (const d of dests) f.dest.append(el('option', { value: d }, d));
    health.replaceChildren(table('dest-table', [t('destination'), t('protocol'), t('health'), t('lastSuccess'), t('lastError'), t('backlog'), t('oldest')],
      h.map((d) => el('tr', { 'data-dest': d.destination, class: d.up ? 'up' : 'down' }, el('td', {}, el('b', {}, d.destination)), el('td', {}, d.protocol || ''),
        el('td', { class: 'dest-health' }, d.up ? el('span', { class: 'badge ok' }, t('healthy'))
          : !d.tried && !d.last_attempt && !d.last_success && !d.last_error ? el('span', { class: 'badge' }, t('untried'))
            : el('span', { class: 'badge late' }, t('down'))),
        el('td', {}, fmt(d.last_success)), el('td', { class: 'err' }, d.last_error || ''), el('td', {}, String(d.backlog ?? 0)),
        el('td', {}, d.oldest_age_seconds ? d.oldest_age_seconds.toFixed(0) : '')))));
  }
  async function loadTasks() {
    const q = new URLSearchParams({ limit: '200' });
    for (const k of ['state', 'dest', 'study', 'route']) if (f[k].value.trim()) q.set(k, f[k].value.trim());
    const list = await call('GET', '/api/queue/tasks?' + q);
    tasks.replaceChildren(table('tasks-table', ['ID', t('state'), t('route'), t('priority'), t('destination'), 'Study / SOP', t('attempts'), t('nextTry'), t('lastError'), ''],
      list.map((k) => {
        const reason = el('input', { type: 'text', class: 'q-reason', placeholder: t('reason'), size: 10 });
        const to = el('select', { class: 'q-to' }, ...dests.filter((d) => d !== (k.destinations || [])[k.current]).map((d) => el('option', { value: d }, d)));
        const act = async (what, body) => {
          try { await call('POST', '/api/queue/tasks/' + encodeURIComponent(k.id) + '/' + what, body); msg.textContent = what + ' ' + k.id + ' ✔'; } catch (e) { msg.textContent = String(e.message || e); }
          await Promise.all([loadTasks(), loadHealth()]).catch(() => {});
        };
        const open = k.state === 'pending' || k.state === 'dead';
        return el('tr', { 'data-task': k.id, class: 'task-' + k.state }, el('td', {}, el('code', {}, k.id.slice(0, 12))), el('td', {}, t(k.state)), el('td', {}, k.route || ''),
          el('td', {}, k.priority || ''), el('td', {}, (k.destinations || [])[k.current] || ''), el('td', { class: 'uid' }, (k.study || '') + ' / ' + (k.sop || '')),
          el('td', {}, String(k.total_attempts ?? k.attempts ?? 0)), el('td', {}, k.state === 'pending' ? fmt(k.next_try) : fmt(k.delivered)), el('td', { class: 'err' }, k.last_error || ''),
          el('td', { class: 'actions' }, open ? el('button', { type: 'button', class: 'q-retry', onclick: () => act('retry') }, t('retry')) : null,
            open ? el('span', {}, reason, el('button', { type: 'button', class: 'q-cancel', onclick: () => { if (!reason.value.trim()) { msg.textContent = t('reasonRequired'); return; } act('cancel', { reason: reason.value.trim() }); } }, t('cancel'))) : null,
            k.state !== 'done' && to.options.length ? el('span', {}, to, el('button', { type: 'button', class: 'q-reroute', onclick: () => act('reroute', { destination: to.value }) }, t('reroute'))) : null));
      })));
  }
  box.append(el('h3', {}, t('queues')), health,
    el('h3', {}, t('tasks')),
    el('form', { class: 'row', id: 'q-filters', onsubmit: (e) => { e.preventDefault(); loadTasks().catch((er) => { note.textContent = String(er.message || er); }); } },
      el('label', {}, t('state'), ' ', f.state), el('label', {}, t('destination'), ' ', f.dest), f.study, f.route, el('button', { type: 'submit' }, t('filter'))),
    msg, tasks);
  await loadHealth();
  await loadTasks().catch((e) => { tasks.replaceChildren(el('p', { class: 'note err', id: 'tasks-error' }, String(e.message || e))); });
  ctl.timers.push(setInterval(() => loadHealth().catch(() => {}), 3000));
}

// healthFromMetrics reads the per-destination gauges of /metrics.
async function healthFromMetrics() {
  const r = await fetch('/metrics', { credentials: 'same-origin' });
  if (!r.ok) throw new Error('/metrics: ' + r.status);
  const by = new Map();
  const get = (d) => { if (!by.has(d)) by.set(d, { destination: d, up: false, backlog: 0 }); return by.get(d); };
  for (const line of (await r.text()).split('\n')) {
    const m = line.match(/^relais_destination_(up|last_success_timestamp_seconds|backlog|oldest_task_age_seconds)\{destination="([^"]+)"\}\s+(\S+)/);
    if (!m) continue;
    const d = get(m[2]);
    const v = Number(m[3]);
    if (m[1] === 'up') { d.up = v === 1; d.tried = true; }
    else if (m[1] === 'backlog') d.backlog = v;
    else if (m[1] === 'oldest_task_age_seconds') d.oldest_age_seconds = v;
    else if (v > 0) d.last_success = new Date(v * 1000).toISOString();
  }
  return [...by.values()].sort((a, b) => a.destination.localeCompare(b.destination));
}

// On-call rotas.
async function rotas(box) {
  const j = await call('GET', '/api/calendars');
  box.append(el('p', { class: 'note' }, fmt(j.now)));
  const shift = (s) => el('tr', {}, el('td', {}, s.summary || ''), el('td', {}, (s.attendees || []).join(', ')), el('td', {}, fmt(s.start)), el('td', {}, fmt(s.end)));
  for (const c of j.calendars || []) {
    box.append(el('section', { class: 'panel', 'data-calendar': c.name }, el('h3', {}, c.name + ' — ' + (c.source || '') + (c.loaded ? '' : ' (' + t('unavailable') + ')')),
      el('h4', {}, t('onCallNow')), c.on_call.length ? table('oncall-' + c.name, ['', t('user'), t('start'), t('end')], c.on_call.map(shift)) : el('p', { class: 'note' }, t('nobody')),
      el('h4', {}, t('upcoming')), table('upcoming-' + c.name, ['', t('user'), t('start'), t('end')], (c.upcoming || []).slice(0, 30).map(shift))));
  }
  if (!(j.calendars || []).length) box.append(el('p', { class: 'note' }, t('noItems')));
}

// Users of the web app.
async function users(box) {
  const list = el('div', { id: 'users-list' });
  const msg = el('p', { class: 'note', id: 'users-note', role: 'status' });
  async function load() {
    const j = await call('GET', '/app/api/users');
    list.replaceChildren(table('users-table', [t('name'), t('role'), t('created'), t('state'), ''], (j.users || []).map((u) => el('tr', { 'data-user': u.name },
      el('td', {}, el('b', {}, u.name)), el('td', {}, u.role), el('td', {}, fmt(u.created)),
      el('td', { class: 'user-state' }, u.disabled ? t('disabled') + ' ' + fmt(u.disabled) : t('active')),
      el('td', {}, u.name === session.user ? null : el('button', { type: 'button', class: u.disabled ? 'user-enable' : 'user-disable', onclick: async () => {
        try { await call('POST', '/app/api/users/' + encodeURIComponent(u.name) + '/' + (u.disabled ? 'enable' : 'disable'), {}); msg.textContent = u.name + ' ✔'; } catch (e) { msg.textContent = String(e.message || e); }
        await load();
      } }, u.disabled ? t('enable') : t('disable')))))));
  }
  const name = el('input', { type: 'text', id: 'user-name', required: true, autocomplete: 'off' });
  const role = el('select', { id: 'user-role' }, ...['radiologist', 'requester', 'admin'].map((r) => el('option', { value: r }, r)));
  const pw = el('input', { type: 'password', id: 'user-password', required: true, minlength: 10, autocomplete: 'new-password' });
  box.append(list, el('form', { class: 'panel row', id: 'user-add', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await call('POST', '/app/api/users', { name: name.value.trim(), role: role.value, password: pw.value });
      msg.textContent = name.value.trim() + ' ✔';
      e.target.reset();
    } catch (er) { msg.textContent = String(er.message || er); }
    await load();
  } }, el('label', {}, t('name'), ' ', name), el('label', {}, t('role'), ' ', role), el('label', {}, t('password'), ' ', pw),
  el('button', { type: 'submit', class: 'primary', id: 'user-add-submit' }, t('addUser'))), msg);
  await load();
}

// The directory, read only.
async function directory(box) {
  const j = await call('GET', '/api/directory');
  for (const kind of ['organisations', 'professionals', 'sites']) {
    const entries = j[kind] || [];
    const keys = [];
    for (const e of entries) for (const k of Object.keys(e)) if (!keys.includes(k)) keys.push(k);
    const show = (v) => v === undefined || v === null ? '' : typeof v === 'object' ? (Array.isArray(v) ? v.join(', ') : JSON.stringify(v)) : String(v);
    box.append(el('h3', {}, t(kind)), table('dir-' + kind, keys, entries.map((e) => el('tr', { 'data-id': e.id }, ...keys.map((k) => el('td', {}, show(e[k])))))));
  }
}

// The journal: search and CSV export.
async function journal(box) {
  const inputs = {};
  const mk = (k, attrs) => (inputs[k] = el('input', Object.assign({ type: 'text', id: 'j-' + k, name: k, size: 14 }, attrs || {})));
  const order = el('select', { id: 'j-order', name: 'order' }, el('option', { value: '' }, t('newest')), el('option', { value: 'asc' }, t('oldestFirst')));
  const csv = el('a', { id: 'j-csv', class: 'button', download: '' }, '⤓ ' + t('exportCSV'));
  const res = el('div', { id: 'j-result' });
  const params = () => {
    const q = new URLSearchParams();
    for (const [k, i] of Object.entries(inputs)) if (i.value.trim()) q.set(k, i.value.trim());
    if (order.value) q.set('order', order.value);
    return q;
  };
  async function search() {
    const q = params();
    const c = new URLSearchParams(q);
    c.set('format', 'csv');
    csv.href = '/api/journal?' + c;
    const j = await call('GET', '/api/journal?' + q);
    const evs = j.events || [];
    res.replaceChildren(el('p', { class: 'note', id: 'j-count' }, evs.length + ' ' + t('events') + (j.truncated ? ' (…)' : '')),
      table('journal-table', ['#', t('time'), t('kind'), t('user'), t('addr'), t('ae'), 'Study', t('reason')], evs.map((ev) => el('tr', { 'data-kind': ev.kind },
        el('td', {}, String(ev.seq ?? '')), el('td', {}, fmt(ev.time)), el('td', {}, ev.kind), el('td', {}, ev.user || ''), el('td', {}, ev.addr || ''),
        el('td', {}, ev.ae || ''), el('td', { class: 'uid' }, ev.study || ev.study_uid || ''), el('td', {}, ev.reason || '')))));
  }
  box.append(el('form', { class: 'panel', id: 'j-form', onsubmit: (e) => { e.preventDefault(); search().catch((er) => res.replaceChildren(el('p', { class: 'err' }, String(er.message || er)))); } },
    el('div', { class: 'row wrap' },
      el('label', {}, t('since'), ' ', mk('since', { placeholder: '24h' })), el('label', {}, t('until'), ' ', mk('until')),
      el('label', {}, t('kind'), ' ', mk('kind', { placeholder: 'report.signed' })), el('label', {}, t('ae'), ' ', mk('ae')),
      el('label', {}, t('user'), ' ', mk('user')), el('label', {}, 'Study', ' ', mk('study')), el('label', {}, t('sop'), ' ', mk('sop')),
      el('label', {}, t('text'), ' ', mk('q')), el('label', {}, t('limit'), ' ', mk('limit', { type: 'number', min: 1, value: 200, size: 6 })),
      el('label', {}, t('order'), ' ', order)),
    el('div', { class: 'row' }, el('button', { type: 'submit', class: 'primary', id: 'j-search' }, t('search')), csv)), res);
  await search();
}
