package query

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
)

// matcher checks one matching key (or a date-time pair) against a row's
// attributes (8 hex digit keys, UTF-8 values).
type matcher struct {
	desc  string
	match func(attrs map[string]string) bool
}

func hexTag(t dicom.Tag) string { return fmt.Sprintf("%08X", uint32(t)) }

// dateTimePairs are the date and time keys matched together (C.2.2.2.5.1).
var dateTimePairs = map[dicom.Tag]dicom.Tag{
	dicom.TagStudyDate:           dicom.TagStudyTime,
	dicom.TagSeriesDate:          dicom.TagSeriesTime,
	dicom.TagContentDate:         dicom.TagContentTime,
	dicom.NewTag(0x0008, 0x0022): dicom.NewTag(0x0008, 0x0032), // Acquisition
}

// knownTags are the attributes the index keeps (and the computed ones): a
// matching key on another attribute is not supported.
var knownTags = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range [][]string{storage.PatientLevelTags, storage.StudyLevelTags, storage.SeriesLevelTags} {
		for _, t := range l {
			m[t] = true
		}
	}
	for _, t := range []dicom.Tag{
		dicom.TagSOPClassUID, dicom.TagSOPInstanceUID, dicom.TagInstanceNumber, dicom.TagContentDate, dicom.TagContentTime,
		dicom.TagModalitiesInStudy, tagSOPClassesInStudy, dicom.TagNumberOfStudyRelatedSeries, dicom.TagNumberOfStudyRelatedInstances,
		dicom.TagNumberOfSeriesRelatedInstances, tagPatientRelatedStudies, tagPatientRelatedSeries, tagPatientRelatedInstances,
		dicom.TagInstitutionName, dicom.TagProtocolName, dicom.TagRows, dicom.TagColumns, dicom.TagNumberOfFrames,
	} {
		m[hexTag(t)] = true
	}
	return m
}()

// seqItemTags are storage.SequenceItemTags as sets: the sequences the index
// keeps and the attributes kept in their items.
var seqItemTags = func() map[string]map[string]bool {
	m := map[string]map[string]bool{}
	for seq, items := range storage.SequenceItemTags {
		m[seq] = map[string]bool{}
		for _, t := range items {
			m[seq][t] = true
		}
	}
	return m
}()

// itemMatchers compiles the item keys of a key on the kept sequence seq
// (PS3.4 C.2.2.2.6): matchers over one item's attributes; unsupported
// reports item keys with values on attributes the index does not keep in
// seq's items (they are not used).
func itemMatchers(seq string, items []Key) (ms []matcher, unsupported bool) {
	kept := seqItemTags[seq]
	for _, k := range items {
		h := hexTag(k.Tag)
		if k.VR == dicom.VRSQ {
			if _, nested := seqItemTags[h]; !nested || !kept[h] {
				unsupported = unsupported || hasValues(k.Items)
				continue
			}
			nm, u := itemMatchers(h, k.Items)
			unsupported = unsupported || u
			if len(nm) > 0 {
				ms = append(ms, sequenceMatcher(h, nm))
			}
			continue
		}
		if k.Value == "" || k.Value == "*" {
			continue
		}
		if !kept[h] {
			unsupported = true
			continue
		}
		ms = append(ms, valueMatcher(h, k.VR, k.Value))
	}
	return ms, unsupported
}

// hasValues reports whether item keys carry a matching value, at any depth.
func hasValues(items []Key) bool {
	for _, it := range items {
		if it.Value != "" && it.Value != "*" || hasValues(it.Items) {
			return true
		}
	}
	return false
}

// sequenceMatcher matches a kept sequence h whose item matchers are ms: at
// least one stored item must satisfy all of them (C.2.2.2.6). A sequence
// without items, or that does not decode, matches nothing.
func sequenceMatcher(h string, ms []matcher) matcher {
	desc := h + "["
	for i, m := range ms {
		if i > 0 {
			desc += ","
		}
		desc += m.desc
	}
	desc += "]"
	return matcher{desc, func(a map[string]string) bool {
		items, err := storage.DecodeItems(a[h])
		if err != nil {
			return false
		}
		for _, it := range items {
			if matches(ms, it) {
				return true
			}
		}
		return false
	}}
}

