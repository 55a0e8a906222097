// app.js: the layout, the router, the worklist and the study list.
import { session, loadSession, api, getJSON, el, val, personName } from './api.js';
import { t, setLang } from './i18n.js';

const main = document.getElementById('main');
let cleanup = null;

async function start() {
  await loadSession();
  document.documentElement.lang = session.lang;
  document.getElementById('whoami').textContent = session.user + ' (' + session.role + ')';
  const lt = document.getElementById('lang-toggle');
  lt.textContent = t('other');
  lt.addEventListener('click', () => setLang(session.lang === 'fr' ? 'en' : 'fr'));
  const lo = document.getElementById('logout');
  lo.textContent = t('logout');
  lo.id = 'logout';
  lo.addEventListener('click', async () => {
    session.ended = true; // requests still in flight must not send to the login page with a next=
    await api('POST', '/app/logout', undefined, { headers: { Accept: 'application/json' }, allow401: true });
    location.href = '/app/login';
  });
  const nav = document.getElementById('nav');
  // Each role sees its pages: a requester its site's requests and studies
  // (never the reading worklist), a radiologist the worklist, an
  // administrator the admin area too.
  if (session.role !== 'requester') nav.append(el('a', { href: '/app/', 'data-nav': 'worklist' }, t('worklist')));
  nav.append(el('a', { href: session.role === 'requester' ? '/app/' : '/app/requests', 'data-nav': 'requests' }, t('requests')));
  nav.append(el('a', { href: '/app/studies', 'data-nav': 'studies' }, t('studies')));
  if (session.role === 'admin') nav.append(el('a', { href: '/app/admin/routes', 'data-nav': 'admin' }, t('admin')));
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[href^="/app/"]');
    if (!a || a.target || e.ctrlKey || e.metaKey || e.shiftKey || a.hasAttribute('download')) return;
    e.preventDefault();
    go(a.getAttribute('href'));
  });
  window.addEventListener('popstate', route);
  route();
}

export function go(href) {
  history.pushState(null, '', href);
  route();
}

async function route() {
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  main.replaceChildren();
  const p = location.pathname;
  for (const a of document.querySelectorAll('#nav a')) {
    const h = a.getAttribute('href');
    a.classList.toggle('active', h === p || (a.dataset.nav === 'admin' && p.startsWith('/app/admin')));
  }
  let m;
  if ((m = p.match(/^\/app\/study\/([^/]+)$/))) {
    const { openStudy } = await import('./viewer.js');
    cleanup = await openStudy(main, decodeURIComponent(m[1]));
  } else if (p === '/app/studies') {
    cleanup = await studiesPage(main);
  } else if (p === '/app/requests' || (session.role === 'requester' && (p === '/app/' || p === '/app'))) {
    const { requestsPage } = await import('./requests.js');
    cleanup = await requestsPage(main);
  } else if ((m = p.match(/^\/app\/admin(?:\/([a-z]+))?$/))) {
    const { adminPage } = await import('./admin.js');
    cleanup = await adminPage(main, m[1] || 'routes');
  } else if (session.role === 'requester') {
    // The reading worklist is not for requesters: their requests instead.
    history.replaceState(null, '', '/app/');
    const { requestsPage } = await import('./requests.js');
    cleanup = await requestsPage(main);
  } else {
    cleanup = await worklistPage(main);
  }
}

const stateOrder = ['scheduled', 'in-progress', 'reported', 'returned', 'cancelled'];
const prioRank = { STAT: 0, URGENT: 1, ROUTINE: 2 };

function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toLocaleString(session.lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'short', timeStyle: 'short' });
}

