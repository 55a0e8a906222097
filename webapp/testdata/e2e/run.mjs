// Drives the Relais web app in Debian's chromium (headless, --no-sandbox)
// with playwright-core. Run by cmd/relais's TestWebAppE2E, which starts
// relais serve, stores a CT study and creates the radiologist; everything
// comes in the environment:
//
//   RELAIS_URL        http://127.0.0.1:PORT
//   RELAIS_USER       the radiologist's user name
//   RELAIS_PASSWORD   the password
//   RELAIS_STUDY      the Study Instance UID to open
//   RELAIS_ARTIFACTS  where screenshots go (default ./artifacts)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   RELAIS_PHASE      "request": the requester records the request with the
//                     patient's consent, before the images (then exits);
//                     "main" (default): the requester sees it linked and
//                     cannot open another site's study, the radiologist
//                     reads and signs, the admin checks destinations and
//                     the journal
//   RELAIS_REQUESTER, RELAIS_REQUESTER_PASSWORD   the requester (site ch-nord)
//   RELAIS_ADMIN, RELAIS_ADMIN_PASSWORD           the administrator
//   RELAIS_OTHER_STUDY                            a study of another site
//
// It prints one JSON line of results on stdout (timings, statuses) and
// exits non-zero on the first failed assertion.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const base = process.env.RELAIS_URL;
const user = process.env.RELAIS_USER;
const password = process.env.RELAIS_PASSWORD;
const study = process.env.RELAIS_STUDY;
const routine = process.env.RELAIS_ROUTINE_STUDY || '';
const phase = process.env.RELAIS_PHASE || 'main';
const requester = process.env.RELAIS_REQUESTER || '';
const requesterPassword = process.env.RELAIS_REQUESTER_PASSWORD || '';
const adminUser = process.env.RELAIS_ADMIN || '';
const adminPassword = process.env.RELAIS_ADMIN_PASSWORD || '';
const otherStudy = process.env.RELAIS_OTHER_STUDY || '';
const artifacts = process.env.RELAIS_ARTIFACTS || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
for (const [k, v] of Object.entries({ RELAIS_URL: base, RELAIS_USER: user, RELAIS_PASSWORD: password, RELAIS_STUDY: study })) {
  if (phase === 'admin-queues' && k === 'RELAIS_USER') break;
  if (!v) { console.error(k + ' is not set'); process.exit(2); }
}
fs.mkdirSync(artifacts, { recursive: true });
// The screenshots of an earlier run would be mistaken for this one's.
// (The admin-queues phase, another test, numbers its own from 41.)
if (phase === 'request' || phase === 'admin-queues') {
  const mine = phase === 'request' ? /^[0-3]\d-[a-z-]+\.png$/ : /^[4-9]\d-[a-z-]+\.png$/;
  for (const f of fs.readdirSync(artifacts)) if (mine.test(f)) fs.rmSync(path.join(artifacts, f));
}

const results = { steps: [] };
let page;
// Screenshots are numbered across the two phases.
let shot = phase === 'request' ? 0 : phase === 'admin-queues' ? 40 : 10;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } finally {
    shot++;
    const file = path.join(artifacts, String(shot).padStart(2, '0') + '-' + name + '.png');
    if (page) await page.screenshot({ path: file }).catch(() => {});
    results.steps.push({ name, ms: Date.now() - t0, screenshot: file });
  }
}

