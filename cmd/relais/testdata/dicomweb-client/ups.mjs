// Drives relais's UPS-RS (DICOMweb Worklist Service) as a reading
// workstation of another vendor would: a WebSocket event channel (npm ws),
// a global subscription, a search, a claim with a Transaction UID, a
// refused completion before the report is signed, then the COMPLETED event
// once the report is signed. Prints one JSON line per step.
// Env: BASE (http://host:port/dicom-web), TOKEN, STUDY, AE.
import WebSocket from 'ws';

const base = process.env.BASE, token = process.env.TOKEN, study = process.env.STUDY, ae = process.env.AE;
const auth = { Authorization: `Bearer ${token}` };
const say = (step, data) => console.log(JSON.stringify({ step, ...data }));
const events = [];
let wake = null;

const ws = new WebSocket(base.replace(/^http/, 'ws') + `/subscribers/${ae}`, { headers: auth });
ws.on('message', (m) => {
  for (const ev of JSON.parse(m.toString())) {
    events.push({ uid: ev['00001000'].Value[0], type: ev['00001002'].Value[0], state: ev['00741000'].Value[0] });
    if (wake) wake();
  }
});
await new Promise((ok, ko) => { ws.on('open', ok); ws.on('error', ko); });
say('channel', {});

async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const e = events.find(pred);
    if (e) return e;
    if (Date.now() > end) throw new Error('no such event within ' + ms + ' ms; got ' + JSON.stringify(events));
    await new Promise((ok) => { wake = ok; setTimeout(ok, 100); });
  }
}

let r = await fetch(`${base}/workitems/1.2.840.10008.5.1.4.34.5/subscribers/${ae}`, { method: 'POST', headers: auth });
say('subscribe', { status: r.status });

r = await fetch(`${base}/workitems?ProcedureStepState=SCHEDULED`, { headers: { ...auth, Accept: 'application/dicom+json' } });
const found = (await r.json()).filter((w) => w['00404021'].Value[0]['0020000D'].Value[0] === study);
const uid = found[0]['00080018'].Value[0];
say('search', { status: r.status, matches: found.length, uid, priority: found[0]['00741200'].Value[0],
  performer: found[0]['00404034'].Value?.[0]?.['00404037']?.Value?.[0]?.Alphabetic ?? '' });

const initial = await waitFor((e) => e.uid === uid && e.state === 'SCHEDULED', 5000);
say('initial', initial);

const txn = '2.25.' + BigInt('0x' + [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('')).toString();
const state = (s, t) => JSON.stringify({ '00741000': { vr: 'CS', Value: [s] }, '00081195': { vr: 'UI', Value: [t] } });
const put = (body) => fetch(`${base}/workitems/${uid}/state`, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/dicom+json' }, body });
r = await put(state('IN PROGRESS', txn));
say('claim', { status: r.status });
say('claimed_event', await waitFor((e) => e.uid === uid && e.state === 'IN PROGRESS', 5000));
r = await put(state('COMPLETED', txn));
say('complete_early', { status: r.status, warning: r.headers.get('warning') });
r = await put(state('IN PROGRESS', '2.25.1'));
say('claim_again', { status: r.status });

say('ready_for_signature', {});
say('completed_event', await waitFor((e) => e.uid === uid && e.state === 'COMPLETED', 20000));
ws.close();
