// requests.js: the telemedicine requests page. A requester sees its site's
// requests (the API filters them), records a new one with the patient's
// consent, follows each one's state (awaiting consent, open, linked — with
// the reconciliation the matcher asks for —, reported, cancelled) and its
// history, records the consent later, and cancels with a reason.
// Radiologists and administrators see every site's.
import { session, api, el } from './api.js';
import { t } from './i18n.js';

function fmt(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString(session.lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'short', timeStyle: 'short' });
}

async function errorText(r) {
  const j = await r.json().catch(() => ({}));
  return r.status + ' ' + (j.error_description || j.error || '');
}

// stateLabel is a request's state as the user reads it.
export function stateLabel(q) {
  let s = t(q.state === 'open' ? 'stateOpen' : q.state === 'cancelled' ? 'rqCancelled' : q.state);
  if (q.cancelled && q.cancel_reason) s += ' : ' + q.cancel_reason;
  return s;
}

function field(label, input) { return el('label', { class: 'fld' }, el('span', {}, label), input); }
function select(id, options, value) {
  // The value given is the default (form.reset() comes back to it).
  return el('select', { id }, ...options.map(([v, l]) => el('option', { value: v, selected: value !== undefined && v === value }, l)));
}

function consentInputs(prefix) {
  const status = select(prefix + 'consent-status', [['given', t('consentGiven')], ['refused', t('consentRefused')], ['', t('consentLater')]], 'given');
  const method = select(prefix + 'consent-method', [['oral', t('oral')], ['written', t('written')], ['other', t('otherMethod')]], 'oral');
  const text = el('input', { id: prefix + 'consent-text', type: 'text' });
  return { status, method, text, box: el('fieldset', { class: 'consent-box' }, el('legend', {}, t('consentStatus')),
    field(t('consentStatus'), status), field(t('consentMethod'), method), field(t('consentText'), text)) };
}