// A digest of the canvas pixels (to see a window preset change them).
async function canvasDigest(id = 'viewport') {
  return page.evaluate((id) => {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261 >>> 0, nonBlack = 0, sum = 0;
    for (let i = 0; i < d.length; i += 4) {
      h = Math.imul(h ^ d[i], 16777619) >>> 0;
      if (d[i] > 8) nonBlack++;
      sum += d[i];
    }
    return { hash: h, nonBlack, mean: sum / (d.length / 4) };
  }, id);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
try {
  // Each user in a browser context of its own (its own cookies).
  async function newUserPage() {
    const ctx = await browser.newContext({ locale: 'fr-FR', viewport: { width: 1440, height: 900 }, acceptDownloads: true });
    const p = await ctx.newPage();
    p.on('pageerror', (e) => console.error('page error:', e.message));
    p.on('console', (m) => { if (m.type() === 'error' && !/404|403|401/.test(m.text())) console.error('console:', m.text()); });
    return { ctx, p };
  }
  async function loginAs(name, pw) {
    await page.goto(base + '/app/login');
    await page.fill('#username', name);
    await page.fill('#password', pw);
    await Promise.all([page.waitForURL(/\/app\/$/), page.click('#login-submit')]);
    await page.waitForFunction(() => document.getElementById('whoami')?.textContent?.length > 0);
  }

  if (phase === 'request') {
    ({ p: page } = await newUserPage());
    await step('requester-login', async () => {
      await loginAs(requester, requesterPassword);
      assert.equal(await page.locator('#whoami').innerText(), requester + ' (requester)');
      // The requester's home is its site's requests: no reading worklist
      // (the API answers 403), no broken page.
      await page.waitForSelector('#rq-form');
      assert.equal(await page.locator('#nav a[data-nav="worklist"]').count(), 0, 'no worklist link for a requester');
      assert.equal(await page.locator('#worklist').count(), 0);
      assert.equal((await page.request.get(base + '/api/worklist')).status(), 403, '/api/worklist for a requester');
    });
    await step('requester-form', async () => {
      await page.fill('#rq-physician', 'Dr Urgentiste NORD');
      await page.fill('#rq-rpps', '10001111111');
      await page.fill('#rq-patient-name', 'BENCH');
      await page.fill('#rq-first-names', 'SYNTHETIC');
      await page.fill('#rq-birth-date', '1970-01-01');
      await page.fill('#rq-ipp', 'BENCH0001');
      await page.selectOption('#rq-ins-status', 'PROV');
      await page.fill('#rq-clinical', 'Hémiplégie gauche brutale à 2 h 10.');
      await page.fill('#rq-question', 'AVC ischémique ? hémorragie ?');
      await page.selectOption('#rq-urgency', 'STAT');
      await page.fill('#rq-study', study);
      await page.selectOption('#rq-consent-status', 'given');
      await page.selectOption('#rq-consent-method', 'oral');
      await page.fill('#rq-consent-text', 'Patient informé, accord oral.');
    });
    await step('requester-recorded', async () => {
      const [resp] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/api/requests' && r.request().method() === 'POST'),
        page.click('#rq-submit'),
      ]);
      const body = await resp.json();
      assert.equal(resp.status(), 201, 'request: ' + JSON.stringify(body));
      results.requestID = body.id;
      await page.waitForSelector(`#requests tr[data-request="${body.id}"]`);
      const row = await page.locator(`#requests tr[data-request="${body.id}"]`).innerText();
      assert.match(row, /STAT/);
      assert.match(row, /ouverte/, 'consent given, no images yet: open: ' + row);
      const detail = await page.locator('#rq-detail-panel').innerText();
      assert.match(detail, /Consentement du patient\s+donné \(oral\) : Patient informé, accord oral\. — /, detail);
      assert.match(detail, /request\.created|request\.consent/, 'history: ' + detail);
    });
    await step('requester-consent-later-cancel', async () => {
      // A second request, consent to be collected: awaiting consent; the
      // consent recorded later opens it; then it is cancelled with a reason.
      await page.fill('#rq-physician', 'Dr Urgentiste NORD');
      await page.fill('#rq-patient-name', 'MARTIN');
      await page.fill('#rq-first-names', 'Paul');
      await page.fill('#rq-question', 'Fracture du rachis ?');
      await page.selectOption('#rq-urgency', 'URGENT');
      await page.fill('#rq-accession', 'ACC-E2E-2');
      await page.selectOption('#rq-consent-status', '');
      const [resp] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/api/requests' && r.request().method() === 'POST'),
        page.click('#rq-submit'),
      ]);
      const id = (await resp.json()).id;
      assert.equal(resp.status(), 201);
      const state = () => page.locator(`#requests tr[data-request="${id}"] td.rq-state`).innerText();
      await page.waitForSelector(`#requests tr[data-request="${id}"]`);
      assert.match(await state(), /en attente du consentement/);
      await page.waitForSelector(`#rq-detail-panel[data-request="${id}"] #rq-consent-form`);
      await page.selectOption('#rc-consent-status', 'given');
      await page.selectOption('#rc-consent-method', 'written');
      await page.click('#rq-consent-submit');
      await page.waitForFunction((rid) => /ouverte/.test(document.querySelector(`#requests tr[data-request="${rid}"] td.rq-state`)?.textContent), id);
      await page.click('#rq-cancel'); // no reason: refused by the page
      assert.match(await page.locator('#rq-action-note').innerText(), /motif est obligatoire/);
      await page.fill('#rq-cancel-reason', 'patient transféré');
      await page.click('#rq-cancel');
      await page.waitForFunction((rid) => /annulée : patient transféré/.test(document.querySelector(`#requests tr[data-request="${rid}"] td.rq-state`)?.textContent), id);
      const hist = await page.locator('#rq-history').innerText();
      assert.match(hist, /request\.cancelled/, hist);
      assert.equal(await page.locator('#rq-cancel').count(), 0, 'a cancelled request has no actions');
    });
    await browser.close();
    console.log(JSON.stringify(results));
    process.exit(0);
  }

  if (phase === 'admin-queues') {
    // On a node whose routing admin API takes the session (http.auth:
    // none): the dry-run tester and the delivery tasks.
    ({ p: page } = await newUserPage());
    await step('admin-route-tester', async () => {
      await loginAs(adminUser, adminPassword);
      await page.click('#nav a[data-nav="admin"]');
      await page.waitForSelector('#routes-table tr[data-route="ct"]');
      await page.waitForSelector(`#rt-study option[value="${study}"]`, { state: 'attached' });
      await page.selectOption('#rt-study', study);
      await page.fill('#rt-ae', 'CT_X');
      await page.fill('#rt-at', '2026-11-24T03:00');
      await page.click('#rt-run');
      await page.waitForSelector('#rt-decisions');
      const ct = await page.locator('#rt-decisions tr[data-route="ct"]').innerText();
      assert.match(ct, /✔ oui/, 'the ct rule applies: ' + ct);
      assert.match(ct, /Modality="CT"/, 'and says why: ' + ct);
      assert.match(await page.locator('#rt-decisions tr[data-route="other"]').innerText(), /non/);
    });
    await step('admin-tasks', async () => {
      await page.click('#admin-tabs a[data-tab="queues"]');
      await page.waitForSelector('#dest-table tr[data-dest="down"]');
      await page.waitForFunction(() => /injoignable/.test(document.querySelector('#dest-table tr[data-dest="down"] td.dest-health')?.textContent), null, { timeout: 15000 });
      await page.selectOption('#q-state', 'pending');
      await page.click('#q-filters button[type="submit"]');
      await page.waitForFunction(() => document.querySelectorAll('#tasks-table tr[data-task]').length === 3);
      const rows = page.locator('#tasks-table tr[data-task]');
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await rows.nth(i).getAttribute('data-task'));
      // Retry the first, reroute the second to the PACS, cancel the third.
      await page.click(`#tasks-table tr[data-task="${ids[0]}"] button.q-retry`);
      await page.waitForFunction((id) => document.getElementById('q-note')?.textContent?.includes('retry ' + id), ids[0]);
      await page.selectOption(`#tasks-table tr[data-task="${ids[1]}"] select.q-to`, 'pacs');
      await page.click(`#tasks-table tr[data-task="${ids[1]}"] button.q-reroute`);
      await page.waitForFunction((id) => document.getElementById('q-note')?.textContent?.includes('reroute ' + id), ids[1]);
      await page.fill(`#tasks-table tr[data-task="${ids[2]}"] input.q-reason`, 'examen en double');
      await page.click(`#tasks-table tr[data-task="${ids[2]}"] button.q-cancel`);
      await page.waitForFunction((id) => document.getElementById('q-note')?.textContent?.includes('cancel ' + id), ids[2]);
      await page.selectOption('#q-state', '');
      await page.click('#q-filters button[type="submit"]');
      await page.waitForFunction((id) => /annulé/.test(document.querySelector(`#tasks-table tr[data-task="${id}"]`)?.textContent || ''), ids[2]);
      results.rerouted = ids[1];
      results.cancelled = ids[2];
    });
    await browser.close();
    console.log(JSON.stringify(results));
    process.exit(0);
  }

  if (requester) {
    ({ p: page } = await newUserPage());
    await step('requester-linked', async () => {
      await loginAs(requester, requesterPassword);
      const rid = process.env.RELAIS_REQUEST_ID;
      await page.waitForSelector(`#requests tr[data-request="${rid}"]`);
      // The CT arrived: the request is linked (the page follows it).
      await page.waitForFunction((id) => {
        const td = document.querySelector(`#requests tr[data-request="${id}"] td.rq-state`);
        return td && /liée/.test(td.textContent);
      }, rid, { timeout: 15000 });
      await page.click(`#requests tr[data-request="${rid}"] button.rq-open`);
      await page.waitForSelector(`#rq-detail-panel[data-request="${rid}"]`);
      const detail = await page.locator('#rq-detail-panel').innerText();
      assert.match(detail, /liée/);
      assert.ok(!/rapprochement nécessaire/.test(detail), 'no reconciliation needed: ' + detail);
      results.requestLinked = true;
    });
    if (otherStudy) await step('requester-other-site', async () => {
      // Another site's study: not found, and no pixels.
      await page.goto(base + '/app/study/' + otherStudy);
      await page.waitForSelector('#study-notfound');
      assert.match(await page.locator('#study-notfound').innerText(), /introuvable/);
      assert.equal(await page.locator('#viewport').count(), 0, 'no viewport for another site\'s study');
      assert.equal((await page.request.get(base + '/dicom-web/studies/' + otherStudy + '/series')).status(), 404);
      // Its own site's study opens.
      await page.goto(base + '/app/study/' + study);
      await page.waitForSelector('#viewport.ready', { timeout: 30000 });
      await page.click('#logout');
      await page.waitForURL(/\/app\/login$/);
    });
  }

  const { ctx: context, p: radPage } = await newUserPage();
  page = radPage;

  await step('unauthenticated', async () => {
    // A deep link to the study: the browser gets the login page, and only it.
    const resp = await page.goto(base + '/app/study/' + study);
    assert.equal(resp.status(), 200);
    assert.match(page.url(), /\/app\/login\?next=/);
    assert.equal(await page.locator('form[action="/app/login"]').count(), 1);
    assert.equal(await page.locator('#viewport, #main, #worklist').count(), 0, 'app content on the login page');
    const body = await page.locator('body').innerText();
    assert.ok(body.includes('Connexion') || body.includes('Se connecter'), 'French login page: ' + body);
    assert.ok(!body.includes(study), 'the login page names the study');
    // Assets and APIs too.
    const asset = await page.request.get(base + '/app/static/viewer.js', { maxRedirects: 0 });
    assert.equal(asset.status(), 303, 'viewer.js without a session');
    const apiResp = await page.request.get(base + '/api/reports?study=' + study);
    assert.equal(apiResp.status(), 401, '/api/reports without a session');
    const qido = await page.request.get(base + '/dicom-web/studies');
    assert.equal(qido.status(), 401, 'QIDO-RS without a session');
  });

  await step('login-failed', async () => {
    await page.fill('#username', user);
    await page.fill('#password', 'not the password');
    await Promise.all([page.waitForLoadState('load'), page.click('#login-submit')]);
    await page.waitForSelector('#login-error');
    assert.match(await page.locator('#login-error').innerText(), /incorrect/);
  });

  await step('login', async () => {
    await page.fill('#username', user);
    await page.fill('#password', password);
    await Promise.all([page.waitForURL('**/app/study/' + study), page.click('#login-submit')]);
    // The deep link was kept: back at the study after the login. Go to the list.
    await page.waitForSelector('#viewport.ready', { timeout: 30000 });
    // The first (cold) open of the study, timed by the app from its route
    // change to the first image drawn.
    results.coldAppFirstImageMs = await page.evaluate(() => window.relaisTiming && window.relaisTiming.ms);
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === 'relais_session');
    assert.ok(c && c.httpOnly && c.sameSite === 'Strict', 'session cookie HttpOnly SameSite=Strict: ' + JSON.stringify(c));
    assert.equal(await page.locator('#whoami').innerText(), user + ' (radiologist)');
  });

  await step('worklist', async () => {
    await page.click('#nav a[data-nav="worklist"]');
    await page.waitForSelector('#worklist tbody tr[data-study]');
    await page.waitForSelector('#wl-live.on', { timeout: 10000 });
    const rows = page.locator('#worklist tbody tr[data-study]');
    assert.ok((await rows.count()) >= (routine ? 2 : 1), 'worklist rows');
    assert.equal(await rows.first().getAttribute('data-study'), study, 'the STAT study is on top');
    assert.match(await rows.first().locator('td').first().innerText(), /STAT/);
    assert.match(await rows.first().locator('td.state').innerText(), /à lire/);
    // Assigned by the rota at night: the pool's reader on call.
    assert.match(await rows.first().innerText(), new RegExp(user), 'assigned to the radiologist on call');
    if (routine) assert.equal(await rows.nth(1).getAttribute('data-study'), routine, 'the routine study below');
    const counts = await page.locator('#wl-counts').innerText();
    const m = counts.match(/à lire\s*(\d+)/);
    assert.ok(m && Number(m[1]) === (await rows.count()), 'counts per state: ' + counts);
  });

  await step('studies', async () => {
    await page.click('#nav a[data-nav="studies"]');
    await page.waitForSelector(`tr[data-study="${study}"] a`);
    assert.ok((await page.locator(`tr[data-study="${study}"]`).innerText()).includes('BENCH'), 'study row shows the patient');
  });

  await step('viewer-first-image', async () => {
    // Time from the click that opens the study to the first image drawn.
    const t0 = Date.now();
    await page.click(`tr[data-study="${study}"] a`);
    await page.waitForSelector('#viewport.ready', { timeout: 30000 });
    results.firstImageMs = Date.now() - t0;
    results.appFirstImageMs = await page.evaluate(() => window.relaisTiming && window.relaisTiming.ms);
    // The first slice of the phantom is above the head (air, black in the
    // brain window): check the frame was decoded (a range of HU with
    // noise around air); the pixels are checked on a middle slice below.
    const range = (await page.locator('#viewport').getAttribute('data-range')).split('..').map(Number);
    assert.ok(range[0] < -900 && range[1] > range[0], 'decoded HU range of slice 1: ' + range);
    results.firstRange = range;
    results.instances = await page.locator('#stack-slider').getAttribute('max').then((m) => Number(m) + 1);
    assert.equal(await page.locator('#viewport').getAttribute('data-instance-number'), '1');
    assert.match(await page.locator('#image-number').innerText(), /^Im 1 \(1\/\d+\)$/);
    assert.ok((await page.locator('.series-item').count()) >= 1, 'series list');
    if (process.env.RELAIS_WITH_REQUEST === '1') {
      // The request and the consent beside the images.
      await page.waitForSelector('#request-panel dl[data-request]');
      const text = await page.locator('#request-panel').innerText();
      assert.match(text, /Consentement\s+donné \(oral\)/, 'consent shown: ' + text);
      assert.match(text, /AVC ischémique \? hémorragie \?/);
      assert.match(text, /STAT/);
    }
    if (process.env.RELAIS_JPEG_STUDY) {
      // The patient's prior study, listed beside the series.
      await page.waitForSelector(`#priors a[data-study="${process.env.RELAIS_JPEG_STUDY}"]`);
    }
    await page.waitForFunction(() => [...document.querySelectorAll('.series-item img')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 15000 });
  });

  await step('scroll', async () => {
    const before = await page.locator('#viewport').getAttribute('data-instance-number');
    await page.locator('#viewport').focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowDown');
    await page.locator('#viewport').hover();
    for (let i = 0; i < 5; i++) await page.mouse.wheel(0, 120);
    await page.waitForFunction(() => document.getElementById('viewport')?.dataset?.instanceNumber === '11', null, { timeout: 10000 });
    const after = await page.locator('#viewport').getAttribute('data-instance-number');
    assert.notEqual(after, before);
    results.scrolled = { before, after };
    assert.match(await page.locator('#image-number').innerText(), /^Im 11 /);
    // The slider too.
    await page.locator('#stack-slider').fill(String(Math.floor(results.instances / 2)));
    await page.waitForFunction((n) => document.getElementById('viewport')?.dataset?.index === String(n), Math.floor(results.instances / 2));
    const d = await canvasDigest();
    assert.ok(d.nonBlack > 10000, 'the middle slice shows the head: ' + JSON.stringify(d));
  });

  await step('window-preset', async () => {
    const before = await canvasDigest();
    await page.click('#preset-bone');
    await page.waitForFunction(() => document.getElementById('viewport')?.dataset?.wc === '400');
    const after = await canvasDigest();
    assert.notEqual(after.hash, before.hash, 'the bone window changed the pixels');
    assert.match(await page.locator('#wl-value').innerText(), /C 400 \/ W 1800/);
    await page.click('#preset-brain');
    await page.waitForFunction(() => document.getElementById('viewport')?.dataset?.wc === '40');
    const brain = await canvasDigest();
    assert.notEqual(brain.hash, after.hash, 'the brain window changed the pixels');
    results.window = { before: before.mean, bone: after.mean, brain: brain.mean };
  });

  await step('measure', async () => {
    await page.click('#tool-measure');
    const box = await page.locator('#viewport').boundingBox();
    await page.mouse.move(box.x + box.width / 2 - 100, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 100, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    const m = await page.locator('#viewport').getAttribute('data-measures');
    assert.match(m, /^\d+\.\d mm$/, 'a length in mm: ' + m);
    results.measure = m;
    await page.click('#tool-wl');
  });

  await step('key-image', async () => {
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/studies/' + study + '/key-images') && r.request().method() === 'POST'),
      page.click('#key-image'),
    ]);
    results.keyImageStatus = resp.status();
    assert.equal(resp.status(), 201, 'key image: ' + (await resp.text()));
    await page.waitForFunction(() => document.getElementById('key-status')?.dataset?.status === '201');
    assert.match(await page.locator('#key-status').innerText(), /Image clé enregistrée \(201\)/);
  });

  await step('report-draft', async () => {
    if (process.env.RELAIS_WITH_REQUEST === '1') {
      // A new report starts from the request.
      assert.equal(await page.locator('#f-request_reason').inputValue(), 'AVC ischémique ? hémorragie ?');
      assert.equal(await page.locator('#f-clinical_information').inputValue(), 'Hémiplégie gauche brutale à 2 h 10.');
    }
    await page.selectOption('#report-template', 'stroke');
    await page.fill('#f-clinical_information', 'Déficit brachio-facial gauche depuis 45 minutes.');
    await page.fill('#f-request_reason', 'Alerte thrombolyse : hémorragie ? ischémie ?');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => /\/api\/reports(\/[^/]+)?$/.test(new URL(r.url()).pathname) && ['POST', 'PATCH'].includes(r.request().method()), { timeout: 10000 }),
    ]);
    assert.ok(resp.status() === 201 || resp.status() === 200, 'autosave: ' + resp.status());
    await page.waitForFunction(() => document.getElementById('report-save')?.dataset?.saved !== undefined);
    assert.equal(await page.locator('#report-state').innerText(), 'brouillon');
    assert.match(await page.locator('#f-findings').inputValue(), /ASPECTS/);
  });

  await step('report-signed', async () => {
    await page.fill('#f-conclusion', 'Pas d’hémorragie intracrânienne. Pas de signe précoce d’ischémie (ASPECTS 10).');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/sign') && r.request().method() === 'POST', { timeout: 20000 }),
      page.click('#report-sign'),
    ]);
    const body = await resp.json();
    assert.equal(resp.status(), 200, 'sign: ' + JSON.stringify(body));
    await page.waitForFunction(() => document.getElementById('report-state')?.dataset?.state === 'signed');
    results.reportState = await page.locator('#report-state').innerText();
    assert.equal(results.reportState, 'signé');
    results.reportID = body.id;
    results.notices = await page.locator('#report-notices li').allInnerTexts();
    assert.ok(await page.locator('#f-findings').isDisabled(), 'a signed report is read-only');
    // The signed PDF, through the session.
    const pdf = await page.request.get(new URL(await page.locator('#report-pdf').getAttribute('href'), base).href);
    assert.equal(pdf.status(), 200);
    assert.equal(pdf.headers()['content-type'], 'application/pdf');
  });

  await step('worklist-reported', async () => {
    // The worklist follows the signature (reported, then returned once the
    // CDA is delivered to the site's PACS) through its event stream,
    // without a reload.
    await page.click('#nav a[data-nav="worklist"]');
    await page.selectOption('#wl-state', 'all');
    await page.waitForFunction((uid) => {
      const td = document.querySelector(`#worklist tr[data-study="${uid}"] td.state`);
      return td && td.textContent === 'rendu';
    }, study, { timeout: 20000 });
    results.worklistState = await page.locator(`#worklist tr[data-study="${study}"] td.state`).innerText();
    await page.goBack();
    await page.waitForSelector('#report-state[data-state="signed"]');
  });

  if (process.env.RELAIS_JPEG_STUDY) await step('jpeg-rendered', async () => {
    // A JPEG baseline study: frames cannot be sent as octet-stream, the
    // viewer shows the server's rendering, windowed by the server.
    await page.goto(base + '/app/study/' + process.env.RELAIS_JPEG_STUDY);
    await page.waitForSelector('#viewport.ready', { timeout: 15000 });
    assert.match(await page.locator('#ov-info').innerText(), /rendu serveur/);
    const before = await canvasDigest();
    assert.ok(before.nonBlack > 100, 'the JPEG image is shown: ' + JSON.stringify(before));
    await page.click('#preset-lung');
    await page.waitForFunction(() => document.getElementById('viewport')?.dataset?.wc === '-600');
    const after = await canvasDigest();
    assert.notEqual(after.hash, before.hash, 'the lung window (server-rendered) changed the pixels');
    await page.goBack();
    await page.waitForSelector('#report-state[data-state="signed"]');
  });

  if (process.env.RELAIS_JPEG_STUDY) await step('compare', async () => {
    // The prior side by side: a second stack viewer in the same page.
    const prior = process.env.RELAIS_JPEG_STUDY;
    await page.waitForSelector('#viewport.ready', { timeout: 15000 });
    // The middle slice (the first is air).
    const mid = Math.floor(results.instances / 2);
    await page.locator('#stack-slider').fill(String(mid));
    await page.waitForFunction((n) => document.getElementById('viewport')?.dataset?.index === String(n), mid);
    await page.click(`#priors button.compare-prior[data-study="${prior}"]`);
    await page.waitForSelector('#viewport-prior.ready', { timeout: 15000 });
    assert.ok(await page.locator('#compare-bar').isVisible(), 'the comparison controls');
    const a = await page.locator('#viewport').boundingBox(), b = await page.locator('#viewport-prior').boundingBox();
    assert.ok(b.x >= a.x + a.width - 1 && b.y < a.y + a.height / 4 && b.y + b.height > a.y + a.height / 2, 'side by side: ' + JSON.stringify({ a, b }));
    assert.ok(a.width > 300 && b.width > 300, 'two usable viewports');
    const cur = await canvasDigest('viewport'), pri = await canvasDigest('viewport-prior');
    assert.ok(cur.nonBlack > 100, 'the current study is shown: ' + JSON.stringify(cur));
    assert.ok(pri.nonBlack > 100, 'the prior is shown: ' + JSON.stringify(pri));
    assert.match(await page.locator('#ov-info-prior').innerText(), /rendu serveur/);
    // Linked scrolling: the current stack scrolls, the prior follows by the
    // same number of images.
    await page.click('#compare-link');
    assert.equal(await page.locator('#compare-link').getAttribute('aria-pressed'), 'true');
    const index = (id) => page.locator('#' + id).getAttribute('data-index').then(Number);
    const c0 = await index('viewport'), p0 = await index('viewport-prior');
    await page.locator('#viewport').hover();
    await page.mouse.wheel(0, 120);
    await page.waitForFunction(([c, p]) => document.getElementById('viewport')?.dataset?.index === String(c + 1) &&
      document.getElementById('viewport-prior')?.dataset?.index === String(p + 1), [c0, p0], { timeout: 10000 });
    assert.match(await page.locator('#image-number-prior').innerText(), new RegExp('\\(' + (p0 + 2) + '/\\d+\\)'));
    results.compare = { current: [c0, c0 + 1], prior: [p0, p0 + 1] };
    // Linked, a window preset goes to both; unlinked, to the focused one.
    await page.click('#preset-lung');
    await page.waitForFunction(() => document.getElementById('viewport')?.dataset?.wc === '-600' && document.getElementById('viewport-prior')?.dataset?.wc === '-600');
    await page.click('#compare-link');
    await page.click('#viewport-prior');
    await page.click('#preset-bone');
    await page.waitForFunction(() => document.getElementById('viewport-prior')?.dataset?.wc === '400');
    assert.equal(await page.locator('#viewport').getAttribute('data-wc'), '-600', 'the current study keeps its window');
    // Unlinked, the prior scrolls alone.
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction((p) => document.getElementById('viewport-prior')?.dataset?.index === String(p + 2), p0);
    assert.equal(await index('viewport'), c0 + 1, 'the current stack did not move');
    await page.click('#viewport');
  });

  if (process.env.RELAIS_JPEG_STUDY) await step('compare-closed', async () => {
    await page.click('#compare-close');
    await page.waitForFunction(() => !document.getElementById('viewport-prior'));
    assert.ok(!(await page.locator('#compare-bar').isVisible()));
    const a = await page.locator('#viewport').boundingBox();
    assert.ok(a.width > 700, 'the single viewport is back to its width: ' + a.width);
    assert.ok((await canvasDigest()).nonBlack > 100);
  });

  await step('english', async () => {
    await page.click('#lang-toggle');
    await page.waitForSelector('#report-state[data-state="signed"]');
    assert.equal(await page.locator('#report-state').innerText(), 'signed');
    assert.equal(await page.locator('#tool-wl').innerText(), 'Window');
  });

  await step('logout', async () => {
    await Promise.all([page.waitForURL(/\/app\/login$/), page.click('#logout')]);
    const resp = await page.goto(base + '/app/');
    assert.match(page.url(), /\/app\/login/);
    assert.equal(resp.status(), 200);
    const api = await page.request.get(base + '/api/reports?study=' + study);
    assert.equal(api.status(), 401, 'the session ended');
  });
  if (adminUser) {
    ({ p: page } = await newUserPage());
    await step('admin-destinations', async () => {
      await loginAs(adminUser, adminPassword);
      assert.equal(await page.locator('#nav a[data-nav="admin"]').count(), 1);
      await page.click('#nav a[data-nav="admin"]');
      await page.click('#admin-tabs a[data-tab="queues"]');
      // The site's PACS got the CDA: healthy.
      await page.waitForSelector('#dest-table tr[data-dest="nord-pacs"]');
      await page.waitForFunction(() => /healthy|disponible/.test(document.querySelector('#dest-table tr[data-dest="nord-pacs"] td.dest-health')?.textContent), null, { timeout: 10000 });
      results.destination = await page.locator('#dest-table tr[data-dest="nord-pacs"]').innerText();
    });
    await step('admin-rotas', async () => {
      await page.click('#admin-tabs a[data-tab="rotas"]');
      await page.waitForSelector('section[data-calendar="pds"]');
      assert.match(await page.locator('section[data-calendar="pds"]').innerText(), new RegExp(user), 'on call now');
    });
    await step('admin-directory', async () => {
      await page.click('#admin-tabs a[data-tab="directory"]');
      await page.waitForSelector('#dir-sites tr[data-id="ch-nord"]');
      assert.match(await page.locator('#dir-sites tr[data-id="ch-nord"]').innerText(), /urgnord/);
      await page.click('#admin-tabs a[data-tab="routes"]');
      // The rules, or why this node's routing API cannot answer the session.
      await page.waitForFunction(() => document.querySelector('#routes-table tr[data-route="stroke"]') || document.getElementById('admin-error')?.textContent);
    });
    await step('admin-users', async () => {
      await page.click('#admin-tabs a[data-tab="users"]');
      await page.waitForSelector(`#users-table tr[data-user="${user}"]`);
      await page.fill('#user-name', 'pdubois');
      await page.selectOption('#user-role', 'radiologist');
      await page.fill('#user-password', 'un-mot-de-passe-long');
      await page.click('#user-add-submit');
      await page.waitForSelector('#users-table tr[data-user="pdubois"] button.user-disable');
      await page.click('#users-table tr[data-user="pdubois"] button.user-disable');
      await page.waitForSelector('#users-table tr[data-user="pdubois"] button.user-enable');
      assert.match(await page.locator('#users-table tr[data-user="pdubois"] td.user-state').innerText(), /disabled|désactivé/);
    });
    await step('admin-journal', async () => {
      await page.click('#admin-tabs a[data-tab="journal"]');
      await page.waitForSelector('#journal-table');
      await page.fill('#j-kind', 'report.signed');
      await page.click('#j-search');
      await page.waitForFunction(() => document.querySelector('#journal-table tr[data-kind="report.signed"]'));
      const row = await page.locator('#journal-table tr[data-kind="report.signed"]').first().innerText();
      assert.match(row, new RegExp(user), 'the signature with its user: ' + row);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#j-csv')]);
      const file = path.join(artifacts, 'journal.csv');
      await download.saveAs(file);
      const csv = fs.readFileSync(file, 'utf8');
      assert.match(csv, /^seq,time,kind,/);
      assert.match(csv, /report\.signed/);
      const resp = await page.request.get(new URL(await page.locator('#j-csv').getAttribute('href'), base).href);
      results.csvStatus = resp.status();
      assert.equal(resp.status(), 200);
    });
  }
} catch (e) {
  console.error('FAILED:', e && e.stack || e);
  results.error = String(e && e.message || e);
  console.log(JSON.stringify(results));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(results));