async function worklistPage(root) {
  const filters = { state: '', priority: '', q: '' };
  const counts = el('div', { class: 'counts', id: 'wl-counts' });
  const status = el('span', { class: 'live', id: 'wl-live' }, t('offline'));
  const stateSel = el('select', { id: 'wl-state', onchange: () => { filters.state = stateSel.value; load(); } },
    el('option', { value: '' }, t('openStates')), ...stateOrder.map((s) => el('option', { value: s }, t(s))), el('option', { value: 'all' }, t('all')));
  const prioSel = el('select', { id: 'wl-priority', onchange: () => { filters.priority = prioSel.value; render(); } },
    el('option', { value: '' }, t('all')), ...['STAT', 'URGENT', 'ROUTINE'].map((s) => el('option', { value: s }, s)));
  const q = el('input', { type: 'search', id: 'wl-search', placeholder: t('search'), oninput: () => { filters.q = q.value.toLowerCase(); render(); } });
  const body = el('tbody');
  const table = el('table', { class: 'list', id: 'worklist' },
    el('thead', {}, el('tr', {}, ...['priority', 'patient', 'accession', 'description', 'state', 'reader', 'ready', 'due', ''].map((k) => el('th', {}, k ? t(k) : '')))), body);
  const note = el('p', { class: 'note' });
  root.append(el('section', { class: 'page' },
    el('div', { class: 'toolbar' }, el('h2', {}, t('worklist')), status, el('label', {}, t('state'), ' ', stateSel), el('label', {}, t('priority'), ' ', prioSel), q),
    counts, note, table));
  let items = [];
  let es = null;
  let timer = null;
  let fallback = false;

  function render() {
    body.replaceChildren();
    let list = items.filter((it) => (!filters.priority || it.priority === filters.priority) &&
      (!filters.state || filters.state === 'all' || it.state === filters.state) &&
      (!filters.q || [it.patient_name, it.accession_number, it.reader, it.study_instance_uid].join(' ').toLowerCase().includes(filters.q)));
    list.sort((a, b) => (prioRank[a.priority] ?? 3) - (prioRank[b.priority] ?? 3) ||
      String(a.report_due || '9').localeCompare(String(b.report_due || '9')) || String(a.ready_at || '').localeCompare(String(b.ready_at || '')));
    if (!list.length) body.append(el('tr', {}, el('td', { colspan: 9 }, t('noItems'))));
    for (const it of list) {
      const href = '/app/study/' + it.study_instance_uid;
      body.append(el('tr', { class: [it.late ? 'late' : '', 'prio-' + (it.priority || '').toLowerCase()].join(' '), 'data-study': it.study_instance_uid, 'data-id': it.id },
        el('td', {}, el('span', { class: 'badge prio-' + (it.priority || '').toLowerCase() }, it.priority || ''), it.late ? el('span', { class: 'badge late' }, t('late')) : null),
        el('td', {}, el('a', { href }, personName(it.patient_name) || it.study_instance_uid)),
        el('td', {}, it.accession_number || ''),
        el('td', {}, [(it.modalities || []).join('/'), it.description].filter(Boolean).join(' · ')),
        el('td', { class: 'state' }, t(it.state || '')),
        el('td', {}, it.claimed_by || it.reader || (it.pool ? '⟨' + it.pool + '⟩' : '')),
        el('td', {}, fmtTime(it.ready_at)),
        el('td', {}, fmtTime(it.report_due)),
        el('td', {}, session.role === 'radiologist' && it.state === 'scheduled'
          ? el('button', { type: 'button', class: 'claim', onclick: async () => {
            const r = await api('POST', '/api/worklist/' + encodeURIComponent(it.id) + '/claim', {});
            if (r.ok) go(href); else { const j = await r.json().catch(() => ({})); note.textContent = t('claim') + ': ' + r.status + ' ' + (j.error || ''); }
          } }, t('claim'))
          : null)));
    }
  }

  function renderCounts(c) {
    counts.replaceChildren(...stateOrder.map((s) => el('button', { type: 'button', class: 'count' + (filters.state === s ? ' active' : ''), 'data-state': s,
      onclick: () => { filters.state = filters.state === s ? '' : s; stateSel.value = filters.state; load(); } }, t(s), ' ', el('b', {}, String((c && c[s]) || 0)))));
    if (c && c.late) counts.append(el('span', { class: 'badge late' }, t('late'), ' ', String(c.late)));
  }

  async function load() {
    const params = new URLSearchParams();
    if (filters.state) params.set('state', filters.state);
    const r = await api('GET', '/api/worklist' + (params.toString() ? '?' + params : ''), undefined, { headers: { Accept: 'application/json' } });
    if (r.status === 403) {
      note.textContent = t('forbiddenWorklist');
      table.remove(); counts.remove(); status.remove();
      return;
    }
    if (r.status === 404) {
      if (!fallback) {
        fallback = true;
        note.textContent = t('worklistUnavailable');
        table.remove(); counts.remove(); status.remove();
        root.querySelector('.page').append(await studyTable());
      }
      return;
    }
    if (!r.ok) { note.textContent = '/api/worklist: ' + r.status; return; }
    const j = await r.json();
    items = j.items || [];
    const c = j.counts || {};
    if (!j.counts) for (const it of items) c[it.state] = (c[it.state] || 0) + 1;
    renderCounts(c);
    render();
    if (!es) subscribe();
  }

  function subscribe() {
    es = new EventSource('/api/worklist/events');
    es.onopen = () => { status.textContent = t('live'); status.classList.add('on'); };
    es.onerror = () => { status.textContent = t('offline'); status.classList.remove('on'); };
    const kick = () => { clearTimeout(timer); timer = setTimeout(load, 150); };
    es.onmessage = kick;
    for (const name of ['item', 'update', 'updated', 'created', 'changed', 'state', 'worklist', 'assigned', 'late', 'escalated']) es.addEventListener(name, kick);
  }

  renderCounts({});
  await load();
  return () => { if (es) es.close(); clearTimeout(timer); };
}

async function studyTable() {
  const body = el('tbody');
  const table = el('table', { class: 'list', id: 'studies' },
    el('thead', {}, el('tr', {}, ...['patient', 'date', 'description', 'modality', 'accession', 'images'].map((k) => el('th', {}, t(k))))), body);
  let studies = [];
  try {
    studies = await getJSON('/dicom-web/studies?limit=200&includefield=StudyDescription&includefield=ModalitiesInStudy&includefield=NumberOfStudyRelatedInstances');
  } catch (e) { body.append(el('tr', {}, el('td', { colspan: 6 }, String(e)))); return table; }
  studies.sort((a, b) => String((val(b, '00080020') || '') + (val(b, '00080030') || '')).localeCompare(String((val(a, '00080020') || '') + (val(a, '00080030') || ''))));
  if (!studies.length) body.append(el('tr', {}, el('td', { colspan: 6 }, t('noItems'))));
  for (const s of studies) {
    const uid = val(s, '0020000D');
    const d = String(val(s, '00080020') || '');
    body.append(el('tr', { 'data-study': uid },
      el('td', {}, el('a', { href: '/app/study/' + uid, class: 'open-study' }, personName(val(s, '00100010')) || uid)),
      el('td', {}, d.length === 8 ? d.slice(0, 4) + '-' + d.slice(4, 6) + '-' + d.slice(6) : d),
      el('td', {}, val(s, '00081030') || ''),
      el('td', {}, (s['00080061'] && s['00080061'].Value || []).join(', ')),
      el('td', {}, val(s, '00080050') || ''),
      el('td', {}, String(val(s, '00201208') ?? ''))));
  }
  return table;
}

async function studiesPage(root) {
  root.append(el('section', { class: 'page' }, el('div', { class: 'toolbar' }, el('h2', {}, t('studies'))), await studyTable()));
  return null;
}

start().catch((e) => { console.error(e); });
