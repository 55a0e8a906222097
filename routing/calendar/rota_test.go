package calendar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	martin   = "PDS nuit – Dr Martin"
	martin22 = "PDS nuit – Dr Martin (prise de garde 22h)"
	dubois   = "PDS nuit – Dr Dubois"
	duboisX  = "PDS nuit – Dr Dubois (échange)"
	leroy    = "PDS week-end – Dr Leroy"
	bernard  = "PDS week-end – Dr Bernard"
	paques   = "Astreinte jour férié (lundi de Pâques) – Dr Bernard"
	petit    = "Renfort PDS – Dr Petit"
)

func loadPDS(t testing.TB) *Rota {
	t.Helper()
	r, err := LoadRota(context.Background(), filepath.Join("testdata", "pds.ics"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

func summaries(shifts []Shift) []string {
	out := []string{}
	for _, s := range shifts {
		out = append(out, s.Summary)
	}
	return out
}

func TestRotaAt(t *testing.T) {
	r := loadPDS(t)
	cases := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"Monday night", paris(2026, 3, 2, 21, 0), []string{martin}},
		{"Tuesday 07:59", paris(2026, 3, 3, 7, 59), []string{martin}},
		{"Tuesday 08:00, end exclusive", paris(2026, 3, 3, 8, 0), nil},
		{"Tuesday noon", paris(2026, 3, 3, 12, 0), nil},
		{"swapped night (RECURRENCE-ID)", paris(2026, 3, 11, 23, 0), []string{duboisX}},
		{"swapped night, morning", paris(2026, 3, 12, 2, 0), []string{duboisX}},
		{"Thursday night", paris(2026, 3, 12, 21, 0), []string{dubois}},
		{"Friday night with UTC reinforcement", paris(2026, 3, 13, 21, 0), []string{dubois, petit}},
		{"reinforcement last minute", paris(2026, 3, 13, 23, 59), []string{dubois, petit}},
		{"reinforcement ended (23:00Z)", paris(2026, 3, 14, 0, 0), []string{dubois}},
		{"Saturday, weekend shift", paris(2026, 3, 14, 10, 0), []string{bernard}},
		{"cancelled occurrence", paris(2026, 3, 19, 22, 0), nil},
		{"cancelled reinforcement", paris(2026, 3, 20, 21, 0), []string{dubois}},
		{"other weekend", paris(2026, 3, 21, 9, 0), []string{leroy}},
		{"moved occurrence, old slot", paris(2026, 3, 24, 21, 0), nil},
		{"moved occurrence, new slot", paris(2026, 3, 24, 23, 0), []string{martin22}},
		{"spring DST Sunday 04:30 CEST", utc(2026, 3, 29, 2, 30), []string{bernard}},
		{"spring DST Monday 07:30 CEST", utc(2026, 3, 30, 5, 30), []string{bernard}},
		{"spring DST Monday 08:30 CEST (P2D is nominal)", utc(2026, 3, 30, 6, 30), nil},
		{"first night in CEST", utc(2026, 3, 30, 18, 30), []string{martin}},
		{"Easter Monday morning", paris(2026, 4, 6, 7, 0), []string{leroy, paques}},
		{"Easter Monday noon (all-day)", paris(2026, 4, 6, 12, 0), []string{paques}},
		{"Easter Monday night (EXDATE)", paris(2026, 4, 6, 21, 0), []string{paques}},
		{"Easter Tuesday night (EXDATE)", paris(2026, 4, 7, 21, 0), nil},
		{"all-day ends at midnight", paris(2026, 4, 7, 0, 0), nil},
		{"Easter Wednesday 09 April (EXDATE)", paris(2026, 4, 8, 23, 0), nil},
		{"back to normal", paris(2026, 4, 13, 21, 0), []string{martin}},
		{"last COUNT occurrence", paris(2026, 4, 24, 21, 0), []string{dubois}},
		{"RDATE night", paris(2026, 4, 30, 21, 0), []string{martin}},
		{"after COUNT", paris(2026, 5, 7, 21, 0), nil},
		{"autumn DST 02:30 CEST", utc(2026, 10, 25, 0, 30), []string{bernard}},
		{"autumn DST 02:30 CET", utc(2026, 10, 25, 1, 30), []string{bernard}},
		{"autumn DST Monday 07:30 CET", utc(2026, 10, 26, 6, 30), []string{bernard}},
		{"autumn DST Monday 08:30 CET", utc(2026, 10, 26, 7, 30), nil},
		{"first night in CET", utc(2026, 10, 27, 19, 30), []string{martin}},
		{"December night", paris(2026, 12, 30, 21, 0), []string{martin}},
		{"after UNTIL", paris(2027, 1, 4, 21, 0), nil},
		{"before the rota", paris(2026, 2, 28, 10, 0), nil},
	}
	for _, c := range cases {
		got := summaries(r.At(c.at))
		want := c.want
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s (%s): got %q, want %q", c.name, c.at.In(Paris()).Format("Mon 2006-01-02 15:04 MST"), got, want)
		}
		if r.OnCall(c.at, "") != (len(want) > 0) {
			t.Errorf("%s: OnCall(\"\") = %v", c.name, !(len(want) > 0))
		}
	}
}

