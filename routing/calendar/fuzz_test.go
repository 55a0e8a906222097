package calendar

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var fuzzInstants = []time.Time{
	time.Date(2026, 3, 2, 20, 30, 0, 0, time.UTC),
	time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC),
	time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC),
	time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC),
	time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC),
}

func FuzzParseRota(f *testing.F) {
	if pds, err := os.ReadFile(filepath.Join("testdata", "pds.ics")); err == nil {
		f.Add(pds)
	}
	f.Add([]byte(calHead + "BEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20260301\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29\r\nEND:VEVENT\r\n" + calTail))
	f.Add([]byte(calHead + "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:19000101T000000Z\r\nDURATION:P366D\r\nRRULE:FREQ=DAILY;BYSETPOS=-1;BYDAY=MO,FR\r\nEXDATE;VALUE=DATE:19000102\r\nRDATE;VALUE=PERIOD:20260101T000000Z/PT1H\r\nEND:VEVENT\r\n" + calTail))
	f.Add([]byte(calHead + "BEGIN:VEVENT\r\nUID:c\r\nDTSTART;TZID=\"W. Europe Standard Time\":20260301T100000\r\nDTEND;TZID=Europe/Paris:20260301T110000\r\nRRULE:FREQ=MONTHLY;BYDAY=-1SU;COUNT=10\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:c\r\nRECURRENCE-ID;VALUE=DATE:20260329\r\nDTSTART:20260329T100000\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n" + calTail))
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;X=\"a\",b:20260101T000000\n ABC\nEND:VEVENT\nEND:VCALENDAR\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		start := time.Now()
		r, err := ParseRota(bytes.NewReader(data), nil)
		if err != nil {
			if r != nil {
				t.Fatal("rota and error")
			}
			return
		}
		for _, at := range fuzzInstants {
			for _, s := range r.At(at) {
				if s.Start.After(at) || !at.Before(s.End) {
					t.Fatalf("shift %v-%v does not cover %v", s.Start, s.End, at)
				}
			}
			r.OnCall(at, "a")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("parse and At took %v", d)
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{
		"Mon-Fri 08:00-18:30", "Sat,Sun", "20:00-08:00", "Mon 00:00-24:00", "lun-ven 08:00-18:00",
		"Lundi-Vendredi 08h-12h,14h-18h", "Fri-Mon", "sam, dim", "Mon - Fri 08:00 - 18:00", "", "-", "8h-", ",",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		w2, err := ParseWindow(w.String())
		if err != nil {
			t.Fatalf("reparse %q: %v", w.String(), err)
		}
		for _, at := range fuzzInstants {
			for i := 0; i < 48; i++ {
				tt := at.Add(time.Duration(i) * 37 * time.Minute)
				if w.Contains(tt) != w2.Contains(tt) {
					t.Fatalf("%q: reparse differs at %v", s, tt)
				}
			}
		}
	})
}
