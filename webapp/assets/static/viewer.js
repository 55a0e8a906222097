// viewer.js: the study viewer. A canvas stack viewer written for Relais
// (no library): frames come from WADO-RS (/frames/N as
// application/octet-stream) and are decoded here from the instance
// metadata (rows, columns, bits allocated, pixel representation, rescale,
// photometric interpretation); window/level is applied client-side with a
// lookup table. Compressed frames (the server answers 406 to octet-stream)
// fall back to /rendered with the window as a parameter.
import { session, api, getJSON, el, val, vals, num, personName } from './api.js';
import { t } from './i18n.js';
import { mountReport } from './report.js';
import { mountRequest } from './request.js';

// CT presets, center/width in HU.
export const PRESETS = [
  { key: 'presetBrain', id: 'brain', c: 40, w: 80 },
  { key: 'presetStroke', id: 'stroke', c: 35, w: 40 },
  { key: 'presetBone', id: 'bone', c: 400, w: 1800 },
  { key: 'presetLung', id: 'lung', c: -600, w: 1500 },
];

const IMAGE_MODALITIES = new Set(['CT', 'MR', 'CR', 'DX', 'MG', 'XA', 'RF', 'US', 'PT', 'NM', 'OT', 'IO', 'PX']);
const NON_IMAGE_CLASSES = /^1\.2\.840\.10008\.5\.1\.4\.1\.1\.(88\.|104\.|11\.|9\.|66|481)/;
const MAX_CACHE = 320;
const PREFETCH = 6;

function fmtDate(d) {
  d = String(d || '');
  return d.length === 8 ? d.slice(6) + '/' + d.slice(4, 6) + '/' + d.slice(0, 4) : d;
}

