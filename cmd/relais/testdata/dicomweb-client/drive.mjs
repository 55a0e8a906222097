// Drives relais's DICOMweb server with the npm dicomweb-client package (a
// client nobody here wrote), for cmd/relais TestDICOMwebClient.
//
//   node drive.mjs CONFIG.json
//
// CONFIG: {"url": "http://127.0.0.1:PORT/dicom-web", "token": "rls_...",
//          "stow": ["a.dcm", ...], "stowStudy": "UID" (the last STOW file
//          is sent to /studies/{stowStudy}), "patientID": "prefix*",
//          "names": ["Müller*", ...], "includefield": "A,B", "out": "DIR"}
//
// Every call's answer is checked for its shape (status, media type, sizes,
// markers) and summarised in a JSON report on stdout; frames, rendered
// images and Part 10 files are written under out/ for the Go test to
// compare with what it stored. Any failed check is listed in report.errors
// and makes the exit status 1.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
globalThis.XMLHttpRequest = require('xhr2');
const { api } = require('dicomweb-client');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const report = { errors: [], calls: 0 };

function fail(msg) {
  report.errors.push(msg);
}

function check(cond, msg) {
  if (!cond) fail(msg);
  return cond;
}

const client = new api.DICOMwebClient({
  url: cfg.url,
  headers: { Authorization: `Bearer ${cfg.token}` },
  verbose: false,
});

// call runs one dicomweb-client method with a request instance we keep, so
// that the status and the media type of the answer can be checked too.
async function call(name, method, options, wantStatus = 200) {
  const xhr = new XMLHttpRequest();
  report.calls++;
  let result;
  try {
    result = await client[method]({ ...options, request: { instance: xhr } });
  } catch (e) {
    fail(`${name}: ${method} failed: ${e.message} (HTTP ${e.status ?? xhr.status}: ${String(xhr.responseText ?? '').slice(0, 300)})`);
    return { ok: false, status: xhr.status };
  }
  const status = xhr.status;
  const contentType = xhr.getResponseHeader('Content-Type') || '';
  check(status === wantStatus, `${name}: HTTP ${status}, want ${wantStatus}`);
  return { ok: true, result, status, contentType };
}

// Attribute helpers over DICOM JSON (PS3.18 F.2).
function val(obj, tag) {
  const a = obj && obj[tag];
  return a && a.Value ? a.Value : [];
}
function first(obj, tag) {
  const v = val(obj, tag);
  return v.length ? v[0] : undefined;
}
function pn(obj, tag) {
  const v = first(obj, tag);
  return v && typeof v === 'object' ? v.Alphabetic : v;
}
function vr(obj, tag) {
  return obj && obj[tag] ? obj[tag].vr : undefined;
}

const T = {
  SpecificCharacterSet: '00080005',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  AccessionNumber: '00080050',
  InstanceAvailability: '00080056',
  ModalitiesInStudy: '00080061',
  SOPClassesInStudy: '00080062',
  Modality: '00080060',
  RetrieveURL: '00081190',
  ReferencedSOPSequence: '00081199',
  FailedSOPSequence: '00081198',
  ReferencedSOPInstanceUID: '00081155',
  ReferencedSOPClassUID: '00081150',
  StudyDescription: '00081030',
  ProcedureCodeSequence: '00081032',
  CodeValue: '00080100',
  PatientName: '00100010',
  PatientID: '00100020',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  Rows: '00280010',
  Columns: '00280011',
  BitsAllocated: '00280100',
  WindowCenter: '00281050',
  PixelData: '7FE00010',
};

function isJSONArray(r, name, contentType) {
  check(Array.isArray(r.result), `${name}: answer is not a JSON array (${typeof r.result})`);
  check(/^application\/dicom\+json/.test(contentType), `${name}: Content-Type ${contentType}, want application/dicom+json`);
  return Array.isArray(r.result) ? r.result : [];
}

function studySummary(s) {
  return {
    study: first(s, T.StudyInstanceUID),
    patientName: pn(s, T.PatientName),
    patientID: first(s, T.PatientID),
    studyDate: first(s, T.StudyDate),
    accession: first(s, T.AccessionNumber),
    description: first(s, T.StudyDescription),
    modalities: val(s, T.ModalitiesInStudy),
    sopClasses: val(s, T.SOPClassesInStudy),
    procedureCodes: val(s, T.ProcedureCodeSequence).map((it) => first(it, T.CodeValue)),
    series: first(s, T.NumberOfStudyRelatedSeries),
    instances: first(s, T.NumberOfStudyRelatedInstances),
    availability: first(s, T.InstanceAvailability),
    retrieveURL: first(s, T.RetrieveURL),
    charset: val(s, T.SpecificCharacterSet),
  };
}

