// request.js: the telemedicine request (and consent) linked to the study,
// from GET /api/requests?study=UID when that API exists.
import { api, el } from './api.js';
import { t } from './i18n.js';

const LABELS = {
  urgency: 'Urgence / urgency', priority: 'Priorité / priority', requester: 'Demandeur / requester', requesting_physician: 'Demandeur / requester',
  site: 'Site', clinical_information: 'Renseignements cliniques / clinical information', question: 'Question', state: 'État / state',
  accession_number: 'N° accession', status: 'Statut / status', reconciliation: 'Rapprochement / reconciliation',
};

function flat(o, prefix, out) {
  for (const [k, v] of Object.entries(o || {})) {
    if (v === null || v === undefined || v === '' || k === 'id' && prefix) continue;
    const key = prefix ? prefix + '.' + k : k;
    if (Array.isArray(v)) out.push([key, v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ')]);
    else if (typeof v === 'object') flat(v, key, out);
    else out.push([key, String(v)]);
  }
  return out;
}

export async function mountRequest(side, studyUID, signal) {
  const box = el('section', { class: 'panel', id: 'request-panel' }, el('h3', {}, t('request')));
  side.prepend(box);
  let r;
  try {
    r = await api('GET', '/api/requests?study=' + encodeURIComponent(studyUID), undefined, { headers: { Accept: 'application/json' }, signal });
  } catch (e) { return; }
  if (r.status === 404 || r.status === 405 || r.status === 501) { box.remove(); return; }
  if (!r.ok) { box.append(el('p', { class: 'note' }, '/api/requests: ' + r.status)); return; }
  const j = await r.json();
  const list = Array.isArray(j) ? j : j.requests || j.items || [];
  if (!list.length) { box.append(el('p', { class: 'note' }, t('noRequest'))); return; }
  for (const req of list) {
    const dl = el('dl', { class: 'kv' });
    for (const [k, v] of flat(req, '', [])) {
      const consent = k.startsWith('consent');
      dl.append(el('dt', { class: consent ? 'consent' : '' }, LABELS[k] || (consent ? t('consent') + ' ' + k.slice(7).replace(/^\./, '') : k)), el('dd', {}, v));
    }
    box.append(dl);
  }
}