// openStudy: the study page. It owns the header, the priors, the side
// panels, the toolbar and the keyboard; the images are in a stack viewer
// (createStackViewer), and a second one shows a prior study beside the
// current one for comparison.
export async function openStudy(root, studyUID) {
  const timing = (window.relaisTiming = { open: performance.now(), firstImage: 0, study: studyUID });
  const ctl = new AbortController();

  // Layout.
  const title = el('div', { class: 'study-title', id: 'study-title' }, t('loading'));
  const priors = el('div', { class: 'priors', id: 'priors' });
  const keyStatus = el('span', { id: 'key-status', class: 'status' });
  let tool = 'wl';
  let prior = null; // the comparison viewer, when open
  let linked = false; // linked scrolling (and window presets) in comparison
  let focused = null;
  const onFocus = (v) => {
    if (focused === v) return;
    focused = v;
    for (const x of [primary, prior]) if (x) x.pane.classList.toggle('focused', x === v);
  };
  // The stacks move by the same number of images when linked.
  const onScroll = (v, d) => {
    if (!d) return;
    v.scroll(d);
    if (linked && prior) for (const x of [primary, prior]) if (x !== v) x.scroll(d);
  };
  const targets = () => (linked && prior ? [primary, prior] : [focused || primary]);
  const primary = createStackViewer(studyUID, { suffix: '', timing, tool: () => tool, onFocus, onScroll });
  focused = primary;

  const tools = {};
  const toolbar = el('div', { class: 'vtoolbar' });
  for (const [id, key] of [['wl', 'wl'], ['pan', 'pan'], ['zoom', 'zoom'], ['measure', 'measure']]) {
    tools[id] = el('button', { type: 'button', id: 'tool-' + id, onclick: () => setTool(id) }, t(key));
    toolbar.append(tools[id]);
  }
  toolbar.append(el('span', { class: 'sep' }));
  const setWindow = (c, w) => { for (const v of targets()) v.setWindow(c, w); };
  for (const p of PRESETS) toolbar.append(el('button', { type: 'button', id: 'preset-' + p.id, title: p.c + '/' + p.w, onclick: () => setWindow(p.c, p.w) }, t(p.key)));
  toolbar.append(el('button', { type: 'button', id: 'preset-default', onclick: () => { for (const v of targets()) v.defaultWindow(); } }, t('presetDefault')));
  toolbar.append(el('button', { type: 'button', id: 'reset', onclick: () => { for (const v of targets()) v.resetView(); } }, t('reset')));
  toolbar.append(el('span', { class: 'sep' }));
  const keyBtn = el('button', { type: 'button', id: 'key-image', onclick: flagKey, disabled: session.role !== 'radiologist' }, '★ ' + t('keyImage'));
  toolbar.append(keyBtn, keyStatus);
  // Shown in comparison only: link the stacks, close the prior.
  const linkBtn = el('button', { type: 'button', id: 'compare-link', 'aria-pressed': 'false', title: t('linkScrollHint'), onclick: () => setLinked(!linked) }, '⇅ ' + t('linkScroll'));
  const closeBtn = el('button', { type: 'button', id: 'compare-close', onclick: () => closeCompare() }, '✕ ' + t('closeCompare'));
  const compareBar = el('span', { class: 'compare-bar', id: 'compare-bar', hidden: true }, el('span', { class: 'sep' }), linkBtn, closeBtn);
  toolbar.append(compareBar);
  const viewports = el('div', { class: 'viewports', id: 'viewports' }, primary.pane);
  const side = el('aside', { class: 'side' });
  root.append(el('div', { class: 'study' },
    el('div', { class: 'study-head' }, title),
    el('div', { class: 'study-body' },
      el('nav', { class: 'series-col' }, el('h3', {}, t('series')), primary.seriesList, priors),
      el('section', { class: 'viewer' }, toolbar, viewports),
      side)));
  setTool('wl');

  function setTool(id) {
    tool = id;
    for (const [k, b] of Object.entries(tools)) b.classList.toggle('active', k === id);
    for (const v of [primary, prior]) if (v) v.canvas.dataset.tool = id;
  }
  function setLinked(on) {
    linked = on;
    linkBtn.classList.toggle('active', on);
    linkBtn.setAttribute('aria-pressed', String(on));
    viewports.dataset.linked = String(on);
  }

  async function openCompare(uid, label) {
    closeCompare();
    const v = createStackViewer(uid, { suffix: '-prior', tool: () => tool, onFocus, onScroll });
    prior = v;
    v.seriesList.classList.add('series-strip');
    v.pane.classList.add('prior-pane');
    v.pane.prepend(el('div', { class: 'pane-head', id: 'compare-head' }, el('b', {}, t('priorStudy') + ' ' + label), v.seriesList));
    v.overlayTL.textContent = label;
    v.canvas.dataset.tool = tool;
    viewports.append(v.pane);
    viewports.classList.add('compare');
    compareBar.hidden = false;
    primary.pane.classList.add('focused');
    onFocus(primary);
    primary.draw();
    const r = await v.load();
    if (prior !== v) return;
    if (r !== 'ok') v.pane.querySelector('.stage').append(el('p', { class: 'note msg', id: 'compare-error' }, t(r === 'notfound' ? 'notFound' : 'notImage')));
  }
  function closeCompare() {
    if (!prior) return;
    prior.destroy();
    prior.pane.remove();
    prior = null;
    viewports.classList.remove('compare');
    primary.pane.classList.remove('focused');
    compareBar.hidden = true;
    setLinked(false);
    focused = null;
    onFocus(primary);
    primary.draw();
    primary.canvas.focus();
  }

  // 1. The study's images.
  const status = await primary.load();
  if (status === 'notfound') {
    title.replaceChildren(el('span', { id: 'study-notfound', class: 'err' }, t('notFound')));
    root.querySelector('.study-body').replaceChildren(el('p', { class: 'note page', id: 'study-notfound-body' }, t('notFound')));
    primary.destroy();
    return () => ctl.abort();
  }
  if (status === 'empty') {
    title.textContent = t('notImage');
    primary.destroy();
    return () => ctl.abort();
  }

  // Study header.
  getJSON('/dicom-web/studies?StudyInstanceUID=' + studyUID + '&includefield=StudyDescription', { signal: ctl.signal }).then((r) => {
    const s = r[0] || {};
    title.replaceChildren(el('b', { id: 'patient-name' }, personName(val(s, '00100010'))), ' · ', val(s, '00100020') || '', ' · ',
      fmtDate(val(s, '00080020')), ' · ', val(s, '00081030') || '', ' · ', t('accession'), ' ', val(s, '00080050') || '');
    primary.overlayTL.textContent = personName(val(s, '00100010'));
    // The patient's other studies (priors): compared side by side in this
    // page, or opened in a window of their own.
    const pid = val(s, '00100020');
    if (!pid) return;
    getJSON('/dicom-web/studies?PatientID=' + encodeURIComponent(pid) + '&includefield=StudyDescription&includefield=ModalitiesInStudy', { signal: ctl.signal }).then((all) => {
      const others = all.filter((x) => val(x, '0020000D') !== studyUID)
        .sort((a, b) => String(val(b, '00080020') || '').localeCompare(String(val(a, '00080020') || '')));
      if (!others.length) return;
      priors.append(el('h3', {}, t('priors')));
      for (const x of others) {
        const uid = val(x, '0020000D');
        const what = (vals(x, '00080061').join('/') + ' ' + (val(x, '00081030') || '')).trim();
        const label = fmtDate(val(x, '00080020')) + ' ' + what;
        priors.append(el('div', { class: 'prior-item', 'data-study': uid },
          el('a', { class: 'prior', href: '/app/study/' + uid, target: '_blank', rel: 'noopener', 'data-study': uid, title: t('openWindow') },
            fmtDate(val(x, '00080020')), el('br'), what),
          el('button', { type: 'button', class: 'compare-prior', 'data-study': uid, onclick: () => openCompare(uid, label) }, '◫ ' + t('compare'))));
      }
    }).catch(() => {});
  }).catch(() => {});

  // Side panels: the request (if the API exists) and the report editor.
  const requests = mountRequest(side, studyUID, ctl.signal).catch(() => []);
  mountReport(side, studyUID, ctl.signal, requests);

  // The key image is flagged on the current study's displayed image.
  async function flagKey() {
    const ci = primary.currentImage();
    if (!ci) return;
    const { s, inst } = ci;
    keyStatus.textContent = '…';
    const r = await api('POST', '/api/studies/' + studyUID + '/key-images', {
      description: t('keyImage') + ' ' + (inst.num || s.index + 1),
      instances: [inst.frames > 1 ? { sop_instance_uid: inst.sop, frames: [inst.frame] } : { sop_instance_uid: inst.sop }],
    });
    let msg = '';
    try { const j = await r.json(); msg = j.error || ''; } catch (e) { /* empty */ }
    keyStatus.textContent = (r.ok ? t('keyImageDone') : t('keyImageFailed')) + ' (' + r.status + ')' + (msg ? ': ' + msg : '');
    keyStatus.dataset.status = String(r.status);
    keyStatus.className = 'status ' + (r.ok ? 'ok' : 'err');
  }

  // The keyboard: the focused viewer (and the other when linked).
  const onKey = (e) => {
    if (e.target.closest('input, textarea, select, [contenteditable]')) return;
    const k = e.key;
    const v = focused || primary;
    if (k === 'ArrowDown' || k === 'ArrowRight') { onScroll(v, 1); e.preventDefault(); }
    else if (k === 'ArrowUp' || k === 'ArrowLeft') { onScroll(v, -1); e.preventDefault(); }
    else if (k === 'PageDown') { onScroll(v, 10); e.preventDefault(); }
    else if (k === 'PageUp') { onScroll(v, -10); e.preventDefault(); }
    else if (k === 'Home') onScroll(v, -1e9);
    else if (k === 'End') onScroll(v, 1e9);
    else if (k >= '1' && k <= '4') { const p = PRESETS[k - 1]; setWindow(p.c, p.w); }
    else if (k === 'Escape' && prior) closeCompare();
  };
  document.addEventListener('keydown', onKey);

  await primary.shown;
  primary.canvas.focus();
  return () => {
    ctl.abort();
    primary.destroy();
    if (prior) prior.destroy();
    document.removeEventListener('keydown', onKey);
  };
}