function seriesSummary(s) {
  return {
    study: first(s, T.StudyInstanceUID),
    series: first(s, T.SeriesInstanceUID),
    modality: first(s, T.Modality),
    number: first(s, T.SeriesNumber),
    instances: first(s, T.NumberOfSeriesRelatedInstances),
    retrieveURL: first(s, T.RetrieveURL),
  };
}

function instanceSummary(s) {
  return {
    study: first(s, T.StudyInstanceUID),
    series: first(s, T.SeriesInstanceUID),
    sop: first(s, T.SOPInstanceUID),
    sopClass: first(s, T.SOPClassUID),
    number: first(s, T.InstanceNumber),
    rows: first(s, T.Rows),
    columns: first(s, T.Columns),
    retrieveURL: first(s, T.RetrieveURL),
  };
}

function metaSummary(m) {
  const px = m[T.PixelData] || {};
  return {
    study: first(m, T.StudyInstanceUID),
    series: first(m, T.SeriesInstanceUID),
    sop: first(m, T.SOPInstanceUID),
    sopClass: first(m, T.SOPClassUID),
    patientName: pn(m, T.PatientName),
    patientID: first(m, T.PatientID),
    charset: val(m, T.SpecificCharacterSet),
    number: first(m, T.InstanceNumber),
    rows: first(m, T.Rows),
    columns: first(m, T.Columns),
    bitsAllocated: first(m, T.BitsAllocated),
    windowCenter: first(m, T.WindowCenter),
    pixelVR: px.vr,
    pixelBulkDataURI: px.BulkDataURI,
    pixelInline: px.InlineBinary !== undefined,
    patientNameVR: vr(m, T.PatientName),
  };
}

// jpegInfo checks the JPEG markers and reads the frame size from the SOF.
function jpegInfo(buf) {
  const b = new Uint8Array(buf);
  const info = { size: b.length, soi: b[0] === 0xff && b[1] === 0xd8, eoi: b[b.length - 2] === 0xff && b[b.length - 1] === 0xd9 };
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) break;
    const marker = b[i + 1];
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    const len = (b[i + 2] << 8) | b[i + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      info.sof = marker.toString(16);
      info.precision = b[i + 4];
      info.height = (b[i + 5] << 8) | b[i + 6];
      info.width = (b[i + 7] << 8) | b[i + 8];
      info.components = b[i + 9];
      break;
    }
    if (marker === 0xda) break;
    i += 2 + len;
  }
  return info;
}

function isPart10(buf) {
  const b = new Uint8Array(buf);
  return b.length > 132 && String.fromCharCode(b[128], b[129], b[130], b[131]) === 'DICM';
}

function write(rel, buf) {
  const p = path.join(cfg.out, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, Buffer.from(buf instanceof ArrayBuffer ? buf : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)));
  return p;
}

function toArrayBuffer(b) {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}

// The one ArrayBuffer of a single-part answer: dicomweb-client resolves
// single-part bodies as [ArrayBuffer] although its docs say ArrayBuffer.
function single(name, r) {
  const v = Array.isArray(r) ? r : [r];
  check(v.length === 1, `${name}: ${v.length} parts, want 1`);
  check(v[0] instanceof ArrayBuffer, `${name}: not an ArrayBuffer`);
  return v[0];
}