func TestRotaShiftFields(t *testing.T) {
	r := loadPDS(t)
	got := r.At(paris(2026, 3, 2, 21, 0))
	if len(got) != 1 {
		t.Fatalf("got %d shifts", len(got))
	}
	want := Shift{
		Summary:     martin,
		Description: "Nuits lundi, mardi, mercredi 20h-8h.\nJoignable au 06 00 00 00 01.",
		Location:    "Téléradiologie site B",
		Attendees:   []string{"Dr Claire Martin <claire.martin@chu-exemple.fr>"},
		Categories:  []string{"PDS", "NUIT"},
		Start:       paris(2026, 3, 2, 20, 0),
		End:         paris(2026, 3, 3, 8, 0),
		UID:         "pds-nuit-martin@chu-exemple.fr",
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("got  %#v\nwant %#v", got[0], want)
	}
	// All-day: local midnight to local midnight; quoted CN, MAILTO upper case.
	s := r.At(paris(2026, 4, 6, 7, 0))
	if len(s) != 2 || !s[1].Start.Equal(paris(2026, 4, 6, 0, 0)) || !s[1].End.Equal(paris(2026, 4, 7, 0, 0)) {
		t.Errorf("all-day shift: %+v", s)
	}
	if s[0].Attendees[0] != "Dr Anne Leroy <anne.leroy@chu-exemple.fr>" {
		t.Errorf("attendee %q", s[0].Attendees[0])
	}
	if s[0].Start.Location() != Paris() {
		t.Errorf("start location %v", s[0].Start.Location())
	}
	// DST weekend: 48 h minus the lost hour.
	b := r.At(utc(2026, 3, 29, 2, 30))[0]
	if d := b.End.Sub(b.Start); d != 47*time.Hour {
		t.Errorf("spring weekend lasts %v", d)
	}
	b = r.At(utc(2026, 10, 25, 1, 30))[0]
	if d := b.End.Sub(b.Start); d != 49*time.Hour {
		t.Errorf("autumn weekend lasts %v", d)
	}
}

func TestRotaOnCall(t *testing.T) {
	r := loadPDS(t)
	cases := []struct {
		at    time.Time
		match string
		want  bool
	}{
		{paris(2026, 3, 2, 21, 0), "martin", true},
		{paris(2026, 3, 2, 21, 0), "MARTIN", true},
		{paris(2026, 3, 2, 21, 0), "claire.martin@chu-exemple.fr", true},
		{paris(2026, 3, 2, 21, 0), "nuit", true}, // category
		{paris(2026, 3, 2, 21, 0), "pds", true},
		{paris(2026, 3, 2, 21, 0), "week-end", false},
		{paris(2026, 3, 2, 21, 0), "dubois", false},
		{paris(2026, 3, 11, 23, 0), "martin", false}, // swapped: only the description names her
		{paris(2026, 3, 11, 23, 0), "dubois", true},
		{paris(2026, 3, 13, 21, 0), "renfort", true},
		{paris(2026, 3, 13, 21, 0), "julie.petit", true},
		{paris(2026, 3, 14, 10, 0), "week-end", true},
		{paris(2026, 3, 3, 12, 0), "", false},
		{paris(2026, 4, 6, 12, 0), "ferie", true},
	}
	for _, c := range cases {
		if got := r.OnCall(c.at, c.match); got != c.want {
			t.Errorf("OnCall(%s, %q) = %v", c.at, c.match, got)
		}
	}
	var nilRota *Rota
	if nilRota.OnCall(paris(2026, 3, 2, 21, 0), "") || nilRota.At(paris(2026, 3, 2, 21, 0)) != nil {
		t.Error("nil rota")
	}
}