// createStackViewer: one study's stack viewer (its series list, canvas,
// overlays and slider), instantiable more than once on a page. opts:
// suffix (for the element ids: '' for the current study), timing (the
// first image's, for the current study), tool() (the page's mouse tool),
// onFocus(v), onScroll(v, d) (the page moves this stack, or both).
function createStackViewer(studyUID, opts) {
  const sfx = opts.suffix || '';
  const ctl = new AbortController();
  const base = '/dicom-web/studies/' + studyUID;
  const seriesList = el('div', { class: 'series-list', id: 'series-list' + sfx });
  const canvas = el('canvas', { id: 'viewport' + sfx, class: 'viewport', tabindex: '0' });
  const imageNumber = el('span', { id: 'image-number' + sfx });
  const wlValue = el('span', { id: 'wl-value' + sfx });
  const overlayTL = el('div', { class: 'ov tl', id: 'ov-patient' + sfx });
  const overlayTR = el('div', { class: 'ov tr' }, imageNumber, el('br'), wlValue);
  const overlayBL = el('div', { class: 'ov bl', id: 'ov-info' + sfx });
  const overlayBR = el('div', { class: 'ov br', id: 'ov-zoom' + sfx });
  const slider = el('input', { type: 'range', id: 'stack-slider' + sfx, min: '0', max: '0', value: '0', 'aria-label': 'stack' });
  const stage = el('div', { class: 'stage' }, canvas, overlayTL, overlayTR, overlayBL, overlayBR);
  const pane = el('div', { class: 'pane', 'data-study': studyUID }, stage, el('div', { class: 'stackbar' }, slider));
  const ctx = canvas.getContext('2d');
  const off = document.createElement('canvas');
  const offctx = off.getContext('2d');

  // State.
  const series = [];
  let current = null; // the displayed series object
  const view = { zoom: 1, px: 0, py: 0 };
  let lut = null;
  let lutKey = '';
  let rendering = false;
  let destroyed = false;
  let inflight = 0;
  let firstShown = false;
  const measures = new Map(); // "sop" -> [{x1,y1,x2,y2}]
  let drag = null;
  let shownResolve;
  const shown = new Promise((r) => { shownResolve = r; });
  const v = {
    studyUID, pane, seriesList, canvas, overlayTL, shown,
    load, draw: () => draw(), scroll, setWindow,
    defaultWindow() { const s = current; if (s) setWindow(s.defWC, s.defWW); },
    resetView() { view.zoom = 1; view.px = 0; view.py = 0; draw(); },
    currentImage() { const s = current; return s ? { s, inst: s.instances[s.index] } : null; },
    destroy,
  };

  // 1. Every instance of the study (one index query) and the series list.
  // 404: no such study, or another site's (a requester sees its own only).
  // Resolves to 'ok' (the first series shown), 'notfound' or 'empty'.
  async function load() {
    let notFound = false;
    const [insts, seriesQ] = await Promise.all([
      getJSON(base + '/instances?includefield=00200032&includefield=00280030', { signal: ctl.signal }).catch((e) => { if (e.status === 404 || e.status === 403) notFound = true; return []; }),
      getJSON(base + '/series', { signal: ctl.signal }).catch(() => []),
    ]);
    const bySeries = new Map();
    for (const d of insts) {
      const se = val(d, '0020000E');
      if (NON_IMAGE_CLASSES.test(val(d, '00080016') || '')) continue;
      if (!val(d, '00280010')) continue; // no Rows: not an image
      if (!bySeries.has(se)) bySeries.set(se, []);
      // A multi-frame instance is a stack of its own: one entry per frame.
      const frames = Math.max(1, num(d, '00280008', 1));
      for (let k = 1; k <= frames; k++) bySeries.get(se).push({ sop: val(d, '00080018'), num: num(d, '00200013', 0), frame: k, frames });
    }
    for (const s of seriesQ) {
      const uid = val(s, '0020000E');
      const list = bySeries.get(uid);
      if (!list || !IMAGE_MODALITIES.has(val(s, '00080060') || 'OT')) continue;
      list.sort((a, b) => a.num - b.num || a.frame - b.frame);
      series.push({ uid, modality: val(s, '00080060'), desc: val(s, '0008103E') || '', number: num(s, '00200011', 0), instances: list,
        index: 0, cache: new Map(), pending: new Map(), meta: new Map(), params: null, rendered: false, wc: null, ww: null });
    }
    series.sort((a, b) => a.number - b.number);
    if (notFound) { shownResolve(); return 'notfound'; }
    if (!series.length) { shownResolve(); return 'empty'; }
    if (destroyed) return 'ok';
    // The series shown first: the largest CT/MR series, else the first.
    let first = series[0];
    for (const s of series) if (s.instances.length > first.instances.length) first = s;
    buildThumbs();
    // The first image is drawn in the background (v.shown).
    showSeries(first).catch((e) => { if (!destroyed) console.error(e); }).then(shownResolve);
    return 'ok';
  }

  // Series thumbnails (loaded once the first image is shown).
  const thumbs = new Map();
  function buildThumbs() {
    for (const s of series) {
    const img = el('img', { alt: s.desc, width: '96', height: '96' });
    const b = el('button', { type: 'button', class: 'series-item', 'data-series': s.uid, onclick: () => { opts.onFocus(v); showSeries(s); } },
      img, el('span', {}, (s.modality || '') + ' ' + (s.number || '') + ' ' + s.desc), el('small', {}, s.instances.length + ' ' + t('images')));
    thumbs.set(s.uid, { b, img });
    seriesList.append(b);
    }
  }
  function loadThumbs() {
    for (const s of series) thumbs.get(s.uid).img.src = base + '/series/' + s.uid + '/thumbnail?viewport=96,96';
  }

  // Metadata: of one instance, then of the whole series in the background.
  function paramsOf(m) {
    const spacing = vals(m, '00280030').map(Number);
    const p = {
      rows: num(m, '00280010', 0), cols: num(m, '00280011', 0), bits: num(m, '00280100', 16), stored: num(m, '00280101', 16),
      signed: num(m, '00280103', 0) === 1, slope: num(m, '00281053', 1), intercept: num(m, '00281052', 0),
      photometric: String(val(m, '00280004') || 'MONOCHROME2').trim(), spp: num(m, '00280002', 1), planar: num(m, '00280006', 0),
      spacing: spacing.length === 2 && spacing.every(Number.isFinite) ? spacing : (vals(m, '00181164').length === 2 ? vals(m, '00181164').map(Number) : null),
      wc: num(m, '00281050', NaN), ww: num(m, '00281051', NaN), number: num(m, '00200013', 0),
      bigEndian: false,
    };
    return p;
  }
  async function instanceMeta(s, inst) {
    if (s.meta.has(inst.sop)) return s.meta.get(inst.sop);
    const r = await getJSON(base + '/series/' + s.uid + '/instances/' + inst.sop + '/metadata', { signal: ctl.signal });
    const p = paramsOf(r[0]);
    s.meta.set(inst.sop, p);
    return p;
  }
  function seriesMeta(s) {
    if (s.metaLoading) return;
    s.metaLoading = getJSON(base + '/series/' + s.uid + '/metadata', { signal: ctl.signal }).then((all) => {
      for (const m of all) s.meta.set(val(m, '00080018'), paramsOf(m));
      if (s === current) draw();
    }).catch(() => {});
  }

  // Frames.
  async function fetchFrame(s, i) {
    const inst = s.instances[i];
    if (s.cache.has(i)) return s.cache.get(i);
    if (s.pending.has(i)) return s.pending.get(i);
    const url = base + '/series/' + s.uid + '/instances/' + inst.sop + '/frames/' + inst.frame;
    const pr = (async () => {
      inflight++;
      try {
        if (!s.rendered) {
          const r = await api('GET', url, undefined, { headers: { Accept: 'application/octet-stream' }, signal: ctl.signal });
          if (r.status === 406 || r.status === 422) { s.rendered = true; }
          else if (!r.ok) throw new Error('frame ' + r.status);
          else {
            const buf = await r.arrayBuffer();
            const f = { buf, sop: inst.sop };
            s.cache.set(i, f);
            evict(s);
            return f;
          }
        }
        return { rendered: true, sop: inst.sop };
      } finally {
        inflight--;
        s.pending.delete(i);
      }
    })();
    s.pending.set(i, pr);
    return pr;
  }
  function evict(s) {
    if (s.cache.size <= MAX_CACHE) return;
    const far = [...s.cache.keys()].sort((a, b) => Math.abs(b - s.index) - Math.abs(a - s.index));
    for (const k of far.slice(0, s.cache.size - MAX_CACHE)) s.cache.delete(k);
  }
  let prefetchTimer = null;
  function prefetch() {
    clearTimeout(prefetchTimer);
    prefetchTimer = setTimeout(pump, 0);
  }
  function pump() {
    const s = current;
    if (!s || destroyed || s.rendered) return;
    const n = s.instances.length;
    // Ahead first (the direction of reading), then behind.
    for (let d = 1; d < n && inflight < PREFETCH; d++) {
      for (const i of [s.index + d, s.index - d]) {
        if (i < 0 || i >= n || s.cache.has(i) || s.pending.has(i) || inflight >= PREFETCH) continue;
        if (Math.abs(i - s.index) > MAX_CACHE / 2) return;
        fetchFrame(s, i).then(() => { if (!destroyed) pump(); }).catch(() => {});
      }
    }
  }

  // Pixels → gray through a LUT over every stored value.
  function buildLUT(p, wc, ww) {
    const key = [p.bits, p.stored, p.signed, p.slope, p.intercept, wc, ww, p.photometric].join('|');
    if (key === lutKey) return lut;
    const size = p.bits === 8 ? 256 : 65536;
    const table = new Uint8ClampedArray(size);
    const lo = wc - 0.5 - (ww - 1) / 2, width = Math.max(ww - 1, 1);
    const inv = p.photometric === 'MONOCHROME1';
    const sb = Math.min(Math.max(p.stored || p.bits, 1), p.bits === 8 ? 8 : 16);
    const mask = (1 << sb) - 1;
    for (let i = 0; i < size; i++) {
      // Bits above Bits Stored are ignored; signed values are extended
      // from the highest stored bit.
      let stored = i & mask;
      if (p.signed && (stored & (1 << (sb - 1)))) stored -= 1 << sb;
      const v = stored * p.slope + p.intercept;
      let g = ((v - lo) / width) * 255;
      g = g < 0 ? 0 : g > 255 ? 255 : g;
      table[i] = inv ? 255 - g : g;
    }
    lut = table; lutKey = key;
    return lut;
  }
  function paint(p, f, wc, ww) {
    const { rows, cols } = p;
    if (off.width !== cols || off.height !== rows) { off.width = cols; off.height = rows; }
    const img = offctx.createImageData(cols, rows);
    const out = img.data;
    const n = rows * cols;
    if (p.spp === 3) {
      const src = new Uint8Array(f.buf);
      for (let i = 0; i < n; i++) {
        const a = p.planar ? [src[i], src[i + n], src[i + 2 * n]] : [src[3 * i], src[3 * i + 1], src[3 * i + 2]];
        out[4 * i] = a[0]; out[4 * i + 1] = a[1]; out[4 * i + 2] = a[2]; out[4 * i + 3] = 255;
      }
    } else {
      const table = buildLUT(p, wc, ww);
      const src = p.bits === 8 ? new Uint8Array(f.buf, 0, Math.min(n, f.buf.byteLength)) : new Uint16Array(f.buf, 0, Math.min(n, f.buf.byteLength >> 1));
      for (let i = 0; i < src.length; i++) {
        const g = table[src[i]];
        const o = i << 2;
        out[o] = g; out[o + 1] = g; out[o + 2] = g; out[o + 3] = 255;
      }
      if (f.range === undefined) {
        // The frame's range of modality values (shown in the overlay).
        let lo = Infinity, hi = -Infinity;
        const sb = Math.min(Math.max(p.stored || p.bits, 1), p.bits === 8 ? 8 : 16);
        const mask = (1 << sb) - 1, sign = 1 << (sb - 1), full = 1 << sb;
        for (let i = 0; i < src.length; i++) {
          let v = src[i] & mask;
          if (p.signed && (v & sign)) v -= full;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        f.range = [lo * p.slope + p.intercept, hi * p.slope + p.intercept];
      }
      canvas.dataset.range = f.range.map((x) => Math.round(x)).join('..');
    }
    offctx.putImageData(img, 0, 0);
  }

  function fitCanvas() {
    const r = stage.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.floor(r.width * dpr)), h = Math.max(1, Math.floor(r.height * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  }
  function transform(p) {
    const scale = Math.min(canvas.width / p.cols, canvas.height / p.rows) * view.zoom;
    const ox = (canvas.width - p.cols * scale) / 2 + view.px * (window.devicePixelRatio || 1);
    const oy = (canvas.height - p.rows * scale) / 2 + view.py * (window.devicePixelRatio || 1);
    return { scale, ox, oy };
  }
  function toImage(ev, p) {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const { scale, ox, oy } = transform(p);
    return { x: ((ev.clientX - r.left) * dpr - ox) / scale, y: ((ev.clientY - r.top) * dpr - oy) / scale };
  }
  function lengthMM(m, p) {
    const dx = m.x2 - m.x1, dy = m.y2 - m.y1;
    if (p.spacing) return { v: Math.hypot(dx * p.spacing[1], dy * p.spacing[0]), unit: 'mm' };
    return { v: Math.hypot(dx, dy), unit: 'px' };
  }

  let drawSeq = 0;
  async function draw() {
    const s = current;
    if (!s || destroyed) return;
    const seq = ++drawSeq;
    const i = s.index;
    const inst = s.instances[i];
    slider.value = String(i);
    let p = s.meta.get(inst.sop) || s.params;
    const f = await fetchFrame(s, i);
    if (seq !== drawSeq || destroyed) return;
    p = s.meta.get(inst.sop) || s.params;
    if (s.wc === null) { s.wc = s.defWC = Number.isFinite(p.wc) ? p.wc : 40; s.ww = s.defWW = Number.isFinite(p.ww) ? p.ww : 400; }
    fitCanvas();
    if (f.rendered) {
      await paintRendered(s, inst, p);
      if (seq !== drawSeq) return;
    } else {
      paint(p, f, s.wc, s.ww);
    }
    const { scale, ox, oy } = transform(p);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = scale < 4;
    ctx.drawImage(off, ox, oy, p.cols * scale, p.rows * scale);
    // Measurements of this image.
    const dpr = window.devicePixelRatio || 1;
    ctx.lineWidth = 2 * dpr; ctx.strokeStyle = '#ffd33d'; ctx.fillStyle = '#ffd33d'; ctx.font = (13 * dpr) + 'px sans-serif';
    const list = (measures.get(inst.sop + '/' + inst.frame) || []).concat(drag && drag.m ? [drag.m] : []);
    for (const m of list) {
      const a = { x: ox + m.x1 * scale, y: oy + m.y1 * scale }, b = { x: ox + m.x2 * scale, y: oy + m.y2 * scale };
      ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
      const L = lengthMM(m, p);
      ctx.fillText(L.v.toFixed(1) + ' ' + L.unit, b.x + 6 * dpr, b.y);
    }
    const number = p.number || inst.num;
    canvas.dataset.instanceNumber = String(number);
    canvas.dataset.index = String(i);
    canvas.dataset.sop = inst.sop;
    canvas.dataset.wc = String(s.wc); canvas.dataset.ww = String(s.ww);
    imageNumber.textContent = t('image') + ' ' + number + ' (' + (i + 1) + '/' + s.instances.length + ')';
    wlValue.textContent = 'C ' + Math.round(s.wc) + ' / W ' + Math.round(s.ww);
    overlayBL.textContent = (s.modality || '') + ' ' + s.desc + (s.rendered ? ' · ' + t('compressed') : '') + (canvas.dataset.range ? ' · [' + canvas.dataset.range + ']' : '') + (p.spacing ? ' · ' + p.spacing.map((x) => x.toFixed(2)).join('×') + ' mm' : '');
    overlayBR.textContent = 'x' + (scale / (window.devicePixelRatio || 1)).toFixed(2);
    const ms = list.length ? list.map((m) => lengthMM(m, p)).map((L) => L.v.toFixed(1) + ' ' + L.unit).join(', ') : '';
    canvas.dataset.measures = ms;
    if (!firstShown) {
      firstShown = true;
      const timing = opts.timing;
      if (timing) {
        timing.firstImage = performance.now();
        timing.ms = timing.firstImage - timing.open;
        canvas.dataset.firstImageMs = timing.ms.toFixed(0);
      }
      canvas.classList.add('ready');
      loadThumbs();
      seriesMeta(s);
    }
    prefetch();
  }

  const renderedCache = new Map();
  async function paintRendered(s, inst, p) {
    const key = inst.sop + '|' + inst.frame + '|' + Math.round(s.wc) + '|' + Math.round(s.ww);
    let bmp = renderedCache.get(key);
    if (!bmp) {
      const url = base + '/series/' + s.uid + '/instances/' + inst.sop + '/frames/' + inst.frame + '/rendered?window=' + Math.round(s.wc) + ',' + Math.round(s.ww);
      const r = await api('GET', url, undefined, { headers: { Accept: 'image/png, image/jpeg' }, signal: ctl.signal });
      if (!r.ok) throw new Error('rendered ' + r.status);
      bmp = await createImageBitmap(await r.blob());
      renderedCache.set(key, bmp);
      if (renderedCache.size > 64) renderedCache.delete(renderedCache.keys().next().value);
    }
    if (off.width !== bmp.width || off.height !== bmp.height) { off.width = bmp.width; off.height = bmp.height; }
    offctx.drawImage(bmp, 0, 0);
    p.rows = bmp.height; p.cols = bmp.width;
  }

  async function showSeries(s) {
    current = s;
    for (const [uid, th] of thumbs) th.b.classList.toggle('active', uid === s.uid);
    slider.max = String(s.instances.length - 1);
    if (!s.params) {
      // The first instance's metadata and its frame, at once.
      const inst = s.instances[s.index];
      const [p] = await Promise.all([instanceMeta(s, inst), fetchFrame(s, s.index).catch(() => null)]);
      s.params = Object.assign({}, p);
    }
    lutKey = '';
    await draw();
    if (firstShown) seriesMeta(s);
  }
  function scroll(d) {
    const s = current;
    if (!s) return;
    const i = Math.max(0, Math.min(s.instances.length - 1, s.index + d));
    if (i === s.index) return;
    s.index = i;
    draw();
  }
  function setWindow(c, w) {
    const s = current;
    if (!s || !Number.isFinite(c) || !Number.isFinite(w)) return;
    s.wc = c; s.ww = Math.max(1, w);
    draw();
  }

  // Input.
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    if (e.ctrlKey) { view.zoom = Math.max(0.1, Math.min(20, view.zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1))); draw(); return; }
    opts.onFocus(v);
    opts.onScroll(v, e.deltaY > 0 ? 1 : -1);
  }, { passive: false });
  slider.addEventListener('input', () => { const s = current; if (!s) return; opts.onFocus(v); opts.onScroll(v, Number(slider.value) - s.index); });
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('focus', () => opts.onFocus(v));
  canvas.addEventListener('pointerdown', (e) => {
    const s = current;
    if (!s) return;
    opts.onFocus(v);
    canvas.setPointerCapture(e.pointerId);
    const mode = e.button === 1 ? 'pan' : e.button === 2 ? 'zoom' : opts.tool();
    const p = s.meta.get(s.instances[s.index].sop) || s.params;
    drag = { mode, x: e.clientX, y: e.clientY, wc: s.wc, ww: s.ww, zoom: view.zoom, px: view.px, py: view.py };
    if (mode === 'measure') { const a = toImage(e, p); drag.m = { x1: a.x, y1: a.y, x2: a.x, y2: a.y }; }
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const s = current;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.mode === 'wl') { s.ww = Math.max(1, drag.ww + dx * Math.max(1, drag.ww / 200)); s.wc = drag.wc + dy * Math.max(0.5, drag.ww / 400); }
    else if (drag.mode === 'pan') { view.px = drag.px + dx; view.py = drag.py + dy; }
    else if (drag.mode === 'zoom') { view.zoom = Math.max(0.1, Math.min(20, drag.zoom * Math.exp(-dy / 200))); }
    else if (drag.mode === 'measure') { const p = s.meta.get(s.instances[s.index].sop) || s.params; const b = toImage(e, p); drag.m.x2 = b.x; drag.m.y2 = b.y; }
    if (!rendering) { rendering = true; requestAnimationFrame(() => { rendering = false; draw(); }); }
  });
  const end = () => {
    if (!drag) return;
    const s = current;
    if (drag.mode === 'measure' && drag.m && Math.hypot(drag.m.x2 - drag.m.x1, drag.m.y2 - drag.m.y1) > 1) {
      const cur = s.instances[s.index];
      const key = cur.sop + '/' + cur.frame;
      if (!measures.has(key)) measures.set(key, []);
      measures.get(key).push(drag.m);
    }
    drag = null;
    draw();
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  const onResize = () => draw();
  window.addEventListener('resize', onResize);


  function destroy() {
    destroyed = true;
    ctl.abort();
    window.removeEventListener('resize', onResize);
    shownResolve();
  }
  return v;
}