export async function requestsPage(root) {
  const note = el('p', { class: 'note', id: 'rq-note', role: 'status' });
  const body = el('tbody');
  const table = el('table', { class: 'list', id: 'requests' },
    el('thead', {}, el('tr', {}, ...['urgency', 'patient', 'question', 'site', 'state', 'created', ''].map((k) => el('th', {}, k ? t(k) : '')))), body);
  const detail = el('div', { id: 'rq-detail' });
  const ctl = new AbortController();

  // The form.
  const inp = (id, attrs) => el('input', Object.assign({ id: 'rq-' + id, type: 'text' }, attrs || {}));
  const f = {
    physician: inp('physician', { required: true }), rpps: inp('rpps', { inputmode: 'numeric' }),
    name: inp('patient-name', { required: true }), firstNames: inp('first-names'), birthName: inp('birth-name'),
    sex: select('rq-sex', [['', '—'], ['F', 'F'], ['M', 'M'], ['U', 'U']], ''),
    birthDate: inp('birth-date', { type: 'date' }), birthPlace: inp('birth-place'), ipp: inp('ipp'), ins: inp('ins', { inputmode: 'numeric' }),
    insStatus: select('rq-ins-status', ['PROV', 'RECUP', 'VALI', 'QUAL'].map((s) => [s, s]), 'PROV'), insEvidence: inp('ins-evidence'),
    clinical: el('textarea', { id: 'rq-clinical', rows: 2 }), question: el('textarea', { id: 'rq-question', rows: 2, required: true }),
    urgency: select('rq-urgency', ['STAT', 'URGENT', 'ROUTINE'].map((s) => [s, s]), 'URGENT'),
    accession: inp('accession'), study: inp('study'), site: inp('site'),
  };
  const consent = consentInputs('rq-');
  const formNote = el('p', { class: 'note', id: 'rq-form-note', role: 'status' });
  const form = el('form', { id: 'rq-form', class: 'panel rq-form', onsubmit: submit },
    el('h3', {}, t('newRequest')),
    el('div', { class: 'grid' },
      session.role === 'admin' ? field(t('site'), f.site) : null,
      field(t('physician'), f.physician), field(t('rpps'), f.rpps),
      field(t('patientName'), f.name), field(t('firstNames'), f.firstNames), field(t('birthName'), f.birthName), field(t('sex'), f.sex),
      field(t('birthDate'), f.birthDate), field(t('birthPlace'), f.birthPlace), field(t('ipp'), f.ipp), field(t('ins'), f.ins),
      field(t('insStatus'), f.insStatus), field(t('insEvidence'), f.insEvidence),
      field(t('urgency'), f.urgency), field(t('accession'), f.accession), field(t('studyUID'), f.study)),
    field(t('clinical_information'), f.clinical), field(t('question'), f.question),
    consent.box,
    el('div', { class: 'row' }, el('button', { type: 'submit', class: 'primary', id: 'rq-submit' }, t('record')), formNote));

  const canCreate = session.role === 'requester' || session.role === 'admin';
  root.append(el('section', { class: 'page requests-page' },
    el('div', { class: 'toolbar' }, el('h2', {}, t('requests')), note),
    el('div', { class: 'rq-cols' }, el('div', { class: 'rq-list' }, table, detail), canCreate ? form : null)));

  let list = [];
  let selected = '';

  async function load() {
    let r;
    try {
      r = await api('GET', '/api/requests', undefined, { headers: { Accept: 'application/json' }, signal: ctl.signal });
    } catch (e) { return; }
    if (!r.ok) { note.textContent = '/api/requests: ' + await errorText(r); return; }
    const j = await r.json();
    list = (j.requests || []).slice().sort((a, b) => String(b.created).localeCompare(String(a.created)));
    render();
  }

  function render() {
    body.replaceChildren();
    if (!list.length) body.append(el('tr', {}, el('td', { colspan: 7 }, t('noRequests'))));
    for (const q of list) {
      const p = q.patient || {};
      body.append(el('tr', { 'data-request': q.id, class: (q.id === selected ? 'selected ' : '') + 'rq-' + q.state },
        el('td', {}, el('span', { class: 'badge prio-' + String(q.urgency || '').toLowerCase() }, q.urgency || '')),
        el('td', {}, [p.name, p.first_names].filter(Boolean).join(' ')),
        el('td', {}, q.question || ''),
        el('td', {}, q.site || ''),
        el('td', { class: 'rq-state' }, el('span', { class: 'badge state rq-' + q.state }, stateLabel(q)),
          q.reconciliation_needed ? el('span', { class: 'badge late' }, t('reconciliation')) : null),
        el('td', {}, fmt(q.created)),
        el('td', {}, el('button', { type: 'button', class: 'rq-open', onclick: () => { selected = q.id; render(); showDetail(); } }, t('details')))));
    }
    if (selected) showDetail();
  }

  function showDetail() {
    const q = list.find((x) => x.id === selected);
    detail.replaceChildren();
    if (!q) return;
    const dl = el('dl', { class: 'kv' });
    const row = (k, v, cls) => { if (v) dl.append(el('dt', {}, k), el('dd', { class: cls || '' }, v)); };
    const p = q.patient || {};
    row('ID', q.id);
    row(t('state'), stateLabel(q), 'rq-state-text');
    row(t('urgency'), q.urgency, 'urgency ' + String(q.urgency || '').toLowerCase());
    row(t('physician'), [q.requester && q.requester.name, q.requester && q.requester.rpps ? 'RPPS ' + q.requester.rpps : ''].filter(Boolean).join(' · '));
    row(t('site'), q.site);
    row(t('patient'), [p.name, p.first_names, p.sex, p.birth_date].filter(Boolean).join(' '));
    row(t('ins'), [p.ins, p.ins_status].filter(Boolean).join(' · '));
    row(t('ipp'), p.local_id);
    row(t('clinical_information'), q.clinical_information);
    row(t('question'), q.question);
    row(t('accession'), q.accession_number);
    row(t('studyUID'), q.study_instance_uid);
    const c = q.consent;
    if (c) row(t('consentStatus'), t(c.status === 'given' ? 'consentGiven' : 'consentRefused') + ' (' + t(c.method === 'other' ? 'otherMethod' : c.method) + ')' +
      (c.text ? ' : ' + c.text : '') + ' — ' + (c.recorded_by || '') + ' ' + fmt(c.recorded_at), 'consent ' + c.status);
    else row(t('consentStatus'), t('awaiting-consent'), 'consent awaiting');
    if (q.study_linked) row(t('link'), t('linked') + ' · ' + (q.linked_by === 'auto' ? 'auto' : q.linked_by || '') + ' ' + fmt(q.linked_at), 'rq-linked');
    if (q.reconciliation_needed || q.reconciliation) {
      const rc = q.reconciliation || {};
      row(t('reconciliation'), [rc.study_instance_uid, (rc.reasons || []).join(' ; ')].filter(Boolean).join(' : '), 'consent refused rq-reconciliation');
    }
    const hist = el('table', { class: 'list', id: 'rq-history' }, el('thead', {}, el('tr', {}, el('th', {}, t('when')), el('th', {}, t('user')), el('th', {}, t('what')))),
      el('tbody', {}, ...(q.history || []).map((h) => el('tr', {}, el('td', {}, fmt(h.at)), el('td', {}, h.user || ''),
        el('td', {}, [h.kind, h.reason, h.note].filter(Boolean).join(' — '))))));
    const box = el('section', { class: 'panel', id: 'rq-detail-panel', 'data-request': q.id }, el('h3', {}, t('request') + ' ' + q.id), dl,
      el('h3', {}, t('history')), hist);
    const msg = el('p', { class: 'note', id: 'rq-action-note', role: 'status' });
    const final = q.cancelled || q.state === 'cancelled';
    if (!final && session.role !== 'radiologist') {
      if (!q.consent || q.consent.status !== 'given') {
        const ci = consentInputs('rc-');
        box.append(el('form', { id: 'rq-consent-form', onsubmit: async (e) => {
          e.preventDefault();
          if (!ci.status.value) return;
          const r = await api('POST', '/api/requests/' + encodeURIComponent(q.id) + '/consent', { status: ci.status.value, method: ci.method.value, text: ci.text.value });
          msg.textContent = r.ok ? t('recorded') : t('recordConsent') + ': ' + await errorText(r);
          await load();
        } }, ci.box, el('button', { type: 'submit', id: 'rq-consent-submit' }, t('recordConsent'))));
      }
      const reason = el('input', { type: 'text', id: 'rq-cancel-reason', placeholder: t('reason') });
      box.append(el('form', { id: 'rq-cancel-form', class: 'row', onsubmit: async (e) => {
        e.preventDefault();
        if (!reason.value.trim()) { msg.textContent = t('reasonRequired'); return; }
        const r = await api('POST', '/api/requests/' + encodeURIComponent(q.id) + '/cancel', { reason: reason.value.trim() });
        msg.textContent = r.ok ? '' : t('cancelRequest') + ': ' + await errorText(r);
        await load();
      } }, reason, el('button', { type: 'submit', id: 'rq-cancel' }, t('cancelRequest'))));
    }
    if (q.study_instance_uid && q.study_linked) box.append(el('p', {}, el('a', { href: '/app/study/' + q.study_instance_uid, id: 'rq-open-study' }, t('open'))));
    box.append(msg);
    detail.append(box);
  }

  async function submit(e) {
    e.preventDefault();
    const bd = f.birthDate.value.replace(/-/g, '');
    const body = {
      requester: { name: f.physician.value.trim(), rpps: f.rpps.value.trim() || undefined },
      patient: { name: f.name.value.trim(), first_names: f.firstNames.value.trim() || undefined, birth_name: f.birthName.value.trim() || undefined,
        sex: f.sex.value || undefined, birth_date: bd || undefined, birth_place: f.birthPlace.value.trim() || undefined, local_id: f.ipp.value.trim() || undefined,
        ins: f.ins.value.trim() || undefined, ins_status: f.insStatus.value, ins_status_evidence: f.insEvidence.value.trim() || undefined },
      clinical_information: f.clinical.value.trim() || undefined, question: f.question.value.trim(), urgency: f.urgency.value,
      accession_number: f.accession.value.trim() || undefined, study_instance_uid: f.study.value.trim() || undefined,
    };
    if (session.role === 'admin' && f.site.value.trim()) body.site = f.site.value.trim();
    if (consent.status.value) body.consent = { status: consent.status.value, method: consent.method.value, text: consent.text.value.trim() || undefined };
    const r = await api('POST', '/api/requests', body);
    if (!r.ok) { formNote.textContent = t('record') + ': ' + await errorText(r); formNote.classList.add('err'); return; }
    const q = await r.json();
    formNote.classList.remove('err');
    formNote.textContent = t('recorded') + ' : ' + q.id;
    formNote.dataset.request = q.id;
    form.reset();
    selected = q.id;
    await load();
  }

  await load();
  // The state follows the images (linked when the study arrives): poll.
  const timer = setInterval(load, 2000);
  return () => { clearInterval(timer); ctl.abort(); };
}