const calHead = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:test\r\n"
const calTail = "END:VCALENDAR\r\n"

func TestRotaFloatingAndZones(t *testing.T) {
	ics := calHead +
		"BEGIN:VEVENT\r\nUID:floating\r\nSUMMARY:floating\r\nDTSTART:20260310T080000\r\nDTEND:20260310T120000\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:mozilla\r\nSUMMARY:mozilla tzid\r\nDTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20260310T080000\r\nDTEND;TZID=/mozilla.org/20050126_1/America/New_York:20260310T090000\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:windows\r\nSUMMARY:windows tzid\r\nDTSTART;TZID=\"Romance Standard Time\":20260311T080000\r\nDTEND;TZID=\"Romance Standard Time\":20260311T090000\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:daily\r\nSUMMARY:daily\r\nDTSTART;TZID=Europe/Paris:20260101T120000\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;INTERVAL=3\r\nEXDATE;VALUE=DATE:20260104\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:monthly\r\nSUMMARY:monthly\r\nDTSTART;VALUE=DATE:20260115\r\nRRULE:FREQ=MONTHLY;UNTIL=20260615\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:never\r\nSUMMARY:never\r\nDTSTART:20260101T100000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\n" +
		calTail
	// Floating times are in the rota location: here UTC.
	r := MustParseRota(ics, time.UTC)
	cases := []struct {
		at   time.Time
		want []string
	}{
		{utc(2026, 3, 10, 8, 0), []string{"floating"}},
		{utc(2026, 3, 10, 12, 30), []string{"mozilla tzid"}}, // 08:30 EDT (DST began 8 March in the US)
		{utc(2026, 3, 11, 7, 30), []string{"windows tzid"}},  // 08:30 CET
		{utc(2026, 1, 1, 11, 30), []string{"daily"}},
		{utc(2026, 1, 4, 11, 30), []string{}}, // EXDATE by date
		{utc(2026, 1, 7, 11, 30), []string{"daily"}},
		{utc(2026, 1, 8, 11, 30), []string{}},
		{utc(2026, 6, 30, 10, 30), []string{"daily"}}, // 12:30 CEST, 180 days later
		{utc(2026, 7, 1, 10, 30), []string{}},
		{utc(2026, 3, 15, 23, 0), []string{"monthly"}},
		{utc(2026, 6, 15, 0, 0), []string{"monthly"}},
		{utc(2026, 7, 15, 0, 0), []string{}},
		{utc(2026, 1, 1, 10, 30), []string{"never"}}, // DTSTART is always an occurrence
		{utc(2026, 1, 2, 10, 30), []string{}},
	}
	for _, c := range cases {
		if got := summaries(r.At(c.at)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("At(%s) = %q, want %q", c.at, got, c.want)
		}
	}
}

