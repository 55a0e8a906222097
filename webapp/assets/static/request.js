// request.js: the telemedicine request (with the patient's consent)
// linked to the study, from GET /api/requests?study=UID when that API
// exists (404: the panel is not shown). Returns the requests.
import { api, el } from './api.js';
import { t } from './i18n.js';
import { session } from './api.js';

const L = {
  fr: { urgency: 'Urgence', requester: 'Demandeur', site: 'Site', patient: 'Patient', ins: 'INS', clinical: 'Renseignements cliniques',
    question: 'Question', consent: 'Consentement', given: 'donné', refused: 'refusé', awaiting: 'en attente du consentement',
    by: 'recueilli par', link: 'Lien avec l’examen', auto: 'automatique', reconcile: 'rapprochement à vérifier', state: 'État', cancelled: 'annulée' },
  en: { urgency: 'Urgency', requester: 'Requester', site: 'Site', patient: 'Patient', ins: 'INS', clinical: 'Clinical information',
    question: 'Question', consent: 'Consent', given: 'given', refused: 'refused', awaiting: 'awaiting consent',
    by: 'recorded by', link: 'Link to the study', auto: 'automatic', reconcile: 'reconciliation to check', state: 'State', cancelled: 'cancelled' },
};

function fmt(s) {
  if (!s) return '';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString(session.lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'short', timeStyle: 'short' });
}

export async function mountRequest(side, studyUID, signal) {
  const box = el('section', { class: 'panel', id: 'request-panel' }, el('h3', {}, t('request')));
  side.prepend(box);
  let r;
  try {
    r = await api('GET', '/api/requests?study=' + encodeURIComponent(studyUID), undefined, { headers: { Accept: 'application/json' }, signal });
  } catch (e) { return []; }
  if (r.status === 404 || r.status === 405 || r.status === 501) { box.remove(); return []; }
  if (!r.ok) { box.append(el('p', { class: 'note' }, '/api/requests: ' + r.status)); return []; }
  const j = await r.json();
  const list = Array.isArray(j) ? j : j.requests || j.items || [];
  if (!list.length) { box.append(el('p', { class: 'note' }, t('noRequest'))); return []; }
  const l = L[session.lang] || L.fr;
  for (const q of list) {
    const dl = el('dl', { class: 'kv', 'data-request': q.id || '' });
    const row = (k, v, cls) => { if (v) dl.append(el('dt', {}, k), el('dd', { class: cls || '' }, v)); };
    row(l.urgency, q.urgency, 'urgency ' + String(q.urgency || '').toLowerCase());
    row(l.state, q.cancelled ? l.cancelled + (q.cancel_reason ? ' : ' + q.cancel_reason : '') : q.state);
    const rq = q.requester || {};
    row(l.requester, [rq.name, rq.rpps ? 'RPPS ' + rq.rpps : ''].filter(Boolean).join(' · '));
    row(l.site, q.site);
    const p = q.patient || {};
    row(l.patient, [p.name, p.first_names, p.sex, p.birth_date].filter(Boolean).join(' '));
    row(l.ins, [p.ins, p.ins_status].filter(Boolean).join(' · '));
    row(l.clinical, q.clinical_information);
    row(l.question, q.question);
    const c = q.consent;
    if (c) row(l.consent, (l[c.status] || c.status) + (c.method ? ' (' + c.method + ')' : '') + ' — ' + l.by + ' ' + (c.recorded_by || '') + ' ' + fmt(c.recorded_at) + (c.text ? ' : ' + c.text : ''), 'consent ' + c.status);
    else if (q.awaiting_consent) row(l.consent, l.awaiting, 'consent awaiting');
    if (q.study_linked) row(l.link, (q.linked_by === 'auto' ? l.auto : q.linked_by || '') + ' ' + fmt(q.linked_at));
    if (q.reconciliation_needed || q.reconciliation) row(l.link, l.reconcile + ((q.reconciliation && q.reconciliation.reasons) ? ' : ' + q.reconciliation.reasons.join(', ') : ''), 'consent refused');
    if (!dl.childElementCount) for (const [k, v] of Object.entries(q)) if (v && typeof v !== 'object') row(k, String(v));
    box.append(dl);
  }
  return list;
}