// compile builds the matchers of q; unsupported reports matching keys the
// engine ignores (keys with values on attributes or sequence items the
// index does not keep).
func compile(q *Query) (ms []matcher, unsupported bool) {
	paired := map[dicom.Tag]bool{}
	for dt, tt := range dateTimePairs {
		d, t := q.value(dt), q.value(tt)
		if d != "" && t != "" && strings.Contains(d, "-") {
			ms = append(ms, dateTimeMatcher(hexTag(dt), hexTag(tt), d, t))
			paired[dt], paired[tt] = true, true
		}
	}
	for _, k := range q.Keys {
		if paired[k.Tag] {
			continue
		}
		if k.VR == dicom.VRSQ {
			h := hexTag(k.Tag)
			if _, kept := seqItemTags[h]; !kept {
				unsupported = unsupported || hasValues(k.Items)
				continue
			}
			ims, u := itemMatchers(h, k.Items)
			unsupported = unsupported || u
			if len(ims) > 0 {
				ms = append(ms, sequenceMatcher(h, ims))
			}
			continue
		}
		if k.Value == "" || k.Value == "*" {
			continue
		}
		h := hexTag(k.Tag)
		if !knownTags[h] {
			unsupported = true
			continue
		}
		ms = append(ms, valueMatcher(h, k.VR, k.Value))
	}
	return ms, unsupported
}