func TestRotaErrors(t *testing.T) {
	ev := func(body string) string {
		return calHead + "BEGIN:VEVENT\r\nUID:e1\r\nSUMMARY:x\r\n" + body + "END:VEVENT\r\n" + calTail
	}
	cases := []struct {
		name, ics string
		mention   []string
	}{
		{"empty", "", []string{"line 1", "BEGIN:VCALENDAR"}},
		{"not ical", "hello\r\n", []string{"line 1", "missing colon"}},
		{"missing colon", calHead + "BEGIN:VEVENT\r\nSUMMARY x\r\nEND:VEVENT\r\n" + calTail, []string{"line 5", "missing colon"}},
		{"params without colon", calHead + "BEGIN:VEVENT\r\nDTSTART;TZID=Europe/Paris\r\nEND:VEVENT\r\n" + calTail, []string{"line 5", "DTSTART", "missing ':'"}},
		{"unclosed", calHead + "BEGIN:VEVENT\r\nUID:x\r\n", []string{"line 4", "never closed"}},
		{"mismatched END", calHead + "BEGIN:VEVENT\r\nUID:x\r\nEND:VTODO\r\n" + calTail, []string{"line 6", "END:VTODO", "line 4"}},
		{"bad DTSTART", ev("DTSTART:2026-03-01\r\n"), []string{"line 7", `"e1"`, "DTSTART", "2026-03-01"}},
		{"missing DTSTART", ev(""), []string{"DTSTART", "missing"}},
		{"unknown TZID", ev("DTSTART;TZID=Mars/Olympus:20260301T100000\r\n"), []string{"DTSTART", "Mars/Olympus"}},
		{"DTEND before DTSTART", ev("DTSTART:20260301T100000Z\r\nDTEND:20260301T090000Z\r\n"), []string{"DTEND", "before"}},
		{"bad duration", ev("DTSTART:20260301T100000Z\r\nDURATION:1H\r\n"), []string{"DURATION"}},
		{"bad RRULE", ev("DTSTART:20260301T100000Z\r\nRRULE:FREQ=FORTNIGHTLY\r\n"), []string{"RRULE", "FORTNIGHTLY"}},
		{"hourly RRULE", ev("DTSTART:20260301T100000Z\r\nRRULE:FREQ=HOURLY\r\n"), []string{"RRULE", "not supported"}},
		{"huge COUNT", ev("DTSTART:20260301T100000Z\r\nRRULE:FREQ=DAILY;COUNT=99999999\r\n"), []string{"RRULE", "COUNT"}},
		{"bad EXDATE", ev("DTSTART:20260301T100000Z\r\nEXDATE:tomorrow\r\n"), []string{"EXDATE", "tomorrow"}},
		{"year 1", ev("DTSTART:00010101T000000Z\r\n"), []string{"DTSTART", "year 1 "}},
		{"too long", ev("DTSTART:20260301T100000Z\r\nDTEND:20280301T100000Z\r\n"), []string{"DTEND", "longer"}},
		{"RRULE line", ev("DTSTART:20260301T100000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;BYDAY=XX\r\n"), []string{"line 9", "RRULE", "XX"}},
		{"long parameter", ev("DTSTART;X-LONG=" + strings.Repeat("a", 2000) + ":20260301T100000Z\r\n"), []string{"line 7", "longer than 1024"}},
		{"times per day", ev("DTSTART:20260301T100000Z\r\nRRULE:FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23;BYMINUTE=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59;BYSECOND=0,30\r\n"), []string{"times per day"}},
		{"nested", calHead + strings.Repeat("BEGIN:X\r\n", 20), []string{"nested"}},
	}
	for _, c := range cases {
		_, err := ParseRota(strings.NewReader(c.ics), nil)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, m := range c.mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: %v: want mention of %q", c.name, err, m)
			}
		}
	}
}

func TestLoadRotaFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ics")
	os.WriteFile(bad, []byte(calHead+"BEGIN:VEVENT\r\nUID:u\r\nDTSTART:nope\r\nEND:VEVENT\r\n"+calTail), 0o644)
	_, err := LoadRota(context.Background(), bad, nil)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 6") || !strings.Contains(err.Error(), "DTSTART") {
		t.Errorf("bad file: %v", err)
	}
	_, err = LoadRota(context.Background(), filepath.Join(dir, "missing.ics"), nil)
	if err == nil || !strings.Contains(err.Error(), "missing.ics") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.ics")
	f, _ := os.Create(big)
	f.WriteString(calHead)
	line := "X-PAD:" + strings.Repeat("a", 1000) + "\r\n"
	for n := 0; n <= MaxRotaSize/len(line); n++ {
		f.WriteString(line)
	}
	f.WriteString(calTail)
	f.Close()
	_, err = LoadRota(context.Background(), big, nil)
	if err == nil || !strings.Contains(err.Error(), "limit") || !strings.Contains(err.Error(), "big.ics") {
		t.Errorf("big file: %v", err)
	}
	// The same through a reader.
	f, _ = os.Open(big)
	defer f.Close()
	if _, err = ParseRota(f, nil); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("big reader: %v", err)
	}
}

