// report.js: the report editor (templates, draft autosave, sign).
import { session, api, el } from './api.js';
import { t } from './i18n.js';

const FIELDS = ['clinical_information', 'request_reason', 'technique', 'comparison', 'findings', 'conclusion'];

// Templates (French: the reports are French CDA documents).
export const TEMPLATES = {
  blank: { technique: '', findings: '', conclusion: '' },
  stroke: {
    technique: 'Scanner cérébral sans injection en urgence (alerte thrombolyse), acquisition hélicoïdale, reconstructions en coupes fines axiales, coronales et sagittales. Angioscanner du polygone de Willis et des troncs supra-aortiques si indiqué.',
    findings: 'Absence d’hémorragie intra- ou extra-axiale.\nPas d’hypodensité parenchymateuse constituée ; score ASPECTS : 10/10.\nPas de signe de l’artère cérébrale moyenne hyperdense.\nSystème ventriculaire de taille normale, en position médiane. Pas d’effet de masse.\nCiternes de la base libres.',
    conclusion: 'Pas d’hémorragie intracrânienne. Pas de signe précoce d’ischémie constituée (ASPECTS 10). Pas de contre-indication scanographique à la thrombolyse.',
  },
  head: {
    technique: 'Scanner cérébral sans injection de produit de contraste, acquisition hélicoïdale.',
    findings: 'Parenchyme cérébral de densité normale, sans lésion focale.\nPas d’hémorragie intracrânienne ni de collection extra-axiale.\nSystème ventriculaire de taille normale, médian.\nPas de lésion osseuse traumatique de la voûte.',
    conclusion: 'Scanner cérébral sans anomalie décelable.',
  },
  chest: {
    technique: 'Radiographie thoracique de face, debout, en inspiration.',
    findings: 'Pas de foyer de condensation parenchymateuse.\nPas d’épanchement pleural ni de pneumothorax.\nSilhouette cardio-médiastinale de taille normale.\nCoupoles diaphragmatiques en place.',
    conclusion: 'Radiographie thoracique sans anomalie.',
  },
};