func splitValues(s string) []string { return strings.Split(s, `\`) }

// valueMatcher matches one key by VR.
func valueMatcher(h string, vr dicom.VR, q string) matcher {
	desc := h + "=" + q
	switch vr {
	case dicom.VRUI:
		set := map[string]bool{}
		for _, u := range splitValues(q) {
			set[strings.TrimSpace(u)] = true
		}
		return matcher{desc, func(a map[string]string) bool { return set[a[h]] }}
	case dicom.VRDA, dicom.VRTM, dicom.VRDT:
		alts := splitValues(q)
		return matcher{desc, func(a map[string]string) bool {
			v := a[h]
			if v == "" {
				return false
			}
			for _, sv := range splitValues(v) {
				for _, alt := range alts {
					if matchTemporal(vr, sv, alt) {
						return true
					}
				}
			}
			return false
		}}
	case dicom.VRPN:
		alts := splitValues(q)
		for i := range alts {
			alts[i] = normName(alts[i])
		}
		return matcher{desc, func(a map[string]string) bool {
			v := a[h]
			if v == "" {
				return false
			}
			for _, sv := range splitValues(v) {
				n := normName(sv)
				groups := strings.Split(n, "=")
				for _, alt := range alts {
					if wildcard(alt, n) {
						return true
					}
					if strings.Contains(alt, "=") {
						continue
					}
					for _, g := range groups {
						if wildcard(alt, g) {
							return true
						}
					}
				}
			}
			return false
		}}
	}
	alts := []string{q}
	if vr != dicom.VRLT && vr != dicom.VRST && vr != dicom.VRUT {
		alts = splitValues(q)
	}
	return matcher{desc, func(a map[string]string) bool {
		v, ok := a[h]
		if !ok || v == "" {
			return false
		}
		vals := []string{v}
		if strings.Contains(v, `\`) {
			vals = splitValues(v)
		}
		for _, sv := range vals {
			for _, alt := range alts {
				if wildcard(alt, sv) {
					return true
				}
			}
		}
		return false
	}}
}

// normName is the PN form compared: upper case, without the trailing empty
// components a sender may pad with ("DOE^JANE^^" is "DOE^JANE").
func normName(s string) string {
	groups := strings.Split(strings.ToUpper(strings.TrimSpace(s)), "=")
	for i, g := range groups {
		groups[i] = strings.TrimRight(strings.TrimSpace(g), "^ ")
	}
	return strings.TrimRight(strings.Join(groups, "="), "=")
}

// wildcard matches s against pattern p with '*' (any run) and '?' (one
// character); a pattern without them is a single value match.
func wildcard(p, s string) bool {
	if !strings.ContainsAny(p, "*?") {
		return p == s
	}
	// Iterative glob with backtracking on the last '*'.
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(p) && p[pi] == '?' {
			_, n := utf8.DecodeRuneInString(s[si:])
			pi++
			si += n
			continue
		}
		if pi < len(p) && p[pi] == '*' {
			star, mark = pi, si
			pi++
			continue
		}
		if pi < len(p) && p[pi] == s[si] {
			pi++
			si++
			continue
		}
		if star >= 0 {
			_, n := utf8.DecodeRuneInString(s[mark:])
			mark += n
			pi, si = star+1, mark
			continue
		}
		return false
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// normTemporal strips the separators of ACR-NEMA style values and a DT's
// UTC offset.
func normTemporal(vr dicom.VR, v string) string {
	v = strings.TrimSpace(v)
	switch vr {
	case dicom.VRDA:
		v = strings.ReplaceAll(v, ".", "")
	case dicom.VRTM:
		v = strings.ReplaceAll(v, ":", "")
	case dicom.VRDT:
		if i := strings.IndexAny(v, "+-"); i >= 8 {
			v = v[:i]
		}
	}
	return v
}

// splitRange splits "lo-hi" (either end may be empty); ok is false for a
// single value. A DT's UTC offset sign is not a range separator.
func splitRange(vr dicom.VR, q string) (lo, hi string, ok bool) {
	i := strings.IndexByte(q, '-')
	if vr == dicom.VRDT {
		// A '-' followed by exactly four digits after a full date is a UTC
		// offset ("20260101120000-0500"), not a range separator.
		i = -1
		for j := 0; j < len(q); j++ {
			if q[j] != '-' {
				continue
			}
			rest := q[j+1:]
			if j >= 8 && len(rest) == 4 {
				continue
			}
			i = j
			break
		}
	}
	if i < 0 {
		return "", "", false
	}
	return normTemporal(vr, q[:i]), normTemporal(vr, q[i+1:]), true
}

// geLo reports v >= lo, v padded with '0' to lo's precision.
func geLo(v, lo string) bool {
	if lo == "" {
		return true
	}
	for len(v) < len(lo) {
		v += "0"
	}
	return v >= lo
}

// leHi reports v <= hi at hi's precision ("1200" includes 12:00:59).
func leHi(v, hi string) bool {
	if hi == "" {
		return true
	}
	if len(v) > len(hi) {
		v = v[:len(hi)]
	}
	return v <= hi
}

func matchTemporal(vr dicom.VR, v, q string) bool {
	v = normTemporal(vr, v)
	if lo, hi, ok := splitRange(vr, q); ok {
		return geLo(v, lo) && leHi(v, hi)
	}
	q = normTemporal(vr, q)
	if vr == dicom.VRDA {
		return v == q
	}
	// TM/DT single value: equal at the query's precision.
	return geLo(v, q) && leHi(v, q)
}

// dateTimeMatcher matches a date range and a time key as one date-time
// range: "20260101-20260102" with "2200-0600" is from 1 Jan 22:00 to 2 Jan
// 06:00.
func dateTimeMatcher(dh, th, d, t string) matcher {
	dLo, dHi, _ := splitRange(dicom.VRDA, d)
	tLo, tHi, ok := splitRange(dicom.VRTM, t)
	if !ok {
		tLo = normTemporal(dicom.VRTM, t)
		tHi = tLo
	}
	lo, hi := "", ""
	if dLo != "" {
		lo = dLo + padTime(tLo)
	}
	if dHi != "" {
		hi = dHi + tHi
	}
	return matcher{dh + "+" + th + "=" + d + " " + t, func(a map[string]string) bool {
		dv := normTemporal(dicom.VRDA, a[dh])
		if dv == "" {
			return false
		}
		v := dv + padTime(normTemporal(dicom.VRTM, a[th]))
		return geLo(v, lo) && leHi(v, hi)
	}}
}

// padTime extends HH[MM[SS]] to HHMMSS (a missing time is midnight); the
// fraction is dropped.
func padTime(t string) string {
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t = t[:i]
	}
	for len(t) < 6 {
		t += "0"
	}
	return t[:6]
}

// matches reports whether attrs satisfy every matcher.
func matches(ms []matcher, attrs map[string]string) bool {
	for _, m := range ms {
		if !m.match(attrs) {
			return false
		}
	}
	return true
}

// Wildcard reports whether s matches the C-FIND pattern p: '*' any run of
// characters, '?' any one character, everything else literally (PS3.4
// C.2.2.2.4). Callers fold case themselves where the VR asks for it (PN).
func Wildcard(p, s string) bool { return wildcard(p, s) }
