package calendar

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/teambition/rrule-go"
)

// naiveAt expands every rule from its original DTSTART (no alignment, no
// lookback window): the reference At is checked against.
func naiveStarts(r *Rota, horizon time.Time) map[*event][]time.Time {
	m := map[*event][]time.Time{}
	for _, e := range r.events {
		starts := []time.Time{e.start}
		starts = append(starts, e.fixed...)
		for _, o := range e.rules {
			rr, err := rrule.NewRRule(o)
			if err != nil {
				panic(err)
			}
			starts = append(starts, rr.Between(o.Dtstart, horizon, true)...)
		}
		m[e] = starts
	}
	return m
}

func naiveAt(r *Rota, t time.Time, all map[*event][]time.Time) []Shift {
	var out []Shift
	for _, e := range r.events {
		starts := all[e]
		seen := map[int64]bool{}
		for _, s := range starts {
			if seen[s.Unix()] || e.excluded(s) {
				continue
			}
			seen[s.Unix()] = true
			if end := e.occurrenceEnd(s); !s.After(t) && t.Before(end) {
				sh := e.tmpl
				sh.Start, sh.End = s.In(r.loc), end.In(r.loc)
				out = append(out, sh)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].UID < out[j].UID
	})
	return out
}

func TestAtMatchesNaiveExpansion(t *testing.T) {
	r := loadPDS(t)
	extra := MustParseRota(calHead+
		"BEGIN:VEVENT\r\nUID:m\r\nSUMMARY:monthly last Sunday\r\nDTSTART;TZID=Europe/Paris:20250126T090000\r\nDTEND;TZID=Europe/Paris:20250126T210000\r\nRRULE:FREQ=MONTHLY;BYDAY=-1SU\r\nEND:VEVENT\r\n"+
		"BEGIN:VEVENT\r\nUID:y\r\nSUMMARY:yearly\r\nDTSTART;VALUE=DATE:20200229\r\nDURATION:P3D\r\nRRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=-1\r\nEND:VEVENT\r\n"+
		"BEGIN:VEVENT\r\nUID:d\r\nSUMMARY:every 5 days\r\nDTSTART:20240101T230000Z\r\nDURATION:PT10H\r\nRRULE:FREQ=DAILY;INTERVAL=5\r\nEND:VEVENT\r\n"+
		"BEGIN:VEVENT\r\nUID:w\r\nSUMMARY:3-weekly, WKST=SU\r\nDTSTART;TZID=Europe/Paris:20251231T200000\r\nDTEND;TZID=Europe/Paris:20260101T080000\r\nRRULE:FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,WE,SA\r\nEND:VEVENT\r\n"+
		calTail, nil)
	horizon := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for _, rota := range []*Rota{r, extra} {
		all := naiveStarts(rota, horizon)
		for at := time.Date(2026, 1, 1, 0, 17, 0, 0, time.UTC); at.Year() < 2027; at = at.Add(53 * time.Minute) {
			got, want := rota.At(at), naiveAt(rota, at, all)
			if len(got) == 0 && len(want) == 0 {
				continue
			}
			n++
			if !reflect.DeepEqual(summaries(got), summaries(want)) {
				t.Fatalf("At(%s) = %q, naive %q", at, summaries(got), summaries(want))
			}
			for i := range got {
				if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
					t.Fatalf("At(%s) shift %d: %v-%v, naive %v-%v", at, i, got[i].Start, got[i].End, want[i].Start, want[i].End)
				}
			}
		}
	}
	if n < 2000 {
		t.Errorf("only %d covered instants compared", n)
	}
	t.Logf("%d covered instants agree with the naive expansion", n)
}