func TestLoadRotaHTTP(t *testing.T) {
	pds, err := os.ReadFile(filepath.Join("testdata", "pds.ics"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	body := pds
	mux := http.NewServeMux()
	mux.HandleFunc("/pds.ics", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "text/calendar")
		w.Write(body)
	})
	mux.HandleFunc("/big.ics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/calendar")
		w.Write([]byte(calHead))
		chunk := []byte("X-PAD:" + strings.Repeat("a", 1<<16) + "\r\n")
		for n := 0; n <= MaxRotaSize/len(chunk)+1; n++ {
			w.Write(chunk)
		}
	})
	mux.HandleFunc("/slow.ics", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	r, err := LoadRota(ctx, srv.URL+"/pds.ics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OnCall(paris(2026, 3, 2, 21, 0), "martin") {
		t.Error("HTTP rota: Martin not on call")
	}

	_, err = LoadRota(ctx, srv.URL+"/nope.ics?token=s3cret", nil)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/nope.ics") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("404: %v", err)
	}
	_, err = LoadRota(ctx, srv.URL+"/big.ics", nil)
	if err == nil || !strings.Contains(err.Error(), "limit") || !strings.Contains(err.Error(), "/big.ics") {
		t.Errorf("big: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = LoadRota(tctx, srv.URL+"/slow.ics", nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "/slow.ics") {
		t.Errorf("slow: %v", err)
	}

	// Source: a good load, then a broken file keeps the previous rota.
	src := NewSource(srv.URL+"/pds.ics", nil, srv.Client())
	if src.Rota() != nil || src.OnCall(paris(2026, 3, 2, 21, 0), "") {
		t.Error("source before load")
	}
	first, err := src.Reload(ctx)
	if err != nil || first == nil || src.Rota() != first || src.LoadedAt().IsZero() {
		t.Fatalf("reload: %v", err)
	}
	mu.Lock()
	body = []byte(calHead + "BEGIN:VEVENT\r\nUID:u\r\nDTSTART:broken\r\nEND:VEVENT\r\n" + calTail)
	mu.Unlock()
	kept, err := src.Reload(ctx)
	if err == nil || kept != first || src.Rota() != first {
		t.Errorf("broken reload: %v, kept %p, first %p", err, kept, first)
	}
	if !src.OnCall(paris(2026, 3, 2, 21, 0), "martin") {
		t.Error("old rota not kept")
	}
	mu.Lock()
	body = []byte(calHead + "BEGIN:VEVENT\r\nUID:u\r\nSUMMARY:Dr Nouveau\r\nDTSTART:20260302T190000Z\r\nDURATION:PT12H\r\nEND:VEVENT\r\n" + calTail)
	mu.Unlock()
	if _, err := src.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := summaries(src.At(paris(2026, 3, 2, 21, 0))); !reflect.DeepEqual(got, []string{"Dr Nouveau"}) {
		t.Errorf("after reload: %q", got)
	}
}

func TestRotaConcurrent(t *testing.T) {
	r := loadPDS(t)
	want := summaries(r.At(paris(2026, 3, 13, 21, 0)))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if got := summaries(r.At(paris(2026, 3, 13, 21, 0))); !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent At: %q", got)
					return
				}
				r.OnCall(paris(2026, 10, 25, 2, 30), "bernard")
			}
		}()
	}
	wg.Wait()
}

// Expansion stays local: a daily rule started decades ago costs the same
// as a recent one.
func TestRotaExpansionIsLocal(t *testing.T) {
	ics := calHead + "BEGIN:VEVENT\r\nUID:old\r\nSUMMARY:old\r\nDTSTART;TZID=Europe/Paris:19000101T200000\r\nDTEND;TZID=Europe/Paris:19000102T080000\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\n" + calTail
	r := MustParseRota(ics, nil)
	start := time.Now()
	for i := 0; i < 100; i++ {
		if !r.OnCall(paris(2199, 6, 1, 21, 0), "old") {
			t.Fatal("not on call")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("100 At calls took %v", d)
	}
}

func BenchmarkRotaAt(b *testing.B) {
	r := loadPDS(b)
	at := paris(2026, 10, 25, 2, 30)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.At(at)
	}
}

func ExampleRota_OnCall() {
	r, err := LoadRota(context.Background(), "testdata/pds.ics", nil)
	if err != nil {
		panic(err)
	}
	at := time.Date(2026, 3, 13, 21, 0, 0, 0, Paris())
	for _, s := range r.At(at) {
		fmt.Println(s.Summary, s.Start.Format("02/01 15:04"), "→", s.End.Format("02/01 15:04"))
	}
	fmt.Println(r.OnCall(at, "dubois"), r.OnCall(at, "martin"))
	// Output:
	// PDS nuit – Dr Dubois 13/03 20:00 → 14/03 08:00
	// Renfort PDS – Dr Petit 13/03 20:00 → 14/03 00:00
	// true false
}