export async function mountReport(side, studyUID, signal, requests) {
  const canWrite = session.role === 'radiologist';
  const stateEl = el('span', { class: 'badge state', id: 'report-state' }, '—');
  const saveEl = el('span', { class: 'status', id: 'report-save' });
  const tpl = el('select', { id: 'report-template', disabled: !canWrite },
    el('option', { value: '' }, t('template') + '…'),
    el('option', { value: 'stroke' }, t('tplStroke')), el('option', { value: 'head' }, t('tplHead')),
    el('option', { value: 'chest' }, t('tplChest')), el('option', { value: 'blank' }, t('tplBlank')));
  const areas = {};
  const form = el('div', { class: 'report-fields' });
  for (const f of FIELDS) {
    areas[f] = el('textarea', { id: 'f-' + f, name: f, rows: f === 'findings' ? 8 : f === 'conclusion' ? 4 : 2, disabled: !canWrite });
    form.append(el('label', {}, t(f), areas[f]));
  }
  const signBtn = el('button', { type: 'button', id: 'report-sign', class: 'primary', disabled: !canWrite }, t('sign'));
  const notices = el('ul', { class: 'notices', id: 'report-notices' });
  const docs = el('span', { class: 'docs', id: 'report-docs' });
  const box = el('section', { class: 'panel report', id: 'report-panel' },
    el('div', { class: 'panel-head' }, el('h3', {}, t('report')), stateEl),
    el('div', { class: 'row' }, tpl, saveEl),
    form, el('div', { class: 'row' }, signBtn, docs), notices);
  side.append(box);
  if (!canWrite) saveEl.textContent = t('readOnly');

  let report = null;
  let dirty = false;
  let timer = null;
  let saving = null;

  function content() {
    const c = {};
    for (const f of FIELDS) c[f] = areas[f].value;
    return c;
  }
  function show(rep) {
    report = rep;
    stateEl.textContent = t(rep.state);
    stateEl.dataset.state = rep.state;
    stateEl.className = 'badge state ' + rep.state;
    const editable = canWrite && rep.state === 'draft';
    for (const f of FIELDS) areas[f].disabled = !editable;
    tpl.disabled = !editable;
    signBtn.disabled = !editable;
    const last = (rep.versions || [])[rep.versions ? rep.versions.length - 1 : 0];
    notices.replaceChildren(...((last && last.notices) || []).map((n) => el('li', {}, n)));
    docs.replaceChildren();
    if (last && last.pdf_url) docs.append(el('a', { href: last.pdf_url, target: '_blank', rel: 'noopener', id: 'report-pdf' }, 'PDF v' + last.number));
    if (last && last.cda_url) docs.append(' · ', el('a', { href: last.cda_url, target: '_blank', rel: 'noopener', id: 'report-cda' }, 'CDA'));
  }
  function fill(c) {
    for (const f of FIELDS) areas[f].value = (c && c[f]) || '';
  }

  try {
    const r = await api('GET', '/api/reports?study=' + encodeURIComponent(studyUID), undefined, { headers: { Accept: 'application/json' }, signal });
    if (r.ok) {
      const list = (await r.json()).reports || [];
      list.sort((a, b) => String(a.created).localeCompare(String(b.created)));
      const rep = list[list.length - 1];
      if (rep) { fill(rep.content); show(rep); }
    }
  } catch (e) { /* no report API */ }

  // A new report starts from the request: its clinical information, its
  // question as the request reason, the patient's birth place (for the
  // INS in the CDA). Saved with the first edit.
  let birthPlace = '';
  const reqs = (await (requests || Promise.resolve([]))) || [];
  const rq = reqs.find((q) => !q.cancelled) || null;
  if (rq) {
    birthPlace = (rq.patient && rq.patient.birth_place) || '';
    if (!report && canWrite) {
      if (!areas.clinical_information.value && rq.clinical_information) areas.clinical_information.value = rq.clinical_information;
      if (!areas.request_reason.value && rq.question) areas.request_reason.value = rq.question;
    }
  }

  async function save() {
    if (saving) await saving;
    if (!dirty || !canWrite) return;
    dirty = false;
    saveEl.textContent = t('saving');
    saving = (async () => {
      let r;
      if (!report) r = await api('POST', '/api/reports', Object.assign({ study_instance_uid: studyUID }, content(), birthPlace ? { patient_birth_place: birthPlace } : {}));
      else r = await api('PATCH', '/api/reports/' + report.id, Object.assign({ revision: report.revision }, content()));
      const j = await r.json().catch(() => ({}));
      if (r.ok) { show(j); saveEl.textContent = t('saved') + ' ' + new Date().toLocaleTimeString(); saveEl.dataset.saved = String(j.revision); }
      else { dirty = true; saveEl.textContent = t('notSaved') + ' (' + r.status + '): ' + (j.error || ''); }
    })();
    try { await saving; } finally { saving = null; }
  }
  function changed() {
    dirty = true;
    saveEl.textContent = t('notSaved');
    clearTimeout(timer);
    timer = setTimeout(save, 1000);
  }
  for (const f of FIELDS) areas[f].addEventListener('input', changed);
  tpl.addEventListener('change', () => {
    const v = TEMPLATES[tpl.value];
    if (!v) return;
    const typed = ['technique', 'findings', 'conclusion'].some((f) => areas[f].value.trim());
    if (typed && !window.confirm(t('replaceTemplate'))) { tpl.value = ''; return; }
    for (const [k, s] of Object.entries(v)) areas[k].value = s;
    tpl.value = '';
    changed();
  });
  signBtn.addEventListener('click', async () => {
    clearTimeout(timer);
    if (!report) dirty = true;
    await save();
    if (!report || dirty) return;
    signBtn.disabled = true;
    const r = await api('POST', '/api/reports/' + report.id + '/sign', { revision: report.revision });
    const j = await r.json().catch(() => ({}));
    if (r.ok) { show(j); saveEl.textContent = ''; }
    else {
      signBtn.disabled = false;
      const why = [j.error, ...(j.missing || j.problems || j.details || [])].filter(Boolean);
      notices.replaceChildren(el('li', { class: 'err' }, t('signFailed') + ' (' + r.status + ')'), ...why.map((w) => el('li', { class: 'err' }, typeof w === 'string' ? w : JSON.stringify(w))));
    }
  });
  return box;
}