async function main() {
  // STOW-RS: all files but the last to /studies, the last to
  // /studies/{stowStudy}.
  const files = cfg.stow.map((f) => toArrayBuffer(fs.readFileSync(f)));
  report.stow = [];
  const batches = [files.slice(0, -1), files.slice(-1)];
  for (const [i, datasets] of batches.entries()) {
    if (!datasets.length) continue;
    const opts = { datasets };
    if (i === 1) opts.studyInstanceUID = cfg.stowStudy;
    const r = await call(`storeInstances#${i}`, 'storeInstances', opts);
    if (!r.ok) continue;
    let body;
    try {
      body = typeof r.result === 'string' ? JSON.parse(r.result) : r.result;
    } catch (e) {
      fail(`storeInstances#${i}: answer is not JSON: ${String(r.result).slice(0, 200)}`);
      continue;
    }
    check(/^application\/dicom\+json/.test(r.contentType), `storeInstances#${i}: Content-Type ${r.contentType}`);
    const refs = val(body, T.ReferencedSOPSequence);
    check(refs.length === datasets.length, `storeInstances#${i}: ${refs.length} referenced SOPs, want ${datasets.length}`);
    check(!body[T.FailedSOPSequence], `storeInstances#${i}: failed SOPs ${JSON.stringify(body[T.FailedSOPSequence])}`);
    report.stow.push({
      status: r.status,
      retrieveURL: first(body, T.RetrieveURL),
      referenced: refs.map((it) => ({ sop: first(it, T.ReferencedSOPInstanceUID), sopClass: first(it, T.ReferencedSOPClassUID), retrieveURL: first(it, T.RetrieveURL) })),
      failed: val(body, T.FailedSOPSequence).length,
    });
  }

  // QIDO-RS studies: by Patient ID wildcard with includefield, and by
  // Patient's Name wildcards.
  let studies = [];
  {
    const r = await call('searchForStudies(PatientID)', 'searchForStudies', {
      queryParams: { PatientID: cfg.patientID, includefield: cfg.includefield },
    });
    if (r.ok) studies = isJSONArray(r, 'searchForStudies(PatientID)', r.contentType).map(studySummary);
    check(studies.length > 0, 'searchForStudies(PatientID): no study');
    report.studies = studies;
  }
  report.byName = {};
  for (const name of cfg.names) {
    const r = await call(`searchForStudies(PatientName=${name})`, 'searchForStudies', { queryParams: { PatientName: name } });
    report.byName[name] = r.ok ? isJSONArray(r, `searchForStudies(${name})`, r.contentType).map(studySummary) : null;
  }

  // QIDO-RS series and instances, at every path.
  report.series = {};
  report.instances = {};
  report.studyInstances = {};
  for (const st of studies) {
    const r = await call(`searchForSeries(${st.study})`, 'searchForSeries', { studyInstanceUID: st.study });
    const series = r.ok ? isJSONArray(r, 'searchForSeries', r.contentType).map(seriesSummary) : [];
    report.series[st.study] = series;
    for (const se of series) {
      const ri = await call(`searchForInstances(${se.series})`, 'searchForInstances', { studyInstanceUID: st.study, seriesInstanceUID: se.series });
      report.instances[se.series] = ri.ok ? isJSONArray(ri, 'searchForInstances(series)', ri.contentType).map(instanceSummary) : [];
    }
    const rs = await call(`searchForInstances(study ${st.study})`, 'searchForInstances', { studyInstanceUID: st.study });
    report.studyInstances[st.study] = rs.ok ? isJSONArray(rs, 'searchForInstances(study)', rs.contentType).map(instanceSummary) : [];
  }
  {
    const r = await call('searchForSeries(PatientID)', 'searchForSeries', { queryParams: { PatientID: cfg.patientID } });
    report.allSeries = r.ok ? isJSONArray(r, 'searchForSeries(all)', r.contentType).map(seriesSummary) : [];
    const ri = await call('searchForInstances(PatientID)', 'searchForInstances', { queryParams: { PatientID: cfg.patientID } });
    report.allInstances = ri.ok ? isJSONArray(ri, 'searchForInstances(all)', ri.contentType).map(instanceSummary) : [];
  }

  // WADO-RS metadata at the three levels.
  report.studyMetadata = {};
  report.seriesMetadata = {};
  report.instanceMetadata = {};
  const instances = [];
  for (const st of studies) {
    const r = await call(`retrieveStudyMetadata(${st.study})`, 'retrieveStudyMetadata', { studyInstanceUID: st.study });
    report.studyMetadata[st.study] = r.ok ? isJSONArray(r, 'retrieveStudyMetadata', r.contentType).map(metaSummary) : [];
    for (const se of report.series[st.study]) {
      const rs = await call(`retrieveSeriesMetadata(${se.series})`, 'retrieveSeriesMetadata', { studyInstanceUID: st.study, seriesInstanceUID: se.series });
      report.seriesMetadata[se.series] = rs.ok ? isJSONArray(rs, 'retrieveSeriesMetadata', rs.contentType).map(metaSummary) : [];
      for (const inst of report.instances[se.series]) {
        const ri = await call(`retrieveInstanceMetadata(${inst.sop})`, 'retrieveInstanceMetadata', {
          studyInstanceUID: st.study, seriesInstanceUID: se.series, sopInstanceUID: inst.sop,
        });
        const m = ri.ok ? isJSONArray(ri, 'retrieveInstanceMetadata', ri.contentType).map(metaSummary) : [];
        check(m.length === 1, `retrieveInstanceMetadata(${inst.sop}): ${m.length} objects, want 1`);
        report.instanceMetadata[inst.sop] = m[0] || null;
        if (m[0]) instances.push(m[0]);
      }
    }
  }

  // WADO-RS frames, bulk data, rendered and thumbnail of every instance.
  report.frames = {};
  report.bulkdata = {};
  report.rendered = {};
  report.thumbnail = {};
  for (const m of instances) {
    const ids = { studyInstanceUID: m.study, seriesInstanceUID: m.series, sopInstanceUID: m.sop };
    const r = await call(`retrieveInstanceFrames(${m.sop})`, 'retrieveInstanceFrames', { ...ids, frameNumbers: '1' });
    if (r.ok) {
      check(Array.isArray(r.result) && r.result.length === 1, `retrieveInstanceFrames(${m.sop}): ${r.result?.length} frames, want 1`);
      check(/^multipart\/related/.test(r.contentType), `retrieveInstanceFrames(${m.sop}): Content-Type ${r.contentType}`);
      const f = r.result[0];
      const want = m.rows * m.columns * (m.bitsAllocated / 8);
      check(f.byteLength === want, `retrieveInstanceFrames(${m.sop}): ${f.byteLength} bytes, want rows×columns×2 = ${want}`);
      const dv = new DataView(f);
      report.frames[m.sop] = {
        bytes: f.byteLength,
        partType: f.contentType,
        transferSyntax: f.transferSyntaxUID,
        first: [0, 1, 2, 3].filter((i) => 2 * i + 1 < f.byteLength).map((i) => dv.getUint16(2 * i, true)),
        file: write(`frames/${m.sop}.raw`, f),
      };
    }
    if (m.pixelBulkDataURI) {
      const rb = await call(`retrieveBulkData(${m.sop})`, 'retrieveBulkData', { BulkDataURI: m.pixelBulkDataURI });
      if (rb.ok) {
        check(Array.isArray(rb.result) && rb.result.length === 1, `retrieveBulkData(${m.sop}): ${rb.result?.length} parts, want 1`);
        const b = rb.result[0];
        report.bulkdata[m.sop] = { bytes: b.byteLength, file: write(`bulkdata/${m.sop}.raw`, b) };
      }
    } else {
      fail(`metadata of ${m.sop}: Pixel Data has no BulkDataURI`);
    }
    const rr = await call(`retrieveInstanceRendered(${m.sop})`, 'retrieveInstanceRendered', { ...ids, mediaTypes: [{ mediaType: 'image/jpeg' }] });
    if (rr.ok) {
      const img = single('retrieveInstanceRendered', rr.result);
      check(/^image\/jpeg/.test(rr.contentType), `retrieveInstanceRendered(${m.sop}): Content-Type ${rr.contentType}`);
      const info = jpegInfo(img);
      check(info.soi && info.eoi, `retrieveInstanceRendered(${m.sop}): no SOI/EOI markers`);
      check(info.width === m.columns && info.height === m.rows, `retrieveInstanceRendered(${m.sop}): ${info.width}×${info.height}, want ${m.columns}×${m.rows}`);
      report.rendered[m.sop] = { ...info, contentType: rr.contentType, file: write(`rendered/${m.sop}.jpg`, img) };
    }
    const rt = await call(`retrieveInstanceThumbnail(${m.sop})`, 'retrieveInstanceThumbnail', { ...ids, mediaTypes: [{ mediaType: 'image/jpeg' }] });
    if (rt.ok) {
      const img = single('retrieveInstanceThumbnail', rt.result);
      const info = jpegInfo(img);
      check(info.soi && info.eoi, `retrieveInstanceThumbnail(${m.sop}): no SOI/EOI markers`);
      report.thumbnail[m.sop] = { ...info, contentType: rt.contentType };
    }
  }

  // WADO-RS instances, series and studies as Part 10 files.
  report.retrieved = {};
  for (const m of instances) {
    const r = await call(`retrieveInstance(${m.sop})`, 'retrieveInstance', { studyInstanceUID: m.study, seriesInstanceUID: m.series, sopInstanceUID: m.sop });
    if (r.ok) {
      check(r.result instanceof ArrayBuffer, `retrieveInstance(${m.sop}): not an ArrayBuffer`);
      check(isPart10(r.result), `retrieveInstance(${m.sop}): not a Part 10 file (no DICM)`);
      report.retrieved[m.sop] = { bytes: r.result.byteLength, transferSyntax: r.result.transferSyntaxUID, file: write(`instances/${m.sop}.dcm`, r.result) };
    }
  }
  report.retrievedSeries = {};
  report.retrievedStudies = {};
  for (const st of studies) {
    for (const se of report.series[st.study]) {
      const r = await call(`retrieveSeries(${se.series})`, 'retrieveSeries', { studyInstanceUID: st.study, seriesInstanceUID: se.series });
      if (r.ok) {
        check(Array.isArray(r.result), `retrieveSeries(${se.series}): not an array`);
        report.retrievedSeries[se.series] = r.result.map((b, i) => {
          check(isPart10(b), `retrieveSeries(${se.series}) part ${i}: not a Part 10 file`);
          return write(`series/${se.series}/${i}.dcm`, b);
        });
      }
    }
    const r = await call(`retrieveStudy(${st.study})`, 'retrieveStudy', { studyInstanceUID: st.study });
    if (r.ok) {
      check(Array.isArray(r.result), `retrieveStudy(${st.study}): not an array`);
      report.retrievedStudies[st.study] = r.result.map((b, i) => {
        check(isPart10(b), `retrieveStudy(${st.study}) part ${i}: not a Part 10 file`);
        return write(`studies/${st.study}/${i}.dcm`, b);
      });
    }
  }

  // The same client without a token, and with a wrong one, is refused
  // (401) on a search, metadata, frames, a retrieve and a store.
  report.refused = {};
  const some = instances[0];
  if (some) {
    const ids = { studyInstanceUID: some.study, seriesInstanceUID: some.series, sopInstanceUID: some.sop };
    const anonymous = {
      none: new api.DICOMwebClient({ url: cfg.url, verbose: false }),
      wrong: new api.DICOMwebClient({ url: cfg.url, verbose: false, headers: { Authorization: 'Bearer rls_aaaaaaaaaaaaaaaa_' + 'b'.repeat(52) } }),
    };
    const attempts = {
      searchForStudies: {},
      retrieveStudyMetadata: { studyInstanceUID: some.study },
      retrieveInstanceFrames: { ...ids, frameNumbers: '1' },
      retrieveInstanceRendered: { ...ids, mediaTypes: [{ mediaType: 'image/jpeg' }] },
      retrieveStudy: { studyInstanceUID: some.study },
      storeInstances: { datasets: files.slice(0, 1) },
    };
    for (const [who, c] of Object.entries(anonymous)) {
      for (const [method, opts] of Object.entries(attempts)) {
        const xhr = new XMLHttpRequest();
        report.calls++;
        const key = `${who} ${method}`;
        try {
          await c[method]({ ...opts, request: { instance: xhr } });
          fail(`${key}: resolved (HTTP ${xhr.status}), want a 401 rejection`);
          report.refused[key] = { status: xhr.status };
        } catch (e) {
          report.refused[key] = { status: e.status, challenge: xhr.getResponseHeader('WWW-Authenticate') };
          check(e.status === 401, `${key}: HTTP ${e.status}, want 401`);
        }
      }
    }
  } else {
    fail('no instance to try without a token');
  }

  // Errors the client must see: an unknown study is 404, not an empty 200.
  {
    const xhr = new XMLHttpRequest();
    report.calls++;
    try {
      await client.retrieveStudyMetadata({ studyInstanceUID: '2.25.1', request: { instance: xhr } });
      fail('retrieveStudyMetadata(unknown study): resolved, want a 404 rejection');
    } catch (e) {
      report.unknownStudyStatus = e.status;
      check(e.status === 404, `retrieveStudyMetadata(unknown study): HTTP ${e.status}, want 404`);
    }
  }
}

main()
  .catch((e) => fail(`driver: ${e.stack || e}`))
  .finally(() => {
    process.stdout.write(JSON.stringify(report, null, 1) + '\n');
    if (report.errors.length) {
      process.stderr.write(`dicomweb-client driver: ${report.errors.length} failed checks:\n${report.errors.join('\n')}\n`);
      process.exitCode = 1;
    }
  });
